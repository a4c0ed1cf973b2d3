using AppModule.Core.Images;
using AppModule.Core.Install;
using AppModule.Core.SubModules;

namespace AppModule.Tests;

/// <summary>The install planner (pure: no engine, no processes): layers against what the engine holds, disk needs, delta bases, checks.</summary>
public sealed class InstallPlannerTests
{
    private const long MiB = 1L << 20;
    private static readonly string[] Diffs = [Sha('a'), Sha('b'), Sha('c'), Sha('d')];

    private static string Sha(char c) => "sha256:" + new string(c, 64);

    private static EngineStorage Docker(long free, params string[] diffsHeld) =>
        new("docker 20.10", "/var/lib/docker", free, diffsHeld.Length == 0 ? [] : ImageLayers.ChainIds(diffsHeld), [Sha('9')], StagesArchive: true, CopiesPerLayer: 1);

    private static PlanImage Full(string url, params (string Diff, long Size)[] layers) =>
        new(url, new string('1', 64), "full", null, null, layers.Sum(l => l.Size) + 10_240, layers.Select(l => new ImageLayer(l.Diff, l.Size)).ToArray());

    private static PlanInput Input(EngineStorage? engine, params PlanImage[] images) =>
        new("web", "v2", "docker-compose", "linux/amd64", images, ["docker-compose.yaml"], new RunningVersion("v1", "c1", "docker-compose", ["web:1"]),
            engine, engine is null ? "the sub-module has no STORAGE" : null, "/tmp", 1024 * MiB, 16 * MiB, 4 * MiB, []);

    [Fact]
    public void Chain_ids_start_with_the_first_diff_id_and_chain_each_next_one_on_its_parent()
    {
        var chains = ImageLayers.ChainIds(Diffs[..2]);
        Assert.Equal(Diffs[0], chains[0]);
        var expected = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(Diffs[0] + " " + Diffs[1])));
        Assert.Equal(expected, chains[1]);
        Assert.NotEqual(ImageLayers.ChainIds([Diffs[2], Diffs[1]])[1], chains[1]); // the same diff on another parent is another layer
    }

    [Fact]
    public void Only_the_layers_the_engine_lacks_count_plus_the_archive_docker_unpacks_while_loading()
    {
        var image = Full("web:2", (Diffs[0], 5 * MiB), (Diffs[1], 30 * MiB));
        var plan = InstallPlanner.Plan(Input(Docker(200 * MiB, Diffs[0]), image));

        var planned = Assert.Single(plan.Images);
        Assert.Equal([true, false], planned.Layers.Select(l => l.Present));
        Assert.Equal(30 * MiB, planned.NewBytes);
        Assert.Equal(30 * MiB + image.LoadBytes, plan.EngineDisk.Needed);
        Assert.True(plan.EngineDisk.Fits);
        Assert.True(plan.WouldInstall);
        Assert.Equal(image.LoadBytes, plan.BytesToLoad);
        Assert.Equal("v1", plan.Stops!.Version);
        Assert.Equal(["web:2"], plan.Starts.Images);
        Assert.True(plan.VolumesKept);
    }

    [Fact]
    public void An_artifact_that_does_not_fit_is_refused_with_the_numbers_and_what_to_free()
    {
        var image = Full("web:2", (Diffs[0], 5 * MiB), (Diffs[1], 30 * MiB));
        var needed = 35 * MiB + image.LoadBytes!.Value;
        var plan = InstallPlanner.Plan(Input(Docker(needed + (3 * MiB)), image));

        Assert.False(plan.WouldInstall);
        var check = Assert.Single(plan.Checks, c => c.Name == "engine-disk");
        Assert.False(check.Passed);
        Assert.Contains($"({needed} bytes: 2 new layer(s) of 35.0 MiB", check.Message, StringComparison.Ordinal);
        Assert.Contains($"only 73.0 MiB ({needed + (3 * MiB)} bytes) are free there", check.Message, StringComparison.Ordinal);
        Assert.Contains("Free 1.0 MiB there", check.Message, StringComparison.Ordinal);
        Assert.Contains("/var/lib/docker", check.Message, StringComparison.Ordinal);
        var refusal = Assert.Throws<InstallException>(() => plan.ThrowIfRefused("engine-disk"));
        Assert.Equal("pre-check", refusal.Step);
        Assert.Contains("nothing was stopped", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_layer_two_images_share_is_needed_once_and_containerd_stores_it_twice_without_staging()
    {
        var a = Full("a:1", (Diffs[0], 10 * MiB));
        var b = Full("b:1", (Diffs[0], 10 * MiB), (Diffs[1], 1 * MiB));
        var containerd = new EngineStorage("containerd 1.6", "/var/lib/containerd", 100 * MiB, [], [], StagesArchive: false, CopiesPerLayer: 2);
        var plan = InstallPlanner.Plan(Input(containerd, a, b));

        Assert.Equal(10 * MiB, plan.Images[0].NewBytes);
        Assert.Equal(1 * MiB, plan.Images[1].NewBytes);
        Assert.True(plan.Images[1].Layers[0].Present); // brought by the first image
        Assert.Equal(2 * 11 * MiB, plan.EngineDisk.Needed);
        Assert.True(plan.EngineDisk.Fits);
    }

    [Fact]
    public void A_deep_delta_needs_its_base_and_its_changed_layers_are_known_only_once_rebuilt()
    {
        var deep = new PlanImage("web:2", new string('2', 64), "deep-delta", "web:1", new string('9', 64), null,
            [new ImageLayer(Diffs[0], null, LayerSource.FromBase), new ImageLayer(Diffs[1], null, LayerSource.Delta)]);

        var withBase = InstallPlanner.Plan(Input(Docker(500 * MiB, Diffs[0]), deep));
        Assert.True(Assert.Single(withBase.Checks, c => c.Name == "delta-base").Passed);
        Assert.True(withBase.Images[0].BasePresent);
        Assert.True(withBase.EngineDisk.AtLeast);
        Assert.Null(withBase.EngineDisk.Fits); // a lower bound that fits says nothing yet
        Assert.DoesNotContain(withBase.Checks, c => c.Name == "engine-disk");
        Assert.Equal(["from-base", "delta"], withBase.Images[0].Layers.Select(l => l.Source));
        Assert.True(withBase.WouldInstall);

        var noBase = InstallPlanner.Plan(Input(new EngineStorage("docker 20.10", "/var/lib/docker", 500 * MiB, [], [], true, 1), deep));
        var baseCheck = Assert.Single(noBase.Checks, c => c.Name == "delta-base");
        Assert.False(baseCheck.Passed);
        Assert.Contains("needs the base web:1 (image 999999999999)", baseCheck.Message, StringComparison.Ordinal);
        Assert.False(noBase.Images[0].BasePresent);
        Assert.False(noBase.WouldInstall);
    }

    [Fact]
    public void Without_the_engine_s_answer_the_engine_disk_is_not_checked_and_says_why()
    {
        var plan = InstallPlanner.Plan(Input(null, Full("web:2", (Diffs[0], 5 * MiB))));
        Assert.Null(plan.EngineDisk.Fits);
        Assert.Contains("not checked: the sub-module has no STORAGE", plan.EngineDisk.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(plan.Checks, c => c.Name == "engine-disk");
        Assert.True(plan.WouldInstall);
    }

    [Fact]
    public void Too_little_space_for_the_temporary_files_fails_the_tmp_check_and_earlier_failures_are_kept()
    {
        var input = Input(Docker(500 * MiB), Full("web:2", (Diffs[0], 5 * MiB))) with
        {
            TmpFree = 1 * MiB,
            EarlierChecks = [new PlanCheck("requirements", false, "REQS: compose missing")],
        };
        var plan = InstallPlanner.Plan(input);
        Assert.Equal(["requirements", "engine-disk", "tmp-disk"], plan.Checks.Select(c => c.Name));
        Assert.Equal([false, true, false], plan.Checks.Select(c => c.Passed));
        Assert.Contains("needs 16.0 MiB in /tmp, only 1.0 MiB free", plan.Checks[2].Message, StringComparison.Ordinal);
        Assert.Contains("\"engine_disk\"", plan.ToJson(), StringComparison.Ordinal);
    }

    private static PlanImage Pulled(string url, params (string Diff, long CompressedSize)[] layers) =>
        new(url, "sha256:" + new string('2', 64), "pull", null, null, null, layers.Select(l => new ImageLayer(l.Diff, l.CompressedSize, LayerSource.Pulled)).ToArray());

    [Fact]
    public void A_pull_counts_the_registry_s_compressed_sizes_as_a_lower_bound_refusing_only_what_cannot_fit()
    {
        // 20 MiB of new compressed layers plus the largest download (15 MiB) kept while it unpacks: at least 35 MiB.
        var image = Pulled("registry:5000/web:2", (Diffs[0], 5 * MiB), (Diffs[1], 15 * MiB), (Diffs[2], 5 * MiB));
        var refused = InstallPlanner.Plan(Input(Docker(30 * MiB, Diffs[0]), image));
        Assert.Equal(35 * MiB, refused.EngineDisk.Needed);
        Assert.True(refused.EngineDisk.AtLeast);
        Assert.False(refused.EngineDisk.Fits);
        Assert.All(refused.Images[0].Layers, l => Assert.Equal("pulled", l.Source));
        var message = Assert.Single(refused.Checks, c => c.Name == "engine-disk" && !c.Passed).Message;
        Assert.Contains("need at least 35.0 MiB (36700160 bytes: 2 new layer(s) of 20.0 MiB (compressed, as the registry lists them; they unpack larger), plus 15.0 MiB for the largest layer download the engine unpacks while pulling; 1 of 3 layer(s) already there)", message, StringComparison.Ordinal);
        Assert.Contains("only 30.0 MiB (31457280 bytes) are free there; nothing was stopped", message, StringComparison.Ordinal);

        // A lower bound that fits does not tell that the unpacked layers fit: not refused, and said so.
        var roomy = InstallPlanner.Plan(Input(Docker(500 * MiB, Diffs[0]), image));
        Assert.Null(roomy.EngineDisk.Fits);
        Assert.DoesNotContain(roomy.Checks, c => c.Name == "engine-disk");
        Assert.Contains("the layers unpack to more than that", roomy.EngineDisk.Detail, StringComparison.Ordinal);
        Assert.True(roomy.WouldInstall);

        // Every layer present: nothing to download, nothing needed.
        var present = InstallPlanner.Plan(Input(Docker(10 * MiB, Diffs[..3]), image));
        Assert.Equal(0, present.EngineDisk.Needed);
        Assert.True(present.EngineDisk.Fits);
    }

    [Fact]
    public void The_plan_names_the_services_and_volumes_the_sub_module_reads_in_both_versions_manifests()
    {
        // What REQS prints with MENDER_APP_MANIFESTS_DIR (the docker-compose sub-module: services, then named volumes).
        var next = ManifestContents.FromRequirements("docker-engine:ok unix:///run/docker.sock 20.10\nservices:ok web db\nvolumes:ok data cache\nmanifests:ok 2 service(s): web, db\n");
        Assert.NotNull(next);
        Assert.Equal(["web", "db"], next.Services);
        Assert.Equal(["data", "cache"], next.Volumes);
        Assert.Null(ManifestContents.FromRequirements("docker-engine:ok\nmanifests:ok 1 service(s): web\n")); // a sub-module that does not tell (the reference's)
        Assert.Equal([], ManifestContents.FromRequirements("services:ok web\nvolumes:ok\n")!.Volumes);

        var running = new RunningVersion("v1", "c1", "docker-compose", ["web:1"]) { Contents = new ManifestContents(["web"], ["data", "logs"]) };
        var plan = InstallPlanner.Plan(Input(Docker(200 * MiB), Full("web:2", (Diffs[0], MiB))) with { Running = running, Contents = next });
        Assert.Equal(["web", "db"], plan.Starts.Services);
        Assert.Equal(["data", "cache"], plan.Starts.Volumes);
        Assert.Equal(["web"], plan.Stops!.Contents!.Services);
        Assert.Equal(["data", "logs"], plan.Volumes.Kept);
        Assert.Equal(["data"], plan.Volumes.Reused);
        Assert.Equal(["cache"], plan.Volumes.New);

        // Nothing runs: nothing is kept, every volume is the new version's. Manifests not read: nothing is claimed.
        var first = InstallPlanner.Plan(Input(Docker(200 * MiB), Full("web:2", (Diffs[0], MiB))) with { Running = null, Contents = next });
        Assert.Equal([], first.Volumes.Kept);
        Assert.Equal(["data", "cache"], first.Volumes.New);
        var unknown = InstallPlanner.Plan(Input(Docker(200 * MiB), Full("web:2", (Diffs[0], MiB))));
        Assert.Null(unknown.Starts.Services);
        Assert.Equal(new VolumeChanges(null, null, null), unknown.Volumes);
    }
}
