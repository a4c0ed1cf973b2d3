using System.Text.Json;

namespace AppModule.Tests;

/// <summary>
/// Artifacts written by our own `app-gen` (full image, whole-image delta, deep delta), installed through
/// the real Mender client with our `app` and docker-compose modules on the real engine.
/// </summary>
public class GeneratedArtifactTests
{
    private static void Ok(CmdResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    private static string RunningImage(string app) =>
        DockerEngine.DockerOk("inspect", "--format", "{{.Image}}", ComposeRig.Container(app));

    [SkippableFact]
    public void Full_whole_image_delta_and_deep_delta_artifacts_from_app_gen_install_and_run_the_new_image_ids()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("gen");
        var port = WebApps.FreePort();
        string Tag(string source, string version)
        {
            var t = $"{app}/web:{version}";
            DockerEngine.DockerOk("tag", source, t);
            return t;
        }

        var v1 = Tag("appmodule/web:1.0", "1.0");
        var v2 = Tag("appmodule/web:2.0", "2.0");
        var v3 = Tag("appmodule/web:nohealth", "3.0");
        rig.Web.Own(app, v1, v2, v3);
        string Generate(string name, string image, string? current, bool deep)
        {
            var manifests = Path.Combine(rig.Mender.Artifacts, name + "-manifests");
            Directory.CreateDirectory(manifests);
            File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"),
                $"services:\n  web:\n    image: {image}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
            var output = Path.Combine(rig.Mender.Artifacts, name + ".mender");
            var args = new List<string> { "--artifact-name", name, "--device-type", "test-device", "--platform", "linux/amd64",
                "--application-name", app, "--orchestrator", "docker-compose", "--manifests-dir", manifests,
                "--image", current is null ? image : $"{current},{image}", "--output-path", output, "--quiet" };
            if (deep)
            {
                args.Add("--deep-delta");
            }

            Ok(Cmd.Run(Repo.Binary("app-gen"), args, timeout: TimeSpan.FromMinutes(5)));
            return output;
        }

        var full = Generate("gen-v1", v1, null, false);
        var delta = Generate("gen-v2", v2, v1, false);
        var deep = Generate("gen-v3", v3, v2, true);
        Assert.True(new FileInfo(deep).Length < new FileInfo(full).Length, "a deep delta sharing the base layer is smaller than the full artifact");

        // Only LOAD may bring the new images back: the generator's tags go away.
        DockerEngine.DockerOk("image", "rm", v2, v3);

        Ok(rig.Client.Install(full));
        Ok(rig.Client.Commit());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:1.0"), RunningImage(app));

        Ok(rig.Client.Install(delta));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:2.0"), RunningImage(app));

        Ok(rig.Client.Install(deep));
        Ok(rig.Client.Commit());
        Assert.Equal("web nohealth", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:nohealth"), RunningImage(app));
        Assert.Equal("gen-v3", rig.Client.ShowArtifact());
    }

    /// <summary>appmodule/web:<paramref name="variant"/> plus one layer holding <paramref name="bytes"/> random bytes (seeded), tagged <paramref name="tag"/>.</summary>
    private static void BuildWithRandomLayer(string tag, string variant, int bytes, int seed, string dir)
    {
        var ctx = Path.Combine(dir, "ctx-" + seed);
        Directory.CreateDirectory(ctx);
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        File.WriteAllBytes(Path.Combine(ctx, "random.bin"), data);
        File.SetLastWriteTimeUtc(Path.Combine(ctx, "random.bin"), DateTime.UnixEpoch);
        File.WriteAllText(Path.Combine(ctx, "Dockerfile"), $"FROM appmodule/web:{variant}\nCOPY random.bin /data/random.bin\n");
        var build = Cmd.Run(DockerEngine.Cli, ["build", "-q", "-t", tag, ctx], env: new Dictionary<string, string?> { ["DOCKER_BUILDKIT"] = "0" }, timeout: TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"building {tag}: {build}");
    }

    [SkippableFact]
    public void A_delta_that_is_not_smaller_than_what_it_replaces_is_shipped_whole_and_installs()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("whole");
        var port = WebApps.FreePort();
        var v1 = $"{app}/web:1.0";
        DockerEngine.DockerOk("tag", "appmodule/web:1.0", v1);
        // Each new version adds a layer of 6 MiB of random bytes (different each time): no delta can shrink it.
        var big2 = $"{app}/web:2.0";
        var big3 = $"{app}/web:3.0";
        BuildWithRandomLayer(big2, "2.0", 6 << 20, 2, rig.Mender.Artifacts);
        BuildWithRandomLayer(big3, "nohealth", 6 << 20, 3, rig.Mender.Artifacts);
        var id2 = DockerEngine.ImageId(big2)!;
        var id3 = DockerEngine.ImageId(big3)!;
        rig.Web.Own(app, v1, big2, big3, id2, id3);
        (string Path, JsonElement Json) Generate(string name, string image, string? current, params string[] extra)
        {
            var manifests = Path.Combine(rig.Mender.Artifacts, name + "-manifests");
            Directory.CreateDirectory(manifests);
            File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"),
                $"services:\n  web:\n    image: {image}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
            var output = Path.Combine(rig.Mender.Artifacts, name + ".mender");
            var r = Cmd.Run(Repo.Binary("app-gen"), ["--artifact-name", name, "--device-type", "test-device", "--platform", "linux/amd64",
                "--application-name", app, "--orchestrator", "docker-compose", "--manifests-dir", manifests,
                "--image", current is null ? image : $"{current},{image}", "--output-path", output, "--quiet", "--json", .. extra], timeout: TimeSpan.FromMinutes(5));
            Ok(r);
            return (output, JsonDocument.Parse(r.Stdout).RootElement.GetProperty("images")[0].Clone());
        }

        var (full, _) = Generate("whole-v1", v1, null);
        // A whole-image delta 1.0 -> 2.0 is about the 6 MiB layer, most of the 2.0 image: at a ratio of 0.5 it does not pay.
        var (delta, deltaJson) = Generate("whole-v2", big2, v1, "--delta-max-ratio", "0.5");
        Assert.Equal("delta", deltaJson.GetProperty("requested").GetString());
        Assert.Equal("full", deltaJson.GetProperty("kind").GetString());
        Assert.True(deltaJson.GetProperty("delta_bytes").GetInt64() >= deltaJson.GetProperty("whole_bytes").GetInt64() / 2, deltaJson.ToString());
        Assert.Equal(big2, deltaJson.GetProperty("url_current").GetString());
        Assert.Equal(id2["sha256:".Length..], deltaJson.GetProperty("sums_current").GetString());

        // A deep delta 2.0 -> 3.0: the base layer is unchanged, the small web layer pays as a delta, the new random layer goes whole.
        var (deep, deepJson) = Generate("whole-v3", big3, big2, "--deep-delta", "--delta-max-ratio", "0.5");
        Assert.Equal("deep-delta", deepJson.GetProperty("kind").GetString());
        var layers = deepJson.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(["delta", "unchanged", "whole"], layers.Select(l => l.GetProperty("chosen").GetString()!).Order(StringComparer.Ordinal));
        var whole = layers.Single(l => l.GetProperty("chosen").GetString() == "whole");
        Assert.True(whole.GetProperty("bytes").GetInt64() > 6 << 20, whole.ToString());
        Assert.True(whole.GetProperty("delta_bytes").GetInt64() >= whole.GetProperty("bytes").GetInt64() / 2, whole.ToString());
        var small = layers.Single(l => l.GetProperty("chosen").GetString() == "delta");
        Assert.True(small.GetProperty("delta_bytes").GetInt64() < small.GetProperty("bytes").GetInt64() / 2, small.ToString());
        Assert.True(new FileInfo(deep).Length > 6 << 20, "the random layer is in the deep delta whole");

        // Only LOAD may bring the new images back.
        DockerEngine.DockerOk("image", "rm", big2, big3);

        Ok(rig.Client.Install(full));
        Ok(rig.Client.Commit());
        Assert.Equal("web 1.0", WebApps.Answer(port));

        Ok(rig.Client.Install(delta));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal(id2, RunningImage(app));

        Ok(rig.Client.Install(deep));
        Ok(rig.Client.Commit());
        Assert.Equal("web nohealth", WebApps.Answer(port));
        Assert.Equal(id3, RunningImage(app));
    }
}
