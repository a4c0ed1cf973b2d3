using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Conformance;

/// <summary>
/// The sub-module conformance suite: drives a sub-module executable through every call of the argv
/// contract (docs/sub-module-api.md) and its failure cases, against the real orchestrator.
/// A concrete class per orchestrator derives from it with its <see cref="IOrchestratorFixture"/>:
/// <code>public sealed class ComposeV2Conformance(ComposeV2Fixture f) : SubModuleConformance&lt;ComposeV2Fixture&gt;(f);</code>
/// Exit codes checked are the shared contract of SubModule.Hosting: 0 ok, 1 failed / not alive / not
/// healthy, 2 usage.
/// </summary>
public abstract class SubModuleConformance<TFixture> : IClassFixture<TFixture>
    where TFixture : class, IOrchestratorFixture
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromMinutes(3);

    protected SubModuleConformance(TFixture fixture)
    {
        Fixture = fixture;
    }

    protected TFixture Fixture { get; }

    /// <summary>A test application: unique name, manifests written on demand, everything removed on dispose.</summary>
    protected sealed class TestApp : IDisposable
    {
        private readonly IOrchestratorFixture _fx;
        private readonly TempDir _dir = new("conformance");

        public TestApp(IOrchestratorFixture fx, string prefix)
        {
            _fx = fx;
            Name = Unique.Name(prefix);
        }

        public string Name { get; }

        public string Root => _dir.Path;

        /// <summary>Writes manifests for these services into a new directory and returns it.</summary>
        public string Manifests(string label, params ServiceSpec[] services)
        {
            var dir = _dir.Dir(label);
            _fx.WriteManifests(new AppSpec(Name, services), dir);
            return dir;
        }

        public string Image(ServiceSpec s) => _fx.ImageUrl(Name, s);

        public void Dispose()
        {
            _fx.Cleanup(Name);
            _dir.Dispose();
        }
    }

    protected TestApp NewApp(string prefix = "conf")
    {
        Requires.Component(Fixture.Name, Fixture.Unavailable);
        return new TestApp(Fixture, prefix);
    }

    protected CmdResult Call(params string[] args) => Call(new SubModuleSettings(), args);

    protected CmdResult Call(SubModuleSettings settings, params string[] args) =>
        Cmd.Run(Fixture.Executable, args, new Dictionary<string, string?>(Fixture.Environment(settings)), timeout: CallTimeout);

    protected CmdResult CallOk(params string[] args)
    {
        var r = Call(args);
        Assert.True(r.ExitCode == 0, $"{Fixture.Name}: {string.Join(' ', args)} should succeed: {r}");
        return r;
    }

    protected void CallFails(int exitCode, params string[] args) => CallFails(exitCode, new SubModuleSettings(), args);

    protected CmdResult CallFails(int exitCode, SubModuleSettings settings, params string[] args)
    {
        var r = Call(settings, args);
        Assert.True(r.ExitCode == exitCode, $"{Fixture.Name}: {string.Join(' ', args)} should exit {exitCode}: {r}");
        Assert.False(string.IsNullOrWhiteSpace(r.Stderr), $"a failing call must say why on stderr: {r}");
        return r;
    }

    private void RequireFeature(OrchestratorFeatures feature) =>
        Requires.Applicable(Fixture.Features.HasFlag(feature), $"{Fixture.Name} does not support {feature}");

    private ServiceObservation Running(TestApp app, string service)
    {
        var o = Fixture.Observe(app.Name, service);
        Assert.True(o is { Running: true }, $"{service} of {app.Name} should run, is {o?.ToString() ?? "absent"}");
        return o!;
    }

    private void AssertRolloutFailure(CmdResult r, string service, Behavior behavior)
    {
        Assert.True(r.ExitCode == 1, $"ROLLOUT with a {behavior} service should fail with exit 1: {r}");
        Assert.Contains(service, r.Stderr, StringComparison.Ordinal);
        foreach (var text in Fixture.FailureTexts(behavior))
        {
            Assert.Contains(text, r.Stderr, StringComparison.OrdinalIgnoreCase);
        }
    }

    // ---------------------------------------------------------------- contract basics

    [SkippableFact]
    public void Reqs_prints_one_line_per_requirement_and_succeeds_on_this_machine()
    {
        Requires.Component(Fixture.Name, Fixture.Unavailable);
        var r = CallOk("REQS");
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.Matches(@"^[A-Za-z0-9_.\-]+:(ok|error|warning)( .*)?$", l));
        Assert.DoesNotContain(lines, l => l.Split(' ')[0].EndsWith(":error", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void An_unknown_call_or_missing_arguments_are_usage_errors()
    {
        Requires.Component(Fixture.Name, Fixture.Unavailable);
        CallFails(2, "FROBNICATE", "x");
        CallFails(2, "ROLLOUT", "only-the-app");
        CallFails(2);
    }

    // ---------------------------------------------------------------- images

    [SkippableFact]
    public void Load_puts_the_image_into_the_store_and_verifies_its_id()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("load");
        var archive = Fixture.ExportImage(app.Name, app.Root);
        Assert.False(Fixture.HasImage(archive.Url));
        CallOk("LOAD", app.Name, archive.Url, archive.File, archive.Url);
        Assert.Equal(archive.Id, Fixture.ImageId(archive.Url));
    }

    /// <summary>`app` streams each image of an artifact into LOAD through a FIFO: a sub-module (or its engine's CLI) that opens the file twice would wait for ever.</summary>
    [SkippableFact]
    public void Load_reads_the_image_once_from_a_fifo_as_app_streams_it()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("fifo");
        var archive = Fixture.ExportImage(app.Name, app.Root);
        var fifo = Path.Combine(app.Root, "image.fifo");
        Cmd.Ok("mkfifo", fifo);
        // The writer blocks until the sub-module opens the FIFO and ends when it has read it all; a second open would hang until the timeout.
        var env = new Dictionary<string, string?>(Fixture.Environment(new SubModuleSettings())) { ["SRC"] = archive.File, ["FIFO"] = fifo, ["BIN"] = Fixture.Executable, ["URL"] = archive.Url, ["APP"] = app.Name };
        var r = Cmd.Sh("cat \"$SRC\" > \"$FIFO\" & \"$BIN\" LOAD \"$APP\" \"$URL\" \"$FIFO\" \"$URL\"; rc=$?; wait; exit $rc", env, CallTimeout);
        Assert.True(r.ExitCode == 0, $"{Fixture.Name}: LOAD from a FIFO should succeed: {r}");
        Assert.Equal(archive.Id, Fixture.ImageId(archive.Url));
    }

    [SkippableFact]
    public void Storage_names_the_data_root_its_free_space_and_the_id_and_layers_of_a_loaded_image()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("storage");
        var archive = Fixture.ExportImage(app.Name, app.Root);
        CallOk("LOAD", app.Name, archive.Url, archive.File, archive.Url);

        using var doc = JsonDocument.Parse(CallOk("STORAGE").Stdout);
        var s = doc.RootElement;
        var root = s.GetProperty("data_root").GetString();
        Assert.True(Directory.Exists(root), $"STORAGE names a data root that is not here: {root}");
        Assert.True(s.GetProperty("free_bytes").GetInt64() > 0, s.ToString());
        Assert.InRange(s.GetProperty("copies_per_layer").GetInt32(), 1, 2);
        Assert.Contains(archive.Id, s.GetProperty("images").EnumerateArray().Select(i => i.GetString()));

        // Every layer of the loaded image by chain ID (OCI image spec: the first diff ID, then sha256 of "<parent chain ID> <diff ID>").
        var held = s.GetProperty("layers").EnumerateArray().Select(l => l.GetString()).ToHashSet();
        var chain = string.Empty;
        foreach (var diff in DiffIds(archive.File))
        {
            chain = chain.Length == 0 ? diff : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes($"{chain} {diff}")));
            Assert.Contains(chain, held);
        }

        Assert.NotEmpty(chain);
    }

    /// <summary>The diff IDs of the (only) image in a saved archive: manifest.json names its config, whose rootfs.diff_ids lists them.</summary>
    private static IReadOnlyList<string> DiffIds(string archive)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using (var tar = new TarReader(File.OpenRead(archive)))
        {
            while (tar.GetNextEntry() is { } e)
            {
                if (e.DataStream is not null && e.Length < (1 << 20))
                {
                    using var ms = new MemoryStream();
                    e.DataStream.CopyTo(ms);
                    files[e.Name.TrimStart('.', '/')] = ms.ToArray();
                }
            }
        }

        using var manifest = JsonDocument.Parse(files["manifest.json"]);
        var config = manifest.RootElement[0].GetProperty("Config").GetString()!;
        using var doc = JsonDocument.Parse(files[config]);
        return doc.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(d => d.GetString()!).ToArray();
    }

    [SkippableFact]
    public void Load_with_a_digest_in_the_url_checks_that_it_matches()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("digest");
        var archive = Fixture.ExportImage(app.Name, app.Root);
        var wrong = "sha256:" + new string('0', 64);
        var r = CallFails(1, new SubModuleSettings(), "LOAD", app.Name, archive.Url + "@" + wrong, archive.File, archive.Url + "@" + wrong);
        Assert.Contains(wrong[7..19], r.Stderr, StringComparison.Ordinal);

        var right = archive.Url + "@" + archive.Id;
        CallOk("LOAD", app.Name, right, archive.File, right);
        Assert.Equal(archive.Id, Fixture.ImageId(archive.Url));
    }

    [SkippableFact]
    public void Load_of_a_file_that_is_not_an_image_fails_naming_the_file()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("garbage");
        var file = Path.Combine(app.Root, "garbage.img");
        File.WriteAllText(file, "this is not an image archive\n");
        var url = $"conformance/{app.Name}:garbage";
        var r = CallFails(1, new SubModuleSettings(), "LOAD", app.Name, url, file, url);
        Assert.Contains("garbage.img", r.Stderr, StringComparison.Ordinal);
        Assert.False(Fixture.HasImage(url));
    }

    [SkippableFact]
    public void Save_writes_an_archive_that_loads_back_to_the_same_image()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("save");
        var web = new ServiceSpec("web");
        app.Manifests("m", web);
        var url = app.Image(web);
        var id = Fixture.ImageId(url);
        Assert.NotNull(id);
        var file = Path.Combine(app.Root, "saved.img");
        CallOk("SAVE", app.Name, url, file);
        Assert.True(new FileInfo(file).Length > 0);
        Fixture.RemoveImage(url);
        Assert.False(Fixture.HasImage(url));
        CallOk("LOAD", app.Name, url, file, url);
        Assert.Equal(id, Fixture.ImageId(url));
    }

    [SkippableFact]
    public void Save_of_an_image_that_is_not_there_fails_naming_it()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("savemiss");
        var url = $"conformance/{app.Name}:missing";
        var r = CallFails(1, new SubModuleSettings(), "SAVE", app.Name, url, Path.Combine(app.Root, "x.img"));
        Assert.Contains(url, r.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Delete_removes_an_image_that_no_container_uses()
    {
        RequireFeature(OrchestratorFeatures.Images);
        using var app = NewApp("delete");
        var web = new ServiceSpec("web");
        app.Manifests("m", web);
        var url = app.Image(web);
        Assert.True(Fixture.HasImage(url));
        CallOk("DELETE", url);
        Assert.False(Fixture.HasImage(url));
    }

    [SkippableFact]
    public void Delete_refuses_an_image_that_a_container_uses()
    {
        RequireFeature(OrchestratorFeatures.RefusesDeletingImagesInUse);
        using var app = NewApp("inuse");
        var web = new ServiceSpec("web");
        var dir = app.Manifests("m", web);
        CallOk("ROLLOUT", app.Name, dir);
        var url = app.Image(web);
        var r = CallFails(1, new SubModuleSettings(), "DELETE", url);
        Assert.Contains("in use", r.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.True(Fixture.HasImage(url));
        Running(app, "web");
    }

    // ---------------------------------------------------------------- rollout and health

    [SkippableFact]
    public void Rollout_starts_every_service_and_returns_once_they_are_healthy()
    {
        using var app = NewApp("healthy");
        var web = new ServiceSpec("web");
        var plain = new ServiceSpec("plain", Behavior.NoHealthcheck);
        var dir = app.Manifests("m", web, plain);
        CallOk("ROLLOUT", app.Name, dir);
        Assert.Equal("healthy", Running(app, "web").Health);
        Assert.Equal(app.Image(web), Running(app, "web").Image);
        Running(app, "plain");
        CallOk("ALIVE", app.Name);
        CallOk("HEALTHY", app.Name);
    }

    [SkippableFact]
    public void Rollout_fails_and_prints_logs_when_a_container_exits_at_start()
    {
        using var app = NewApp("exits");
        var dir = app.Manifests("m", new ServiceSpec("web"), new ServiceSpec("broken", Behavior.ExitsAtStart));
        var r = Call("ROLLOUT", app.Name, dir);
        AssertRolloutFailure(r, "broken", Behavior.ExitsAtStart);
        CallFails(1, "ALIVE", app.Name);
    }

    [SkippableFact]
    public void Rollout_fails_when_a_service_never_gets_healthy_and_healthy_then_says_no_while_alive_says_yes()
    {
        using var app = NewApp("unhealthy");
        var dir = app.Manifests("m", new ServiceSpec("sick", Behavior.NeverHealthy));
        var r = Call("ROLLOUT", app.Name, dir);
        AssertRolloutFailure(r, "sick", Behavior.NeverHealthy);
        CallOk("ALIVE", app.Name);
        var h = CallFails(1, new SubModuleSettings(), "HEALTHY", app.Name);
        Assert.Contains("sick", h.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Rollout_fails_when_a_service_restarts_in_a_loop()
    {
        RequireFeature(OrchestratorFeatures.DetectsRestartLoops);
        using var app = NewApp("loop");
        var dir = app.Manifests("m", new ServiceSpec("looping", Behavior.RestartLoop));
        var r = Call("ROLLOUT", app.Name, dir);
        AssertRolloutFailure(r, "looping", Behavior.RestartLoop);
    }

    [SkippableFact]
    public void Rollout_of_a_new_version_replaces_the_running_services_and_removes_dropped_ones()
    {
        using var app = NewApp("update");
        var v1 = app.Manifests("v1", new ServiceSpec("web"), new ServiceSpec("extra", Behavior.NoHealthcheck));
        CallOk("ROLLOUT", app.Name, v1);
        Running(app, "extra");
        var web2 = new ServiceSpec("web", Behavior.Healthy, "2.0");
        var v2 = app.Manifests("v2", web2);
        CallOk("ROLLOUT", app.Name, v2);
        Assert.Equal(app.Image(web2), Running(app, "web").Image);
        Assert.Null(Fixture.Observe(app.Name, "extra"));
    }

    // ---------------------------------------------------------------- stop, start, rollback, volumes

    [SkippableFact]
    public void Stop_makes_the_app_not_alive_and_start_brings_it_back()
    {
        using var app = NewApp("stopstart");
        var dir = app.Manifests("m", new ServiceSpec("web"));
        CallOk("ROLLOUT", app.Name, dir);
        CallOk("STOP", app.Name, dir);
        Assert.False(Fixture.Observe(app.Name, "web") is { Running: true });
        var alive = CallFails(1, new SubModuleSettings(), "ALIVE", app.Name);
        Assert.Single(alive.Stderr.Trim().Split('\n'));
        CallFails(1, "HEALTHY", app.Name);
        CallOk("START", app.Name, dir);
        Assert.Equal("healthy", Running(app, "web").Health);
        CallOk("HEALTHY", app.Name);
    }

    [SkippableFact]
    public void Volumes_survive_stop_rollout_and_rollback()
    {
        using var app = NewApp("volumes");
        var v1 = app.Manifests("v1", new ServiceSpec("db") { Volume = "data" });
        CallOk("ROLLOUT", app.Name, v1);
        Fixture.WriteVolumeMarker(app.Name, "db", "kept-" + app.Name);
        CallOk("STOP", app.Name, v1);
        Assert.True(Fixture.VolumeExists(app.Name, "data"));

        var db2 = new ServiceSpec("db", Behavior.Healthy, "2.0") { Volume = "data" };
        var v2 = app.Manifests("v2", db2);
        CallOk("ROLLOUT", app.Name, v2);
        Assert.Equal(app.Image(db2), Running(app, "db").Image);
        Assert.Equal("kept-" + app.Name, Fixture.ReadVolumeMarker(app.Name, "db"));

        CallOk("ROLLBACK", app.Name, v1, v2);
        Assert.Equal(app.Image(new ServiceSpec("db")), Running(app, "db").Image);
        Assert.Equal("kept-" + app.Name, Fixture.ReadVolumeMarker(app.Name, "db"));
    }

    [SkippableFact]
    public void Rollback_stops_a_failed_composition_and_rolls_out_the_previous_one()
    {
        using var app = NewApp("rollback");
        var good = new ServiceSpec("web");
        var v1 = app.Manifests("v1", good);
        CallOk("ROLLOUT", app.Name, v1);
        var v2 = app.Manifests("v2", new ServiceSpec("web", Behavior.ExitsAtStart), new ServiceSpec("side", Behavior.NoHealthcheck));
        Assert.Equal(1, Call("ROLLOUT", app.Name, v2).ExitCode);
        CallOk("ROLLBACK", app.Name, v1, v2);
        Assert.Equal(app.Image(good), Running(app, "web").Image);
        Assert.Null(Fixture.Observe(app.Name, "side"));
        CallOk("HEALTHY", app.Name);
    }

    // ---------------------------------------------------------------- queries

    [SkippableFact]
    public void Ls_components_lists_each_image_with_its_id_and_the_services_using_it()
    {
        using var app = NewApp("ls");
        var a = new ServiceSpec("alpha");
        var b = new ServiceSpec("beta", Behavior.NoHealthcheck);
        var dir = app.Manifests("m", a, b);
        CallOk("ROLLOUT", app.Name, dir);
        var r = CallOk("LS_COMPONENTS", app.Name);
        using var doc = JsonDocument.Parse(r.Stdout);
        var items = doc.RootElement.EnumerateArray().ToList();
        foreach (var s in new[] { a, b })
        {
            var url = app.Image(s);
            var item = Assert.Single(items, i => i.GetProperty("url").GetString() == url);
            Assert.Equal("image", item.GetProperty("type").GetString());
            var extra = item.GetProperty("additional_data");
            Assert.Equal(Fixture.ImageId(url), extra.GetProperty("image_id").GetString());
            Assert.Contains(s.Name, extra.GetProperty("services").GetString()!.Split(','));
        }
    }

    [SkippableFact]
    public void Alive_and_healthy_fail_with_a_reason_for_an_application_that_is_not_there()
    {
        using var app = NewApp("absent");
        CallFails(1, "ALIVE", app.Name);
        CallFails(1, "HEALTHY", app.Name);
    }

    [SkippableFact]
    public void Export_manifest_writes_manifests_whose_rollout_reproduces_the_application()
    {
        using var app = NewApp("export");
        var web = new ServiceSpec("web", Behavior.Healthy, "2.0");
        var dir = app.Manifests("m", web, new ServiceSpec("plain", Behavior.NoHealthcheck));
        CallOk("ROLLOUT", app.Name, dir);
        var exported = Path.Combine(app.Root, "exported");
        CallOk("EXPORT_MANIFEST", app.Name, exported);
        Directory.Delete(dir, recursive: true);
        CallOk("STOP", app.Name, exported);
        Assert.False(Fixture.Observe(app.Name, "web") is { Running: true });
        CallOk("ROLLOUT", app.Name, exported);
        Assert.Equal(app.Image(web), Running(app, "web").Image);
        Running(app, "plain");
    }

    [SkippableFact]
    public void Export_manifest_of_an_application_never_rolled_out_fails()
    {
        using var app = NewApp("noexport");
        CallFails(1, "EXPORT_MANIFEST", app.Name, Path.Combine(app.Root, "out"));
    }

    // ---------------------------------------------------------------- purge

    [SkippableFact]
    public void Purge_removes_containers_and_images_but_keeps_volumes_by_default()
    {
        using var app = NewApp("purge");
        var db = new ServiceSpec("db") { Volume = "data" };
        var dir = app.Manifests("m", db);
        CallOk("ROLLOUT", app.Name, dir);
        CallOk("PURGE", app.Name);
        Assert.Null(Fixture.Observe(app.Name, "db"));
        if (Fixture.Features.HasFlag(OrchestratorFeatures.Images))
        {
            Assert.False(Fixture.HasImage(app.Image(db)));
        }

        Assert.True(Fixture.VolumeExists(app.Name, "data"));
        CallFails(1, "ALIVE", app.Name);
    }

    [SkippableFact]
    public void Purge_removes_volumes_too_when_the_config_says_so()
    {
        using var app = NewApp("purgev");
        var dir = app.Manifests("m", new ServiceSpec("db") { Volume = "data" });
        CallOk("ROLLOUT", app.Name, dir);
        var r = Call(new SubModuleSettings(PurgeVolumes: true), "PURGE", app.Name);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Null(Fixture.Observe(app.Name, "db"));
        Assert.False(Fixture.VolumeExists(app.Name, "data"));
    }
}
