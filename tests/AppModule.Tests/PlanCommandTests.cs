using System.Security.Cryptography;
using System.Text.Json;

namespace AppModule.Tests;

/// <summary>
/// <c>app plan</c> through the real binary, its docker-compose sub-module and the real engine: what an
/// install would load, stop and start and which pre-checks would fail, for a full artifact, a deep delta
/// with and without its base, and one that would not fit; and that planning changes nothing on the device.
/// </summary>
public sealed class PlanCommandTests : IDisposable
{
    private readonly List<string> _tags = [];

    private static void Ok(CmdResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    /// <summary><c>app plan</c> as a user runs it on the device: the rig's configs for `app` and the sub-module.</summary>
    private static CmdResult Plan(ComposeRig rig, string config, string artifact, bool json = true) =>
        Cmd.Run(Repo.Binary("app"), json ? ["plan", artifact, "--json"] : ["plan", artifact],
            new Dictionary<string, string?>
            {
                ["MENDER_APP_CONFIG"] = config,
                ["MENDER_APP_DOCKER_COMPOSE_CONF"] = Path.Combine(rig.Client.EtcDir, "mender-app-docker-compose.conf"),
            }, timeout: TimeSpan.FromMinutes(5));

    private static JsonElement Json(CmdResult r)
    {
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    private static JsonElement Check(JsonElement plan, string name) =>
        plan.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    /// <summary>Everything of this test's on the device: the store's files and contents, the application's containers (ID, start time, restarts), the engine's images of this test.</summary>
    private static string Device(ComposeRig rig, string app, params string[] references)
    {
        var lines = new List<string>();
        foreach (var f in Directory.EnumerateFileSystemEntries(rig.Mender.Store, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            lines.Add(Path.GetRelativePath(rig.Mender.Store, f) + (File.Exists(f) ? " " + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))) : "/"));
        }

        foreach (var id in DockerEngine.Docker("ps", "-aq", "--no-trunc", "--filter", $"label=com.docker.compose.project={app}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal))
        {
            lines.Add(DockerEngine.DockerOk("inspect", "--format", "{{.Id}} {{.Image}} {{.State.StartedAt}} {{.RestartCount}}", id));
        }

        lines.AddRange(references.Select(r => $"{r} -> {DockerEngine.ImageId(r) ?? "absent"}"));
        return string.Join('\n', lines);
    }

    [SkippableFact]
    public void The_plan_of_a_full_artifact_names_images_layers_and_steps_and_changes_nothing_on_the_device()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("plan");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        var v2 = rig.Web.Image(app, "2.0");
        // v1 keeps its data in a named volume; v2 uses it again and adds a second one.
        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port) with
        {
            Manifests = new Dictionary<string, string> { ["docker-compose.yml"] = WebApps.Compose(v1, port, "    volumes:\n      - data:/data\nvolumes:\n  data: {}\n") },
        }));
        Ok(rig.Client.Commit());
        var artifact = rig.Mender.Artifact(rig.Web.Spec("web-v2", app, v2, port) with
        {
            Manifests = new Dictionary<string, string> { ["docker-compose.yml"] = WebApps.Compose(v2, port, "    volumes:\n      - data:/data\n      - cache:/cache\nvolumes:\n  data: {}\n  cache: {}\n") },
        });

        var before = Device(rig, app, v1.UrlNew, v2.UrlNew);
        var json = Plan(rig, rig.Mender.Config, artifact);
        var text = Plan(rig, rig.Mender.Config, artifact, json: false);
        Assert.Equal(before, Device(rig, app, v1.UrlNew, v2.UrlNew)); // store, containers and images as they were
        Assert.Null(DockerEngine.ImageId(v2.UrlNew));

        Ok(json);
        var plan = Json(json);
        Assert.Equal(app, plan.GetProperty("application").GetString());
        Assert.Equal("docker-compose", plan.GetProperty("orchestrator").GetString());
        var image = Assert.Single(plan.GetProperty("images").EnumerateArray());
        Assert.Equal(v2.UrlNew, image.GetProperty("url").GetString());
        Assert.Equal("full", image.GetProperty("kind").GetString());
        Assert.Equal(v2.Id, image.GetProperty("id").GetString());
        // appmodule/web:2.0 is in the engine: every layer of the new image is already there.
        var layers = image.GetProperty("layers").EnumerateArray().ToArray();
        Assert.NotEmpty(layers);
        Assert.All(layers, l => Assert.True(l.GetProperty("present").GetBoolean()));
        Assert.Equal(0, image.GetProperty("new_bytes").GetInt64());
        Assert.Equal(new FileInfo(v2.SavedPath).Length, plan.GetProperty("bytes_to_load").GetInt64());
        Assert.True(plan.GetProperty("engine_disk").GetProperty("fits").GetBoolean());
        Assert.Equal("web-v1", plan.GetProperty("stops").GetProperty("version").GetString());
        Assert.Equal([v1.UrlNew], plan.GetProperty("stops").GetProperty("images").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal([v2.UrlNew], plan.GetProperty("starts").GetProperty("images").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["docker-compose.yml"], plan.GetProperty("starts").GetProperty("manifests").EnumerateArray().Select(i => i.GetString()));
        Assert.True(plan.GetProperty("volumes_kept").GetBoolean());
        // Services and volumes by name, as the sub-module reads both versions' manifests.
        Assert.Equal(["web"], plan.GetProperty("stops").GetProperty("contents").GetProperty("services").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["web"], plan.GetProperty("starts").GetProperty("services").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["cache", "data"], plan.GetProperty("starts").GetProperty("volumes").EnumerateArray().Select(i => i.GetString()));
        var volumes = plan.GetProperty("volumes");
        Assert.Equal(["data"], volumes.GetProperty("kept").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["data"], volumes.GetProperty("reused").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["cache"], volumes.GetProperty("new").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(["artifact", "health", "requirements", "engine-disk", "tmp-disk"], plan.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()));
        Assert.All(plan.GetProperty("checks").EnumerateArray(), c => Assert.True(c.GetProperty("passed").GetBoolean(), c.ToString()));

        Ok(text);
        Assert.Contains($"stops:         web-v1 (composition", text.Stdout, StringComparison.Ordinal);
        Assert.Contains($"starts:        web-v2 (docker-compose; services web; images {v2.UrlNew};", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("volumes:       kept data; used again data; new cache (STOP removes no volumes or claims)", text.Stdout, StringComparison.Ordinal);
        Assert.Contains($"{v2.UrlNew} (full, image {v2.Id[..12]}): {layers.Length} layer(s): {layers.Length} present, 0 new (0.0 MiB)", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("result:        would install", text.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("calling", text.Stdout, StringComparison.Ordinal); // logs go to stderr only

        // The install does what the plan said: the same version stops, the new one runs.
        Ok(rig.Client.Install(artifact));
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Ok(rig.Client.Commit());
    }

    [SkippableFact]
    public void An_artifact_that_would_not_fit_is_planned_as_refused_with_the_numbers()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("plan");
        var v2 = rig.Web.Image(app, "2.0");
        var artifact = rig.Mender.Artifact(rig.Web.Spec("web-v2", app, v2, WebApps.FreePort()));
        // A margin no disk has: nothing fits.
        var config = Path.Combine(rig.Mender.Artifacts, "huge-margin.conf");
        File.WriteAllText(config, File.ReadAllText(rig.Mender.Config) + "\nengine_disk_margin_mib = 1048576\n");

        var json = Plan(rig, config, artifact);
        Assert.True(json.ExitCode == 1, json.ToString());
        var plan = Json(json);
        var disk = plan.GetProperty("engine_disk");
        Assert.False(disk.GetProperty("fits").GetBoolean());
        Assert.Equal(1L << 40, disk.GetProperty("margin_bytes").GetInt64());
        var check = Check(plan, "engine-disk");
        Assert.False(check.GetProperty("passed").GetBoolean());
        Assert.Contains($"bytes) are free there; nothing was stopped", check.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("a margin of 1048576.0 MiB (engine_disk_margin_mib)", check.GetProperty("message").GetString(), StringComparison.Ordinal);

        var text = Plan(rig, config, artifact, json: false);
        Assert.Equal(1, text.ExitCode);
        Assert.Contains("  FAIL engine-disk: the images of web-v2 need", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("result:        would be refused before anything stops (1 pre-check(s) fail)", text.Stdout, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void A_deep_delta_is_planned_with_its_base_present_and_refused_when_the_base_is_missing()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("plan");
        var port = WebApps.FreePort();

        // With its base: a deep delta from web 1.0 to web 2.0, both in the engine.
        var withBase = Generate(rig, app, "deep-present", Tag(app, "appmodule/web:1.0", "1.0"), Tag(app, "appmodule/web:2.0", "2.0"), port);
        var present = Plan(rig, rig.Mender.Config, withBase);
        Ok(present);
        var image = Assert.Single(Json(present).GetProperty("images").EnumerateArray());
        Assert.Equal("deep-delta", image.GetProperty("kind").GetString());
        Assert.Equal($"{app}/web:1.0", image.GetProperty("base_url").GetString());
        Assert.True(image.GetProperty("base_present").GetBoolean());
        Assert.True(Check(Json(present), "delta-base").GetProperty("passed").GetBoolean());
        Assert.Contains(image.GetProperty("layers").EnumerateArray(), l => l.GetProperty("source").GetString() == "from-base");

        // Without its base: made against an image of its own, which is then removed from the engine.
        var baseTag = Build(app, "base", "appmodule/web:1.0");
        var newTag = Build(app, "new", baseTag);
        var baseId = DockerEngine.ImageId(baseTag)!;
        var noBase = Generate(rig, app, "deep-missing", baseTag, newTag, port);
        DockerEngine.DockerOk("image", "rm", newTag, baseTag);
        Assert.Null(DockerEngine.ImageId(baseId));

        var missing = Plan(rig, rig.Mender.Config, noBase);
        Assert.True(missing.ExitCode == 1, missing.ToString());
        var plan = Json(missing);
        Assert.False(plan.GetProperty("images")[0].GetProperty("base_present").GetBoolean());
        var check = Check(plan, "delta-base");
        Assert.False(check.GetProperty("passed").GetBoolean());
        Assert.Contains($"needs the base {baseTag} (image {baseId[7..19]}), which the engine does not hold", check.GetProperty("message").GetString(), StringComparison.Ordinal);
        var text = Plan(rig, rig.Mender.Config, noBase, json: false);
        Assert.Contains($"against {baseTag} (image {baseId[7..19]}, MISSING)", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("  FAIL delta-base:", text.Stdout, StringComparison.Ordinal);
    }

    private string Tag(string app, string source, string version)
    {
        var t = $"{app}/web:{version}";
        DockerEngine.DockerOk("tag", source, t);
        _tags.Add(t);
        return t;
    }

    private string Build(string app, string version, string from)
    {
        var t = $"{app}/web:{version}";
        var build = Cmd.Run(DockerEngine.Cli, ["build", "-q", "--network", "none", "-t", t, "-"], stdin: $"FROM {from}\nRUN echo {Guid.NewGuid():N} > /{version}\n", timeout: TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"building {t}: {build}");
        _tags.Add(t);
        return t;
    }

    private static string Generate(ComposeRig rig, string app, string name, string current, string image, int port)
    {
        var manifests = Path.Combine(rig.Mender.Artifacts, name + "-manifests");
        Directory.CreateDirectory(manifests);
        File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"), $"services:\n  web:\n    image: {image}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
        var output = Path.Combine(rig.Mender.Artifacts, name + ".mender");
        Ok(Cmd.Run(Repo.Binary("app-gen"), ["--artifact-name", name, "--device-type", "test-device", "--platform", "linux/amd64",
            "--application-name", app, "--orchestrator", "docker-compose", "--manifests-dir", manifests,
            "--image", $"{current},{image}", "--deep-delta", "--output-path", output, "--quiet"], timeout: TimeSpan.FromMinutes(5)));
        return output;
    }

    public void Dispose()
    {
        foreach (var t in _tags)
        {
            DockerEngine.Docker("image", "rm", t);
        }
    }
}
