using System.Collections.Concurrent;
using AppModule.Core;
using AppModule.Core.Store;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Security;
using Fleet.Core.Wire;
using TestSupport;

namespace Fleet.Tests;

/// <summary>redis-server + docker-registry holding web 1.0, 2.0, a 3.0 that exits at start and a 4.0 that never
/// gets healthy.</summary>
public sealed class AgentFixture : IDisposable
{
    public RedisServer Redis { get; } = new();
    public RegistryServer Registry { get; } = new();
    public string Repo { get; }

    public AgentFixture()
    {
        DockerEngine.Require();
        DockerEngine.RequireImages();
        Registry.Push("appmodule/web:1.0", "fleetagent/web:1.0");
        Registry.Push("appmodule/web:2.0", "fleetagent/web:2.0");
        Registry.Push("appmodule/web:exits", "fleetagent/web:3.0");
        Registry.Push("appmodule/web:unhealthy", "fleetagent/web:4.0");
        Repo = $"{Registry.Address}/fleetagent/web";
    }

    public void Dispose() { Redis.Dispose(); Registry.Dispose(); }
}

/// <summary>The agent against the real engine, driven over RPC on a real redis-server: every change goes through the
/// install engine, its store and the published docker-compose sub-module (as `app` installs), so the tests check
/// the store as well as the containers.</summary>
public sealed class AgentEngineTests(Deferred<AgentFixture> deferred) : IClassFixture<Deferred<AgentFixture>>
{
    private AgentFixture fx => deferred.Value;

    private const string Key = "agent-test-shared-key-0123456789";

    internal sealed class Rig : IAsyncDisposable
    {
        public required string App, Dir, File, Rpc, Channel, StateDir;
        public required RedisFleetBus Bus;
        public required CancellationTokenSource Cts;
        public required Task Run;
        public required FleetAgent Agent;
        public required AgentConfig Config;
        public ConcurrentQueue<VersionMessage> Reports { get; } = new();
        public ConcurrentQueue<FleetEvent> Events { get; } = new();
        public IAsyncDisposable? Sub, EventsSub;

        /// <summary>The events of the command that ended with <paramref name="last"/> (succeeded or failed), once it is published.</summary>
        public async Task<FleetEvent[]> CommandEventsAsync(string last)
        {
            for (int i = 0; i < 400 && !Events.Any(e => e.Event == last); i++) await Task.Delay(25);
            var end = Events.Last(e => e.Event == last);
            return Events.Where(e => e.CommandId == end.CommandId).ToArray();
        }

        public AppStore Store => Agent.Store;

        public async Task<DockerCommandResponse> CallAsync(DockerCommandRequest req)
        {
            var r = await new CommlibRpcClient(Bus).CallAsync(Rpc, req, TimeSpan.FromMinutes(3), Cts.Token);
            Assert.Equal(RpcOutcome.Replied, r.Outcome);
            return r.Response!;
        }

        /// <summary>The artifact (version) names of the store's running, last-known-good and rollback compositions.</summary>
        public (string? Running, string? Committed, string? Previous, bool Pending) Versions()
        {
            var s = Store.Load(App);
            string? Name(string? id) => id is null ? null : Store.ReadComposition(App, id).ArtifactName;
            return (Name(s.Running), Name(s.Committed), Name(s.Previous), s.Pending is not null);
        }

        public async ValueTask DisposeAsync()
        {
            await Cts.CancelAsync();
            try { await Run; } catch (OperationCanceledException) { }
            Cmd.Run(DockerEngine.Cli, ["compose", "-p", App, "-f", File, "down", "--remove-orphans"]);
            if (Sub is not null) await Sub.DisposeAsync();
            if (EventsSub is not null) await EventsSub.DisposeAsync();
            await Bus.DisposeAsync();
            try { Directory.Delete(Dir, true); } catch (IOException) { }
            try { Directory.Delete(StateDir, true); } catch (IOException) { }
        }
    }

    private string ComposeText(string tag) => $"""
        # The user's own notes: keep me.
        services:
          web:   # the app's service
            image: "{fx.Repo}:{tag}"   # pinned by ops
            restart: "no"
            labels:
              - "note=hand written"
        """ + "\n";

    /// <summary>The agent's config: a private store and the published sub-modules (the engine's config as `app` has it).</summary>
    /// <param name="compose">the sub-module's docker_compose_command (null: it discovers Compose v2 through the docker CLI).</param>
    internal static AgentConfig Config(string id, string app, string dir, string stateDir, byte[]? hmac = null, string? service = null, string? compose = null)
    {
        var conf = Path.Combine(stateDir, "docker-compose.conf");
        File.WriteAllText(conf, $"state_dir = \"{stateDir}/submodule\"\ndocker_command = \"{DockerEngine.Cli}\"\nrollout_timeout = 30\n"
            + (compose is null ? "" : $"docker_compose_command = \"{compose}\"\n"));
        return new AgentConfig
        {
            RpcName = "docker_compose_service_" + id,
            Channel = "version_channel_" + id,
            EventsChannel = "fleet_events_" + id,
            Apps = [new AgentApp(app, dir, service)],
            HmacKey = hmac,
            ReportInterval = TimeSpan.Zero,
            SubModuleConfig = conf,
            DockerCli = DockerEngine.Cli,
            Engine = new AppConfig
            {
                PersistentStore = Path.Combine(stateDir, "store"),
                SubModulesDir = Repo.BinDir,
                HealthTimeout = TimeSpan.FromSeconds(30),
                HealthPoll = TimeSpan.FromSeconds(1),
                Soak = TimeSpan.Zero,
            },
        };
    }

    /// <summary>The app runs <paramref name="tag"/>, brought up by hand from its directory (as before any agent), then the agent starts.</summary>
    internal async Task<Rig> StartAsync(string tag, byte[]? hmac = null, string? text = null, string? service = null, string? compose = null)
    {
        Requires.Component("published docker-compose sub-module", File.Exists(Path.Combine(Repo.BinDir, "docker-compose")), $"it is missing in {Repo.BinDir}: run build/publish.sh");
        var id = Guid.NewGuid().ToString("N")[..8];
        var app = "fleetagent" + id;
        var dir = Directory.CreateTempSubdirectory("fleet-agent-").FullName;
        var stateDir = Directory.CreateTempSubdirectory("fleet-agent-state-").FullName;
        var file = Path.Combine(dir, "docker-compose.yml");
        await File.WriteAllTextAsync(file, text ?? ComposeText(tag));
        Cmd.Ok(DockerEngine.Cli, "compose", "-p", app, "-f", file, "up", "-d");
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = fx.Redis.Host, Port = fx.Redis.Port }, cts.Token);
        var cfg = Config(id, app, dir, stateDir, hmac, service, compose);
        var reports = new ConcurrentQueue<VersionMessage>();
        var sub = await bus.SubscribeAsync(cfg.Channel, (b, _) => { reports.Enqueue(WireCodec.DecodeVersion(b)); return Task.CompletedTask; }, cts.Token);
        var events = new ConcurrentQueue<FleetEvent>();
        var eventsSub = await bus.SubscribeAsync(cfg.EventsChannel, (b, _) => { events.Enqueue(WireCodec.DecodeEvent(b)); return Task.CompletedTask; }, cts.Token);
        var agent = new FleetAgent(cfg, bus);
        var rig = new Rig { App = app, Dir = dir, File = file, Rpc = cfg.RpcName, Channel = cfg.Channel, Bus = bus, Cts = cts, Run = agent.RunAsync(cts.Token), Agent = agent, Config = cfg, Sub = sub, EventsSub = eventsSub, StateDir = stateDir };
        for (int i = 0; i < 200 && reports.IsEmpty; i++) await Task.Delay(25);
        foreach (var r in reports) rig.Reports.Enqueue(r);
        reports.Clear();
        _ = Task.Run(async () => { while (!cts.IsCancellationRequested) { while (reports.TryDequeue(out var m)) rig.Reports.Enqueue(m); while (events.TryDequeue(out var e)) rig.Events.Enqueue(e); await Task.Delay(10); } });
        return rig;
    }

    /// <summary>"image|health|container id|started at" of the project's container.</summary>
    internal static string[] Running(string app)
    {
        var ids = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}").Trim();
        Assert.False(string.IsNullOrEmpty(ids), $"no running container for project {app}");
        return DockerEngine.DockerOk("inspect", "-f", "{{.Config.Image}}|{{.State.Health.Status}}|{{.Id}}|{{.State.StartedAt}}", ids.Split('\n')[0]).Trim().Split('|');
    }

    private static string RunningImage(string app) => string.Join('|', Running(app)[..2]);

    private static async Task WaitFor(Func<bool> cond, string what)
    {
        for (int i = 0; i < 400 && !cond(); i++) await Task.Delay(25);
        Assert.True(cond(), "timed out waiting for " + what);
    }

    [SkippableFact]
    public async Task Update_version_installs_the_digest_it_was_sent_through_the_engine_keeps_a_backup_rewrites_only_the_image_and_the_store_says_what_runs()
    {
        await using var rig = await StartAsync("1.0");
        Assert.Contains(rig.Reports, m => m.Appname == rig.App && m.VersionNumber == "1.0");
        // the manifest the updater checked for the device's platform, which the command carries
        var manifest = await new Fleet.Core.Registry.RegistryClient(new Fleet.Core.Registry.RegistryOptions())
            .PlatformManifestAsync(ImageReference.Parse(fx.Repo), "2.0", AppModule.Core.Policy.Platforms.Machine(), rig.Cts.Token);
        Assert.Null(manifest.Refusal);
        var pinned = $"{fx.Repo}:2.0@{manifest.Digest}";

        // a digest that is not one is refused before anything changes
        var container = Running(rig.App)[2];
        var bad = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0") { Digest = "sha256:0123" });
        Assert.Equal(new DockerCommandResponse(false, "digest 'sha256:0123' of 2.0 is not a manifest digest (sha256: and 64 lower-case hex digits); nothing changed"), bad);
        var still = Running(rig.App);
        Assert.Equal(($"{fx.Repo}:1.0", container), (still[0], still[2]));

        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0") { Digest = manifest.Digest });

        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.0"), resp);
        Assert.Equal(ComposeText($"2.0@{manifest.Digest}"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File + FleetAgent.BackupSuffix));
        // the engine pulled and runs exactly that manifest; the app reports the tag
        Assert.Equal($"{pinned}|healthy", RunningImage(rig.App));
        Assert.Contains($"{fx.Repo}@{manifest.Digest}", DockerEngine.DockerOk("image", "inspect", "--format", "{{json .RepoDigests}}", pinned));
        Assert.Equal("2.0", rig.Agent.CurrentVersion(rig.Config.Apps[0]));
        // one truth: the store runs and keeps 2.0, with the adopted 1.0 as its rollback version
        Assert.Equal(("2.0", "2.0", "1.0", false), rig.Versions());
        var committed = rig.Store.ReadComposition(rig.App, rig.Store.Load(rig.App).Committed!);
        Assert.Equal(pinned, Assert.Single(committed.Images).Url);
        Assert.Equal(DockerEngine.ImageId(pinned)!.Replace("sha256:", ""), committed.Images[0].Id);
        Assert.Equal("fleet", committed.Origin!.Trigger);
        Assert.Equal(rig.Dir, committed.Origin.Directory);
        Assert.Equal("directory", rig.Store.ReadComposition(rig.App, rig.Store.Load(rig.App).Previous!).Origin!.Trigger); // 1.0, adopted
        // each step was published on the events channel, with the command id the store records
        var events = await rig.CommandEventsAsync("succeeded");
        Assert.Equal(committed.Origin.CommandId, events[0].CommandId);
        Assert.Equal(("started", "succeeded"), (events[0].Event, events[^1].Event));
        var steps = events.SkipWhile(e => !(e.Event == "prepared" && e.Detail.StartsWith("2.0 ", StringComparison.Ordinal))).Select(e => e.Event)
            .Where(e => e is not ("commit-finalized" or "collected" or "succeeded")).ToArray();
        Assert.Equal(["prepared", "loading", "switching", "stopping", "stopped", "rolling-out", "rolled-out", "installed", "committed"], steps);
        Assert.Contains(rig.Store.Journal(rig.App), j => j.Event == "committed" && j.Detail.StartsWith("2.0", StringComparison.Ordinal));
        await WaitFor(() => rig.Reports.Any(m => m.VersionNumber == "2.0"), "the 2.0 report");
    }

    [SkippableFact]
    public async Task A_command_re_sent_with_the_same_idempotency_key_is_answered_again_and_not_run_twice()
    {
        await using var rig = await StartAsync("1.0");
        var cmd = new DockerCommandRequest("update_version", rig.Dir, "2.0") { IdempotencyKey = rig.App + ":2.0:1" };
        var first = await rig.CallAsync(cmd);
        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.0"), first);
        var container = Running(rig.App)[2];
        var journal = rig.Store.Journal(rig.App).Count;

        var again = await rig.CallAsync(cmd);

        Assert.Equal(first, again);
        Assert.Equal(container, Running(rig.App)[2]); // the same container: nothing was rolled out again
        Assert.Equal(journal, rig.Store.Journal(rig.App).Count);
        // a new attempt (a new key) is run
        var third = await rig.CallAsync(cmd with { NewVersion = "1.0", IdempotencyKey = rig.App + ":1.0:2" });
        Assert.True(third.Success, third.Message);
        Assert.Equal($"{fx.Repo}:1.0|healthy", RunningImage(rig.App));
    }

    [SkippableTheory]
    [InlineData("3.0")]
    [InlineData("4.0")]
    public async Task A_broken_image_fails_the_health_gate_and_the_engine_rolls_back_to_the_same_container(string broken)
    {
        await using var rig = await StartAsync("1.0");
        Assert.True((await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0"))).Success);
        var before = Running(rig.App);

        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, broken));

        Assert.False(resp.Success);
        Assert.Contains($"update to {broken} failed", resp.Message);
        Assert.Contains("rolled back to 2.0", resp.Message);
        Assert.Equal(ComposeText("2.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal($"{fx.Repo}:2.0|healthy", RunningImage(rig.App));
        Assert.Equal(("2.0", "2.0", "1.0", false), rig.Versions());
        Assert.Contains(rig.Store.Journal(rig.App), j => j.Event == "rolled-back" && j.Detail == broken);
        var events = await rig.CommandEventsAsync("failed");
        Assert.Contains(events, e => e.Event == "rolled-back" && e.Detail == broken);
        Assert.Contains($"update to {broken} failed", events[^1].Detail); // the reason
        Assert.NotEqual(before[2], Running(rig.App)[2]); // STOP then ROLLBACK: 2.0 runs again in a new container
        await WaitFor(() => rig.Reports.Any(m => m.VersionNumber == "2.0"), "the 2.0 report after rollback");
    }

    [SkippableFact]
    public async Task A_tag_missing_from_the_registry_fails_at_pull_and_changes_nothing()
    {
        await using var rig = await StartAsync("1.0");
        Assert.True((await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir))).Success); // adopts 1.0
        var before = Running(rig.App);
        var journal = rig.Store.Journal(rig.App).Count;

        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "8.8"));

        Assert.False(resp.Success);
        Assert.Contains("pull of", resp.Message);
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal(before[2..], Running(rig.App)[2..]); // same container, same start time
        Assert.Equal(("1.0", "1.0", null, false), rig.Versions());
        Assert.DoesNotContain(rig.Store.Journal(rig.App).Skip(journal), j => j.Event is "prepared" or "stopping");
    }

    [SkippableFact]
    public async Task Restart_update_and_down_go_through_the_engine_and_unmanaged_directories_or_unknown_commands_are_refused()
    {
        await using var rig = await StartAsync("1.0");
        var first = Running(rig.App);
        Assert.Contains("not supported", (await rig.CallAsync(new DockerCommandRequest("update", rig.Dir) { Service = "web" })).Message);
        Assert.Equal(first[2..], Running(rig.App)[2..]); // same container, same start time

        Assert.Equal(new DockerCommandResponse(true, $"Restarted all services in {rig.Dir}"), await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir)));
        var restarted = Running(rig.App);
        Assert.NotEqual(first[2], restarted[2]);
        Assert.Equal(("1.0", "1.0", null, false), rig.Versions());

        Assert.Equal(new DockerCommandResponse(true, $"Updated all services in {rig.Dir}"), await rig.CallAsync(new DockerCommandRequest("update", rig.Dir) { Wait = false }));
        Assert.NotEqual(restarted[2], Running(rig.App)[2]);
        Assert.Equal(("1.0", "1.0", "1.0", false), rig.Versions());

        Assert.Contains("not managed", (await rig.CallAsync(new DockerCommandRequest("down", "/etc"))).Message);
        Assert.Contains("unknown command", (await rig.CallAsync(new DockerCommandRequest("format_disk", rig.Dir))).Message);
        Assert.Equal(new DockerCommandResponse(true, $"Stopped services in {rig.Dir}"), await rig.CallAsync(new DockerCommandRequest("down", rig.Dir)));
        Assert.Equal("", DockerEngine.DockerOk("ps", "-aq", "--filter", $"label=com.docker.compose.project={rig.App}").Trim());
        Assert.Equal((null, "1.0", "1.0", false), rig.Versions());
    }

    [SkippableFact]
    public async Task The_operators_cli_restarts_stops_and_updates_an_app_the_agent_runs_through_the_engine_with_signed_commands()
    {
        await using var rig = await StartAsync("1.0", CommandSigner.KeyFromText(Key, "test"));
        using var tmp = new TempDir("fleet-ctl");
        var conf = tmp.Write("updater.toml", $"""
            [redis]
            host = "127.0.0.1"
            port = {fx.Redis.Port}
            [apps.{rig.App}]
            directory = "{rig.Dir}"
            rpc = "{rig.Rpc}"
            image = "{fx.Repo}"
            """);
        var env = new Dictionary<string, string?> { ["FLEET_HMAC_KEY"] = Key };
        var first = Running(rig.App);

        var restart = UpdaterCli.Run(conf, env, "device", "restart", rig.App);

        Assert.True(restart.Code == 0, restart.Err);
        Assert.Matches($@"{rig.App}\s+success\s+Restarted all services in {System.Text.RegularExpressions.Regex.Escape(rig.Dir)}", restart.Out);
        var restarted = Running(rig.App);
        Assert.NotEqual(first[2], restarted[2]);
        Assert.True(DateTimeOffset.Parse(restarted[3]) > DateTimeOffset.Parse(first[3]), $"started at {restarted[3]}, before at {first[3]}");
        Assert.Equal(("1.0", "1.0", null, false), rig.Versions()); // adopted, restarted, nothing new installed

        var down = UpdaterCli.Run(conf, env, "device", "down", rig.App);
        Assert.True(down.Code == 0, down.Err);
        Assert.Equal("", DockerEngine.DockerOk("ps", "-aq", "--filter", $"label=com.docker.compose.project={rig.App}").Trim());
        Assert.Equal((null, "1.0", null, false), rig.Versions());

        var update = UpdaterCli.Run(conf, env, "device", "update", rig.App, "--json");
        Assert.True(update.Code == 0, update.Err);
        Assert.Equal($"{fx.Repo}:1.0|healthy", RunningImage(rig.App));
        Assert.Equal(("1.0", "1.0", "1.0", false), rig.Versions());
        using var doc = System.Text.Json.JsonDocument.Parse(update.Out);
        var key = Assert.Single(doc.RootElement.EnumerateArray()).GetProperty("idempotency_key").GetString();
        // the store records the operator's command as the origin of what runs
        Assert.Equal(key, rig.Store.ReadComposition(rig.App, rig.Store.Load(rig.App).Committed!).Origin!.CommandId);
    }

    /// <summary>"container id|started at|image id" of the running container of <paramref name="service"/>.</summary>
    private static string Container(string app, string service)
    {
        var ids = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}", "--filter", $"label=com.docker.compose.service={service}").Trim();
        Assert.False(string.IsNullOrEmpty(ids), $"no running container of {service} in project {app}");
        return DockerEngine.DockerOk("inspect", "-f", "{{.Id}}|{{.State.StartedAt}}|{{.Image}}", ids.Split('\n')[0]).Trim();
    }

    [SkippableFact]
    public async Task Restarting_one_service_recreates_only_that_service_with_the_same_image_and_the_store_keeps_its_versions()
    {
        var text = $"services:\n  web:\n    image: \"{fx.Repo}:1.0\"\n  side:\n    image: \"{fx.Repo}:2.0\"\n";
        await using var rig = await StartAsync("1.0", text: text, service: "web");
        Assert.True((await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir))).Success); // adopts 1.0 and restarts it whole
        var (web, side) = (Container(rig.App, "web"), Container(rig.App, "side"));

        var refused = await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir) { Service = "nope" });
        Assert.False(refused.Success);
        Assert.Contains("service 'nope' is not in", refused.Message);
        Assert.Equal((web, side), (Container(rig.App, "web"), Container(rig.App, "side")));

        Assert.Equal(new DockerCommandResponse(true, $"Restarted service web in {rig.Dir}"), await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir) { Service = "web", IdempotencyKey = "restart-web-1" }));
        var web2 = Container(rig.App, "web");
        Assert.NotEqual(web.Split('|')[0], web2.Split('|')[0]); // a new container for web
        Assert.True(DateTimeOffset.Parse(web2.Split('|')[1]) > DateTimeOffset.Parse(web.Split('|')[1]), $"web started at {web2}, before at {web}");
        Assert.Equal(web.Split('|')[2], web2.Split('|')[2]); // with the same image
        Assert.Equal(side, Container(rig.App, "side")); // side untouched: same container, same start time
        Assert.Equal(("1.0", "1.0", null, false), rig.Versions()); // the same version, in the last-known-good's place; no rollback version made up
        var committed = rig.Store.ReadComposition(rig.App, rig.Store.Load(rig.App).Committed!);
        Assert.Equal("restart-web-1", committed.Origin!.CommandId);
        Assert.Equal([DockerEngine.ImageId($"{fx.Repo}:1.0"), DockerEngine.ImageId($"{fx.Repo}:2.0")], committed.Images.Select(i => "sha256:" + i.Id));

        Assert.True((await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir) { Service = "side" })).Success);
        Assert.NotEqual(side.Split('|')[0], Container(rig.App, "side").Split('|')[0]);
        Assert.Equal(web2, Container(rig.App, "web")); // web's marker is kept: web is not recreated again
        Assert.Empty(rig.Store.Load(rig.App).Garbage); // the replaced variants were collected
    }

    /// <summary>A per-service restart whose new container fails (here: web's command exits once, when a flag file is in its
    /// volume) is rolled back in place: web is recreated as the last-known-good has it and runs healthy again, side keeps
    /// its container, the store is as before. With Compose v1 and v2 as the sub-module's CLI.</summary>
    [SkippableTheory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task A_restarted_service_that_fails_is_rolled_back_in_place_and_the_other_services_keep_running(string composeVersion)
    {
        var compose = composeVersion == "v1" ? Tool.DockerComposeV1 : $"{Tool.DockerComposeV2} compose";
        var text = $$"""
            services:
              web:
                image: "{{fx.Repo}}:1.0"
                command: ["sh", "-c", "if [ -e /data/fail-once ]; then rm /data/fail-once; echo failing once on purpose >&2; exit 3; fi; exec httpd -f -p 8080 -h /www"]
                volumes: ["data:/data"]
              side:
                image: "{{fx.Repo}}:2.0"
            volumes:
              data: {}
            """ + "\n";
        await using var rig = await StartAsync("1.0", text: text, service: "web", compose: compose);
        Assert.True((await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir))).Success); // adopts 1.0: from here this Compose runs it
        var lkg = rig.Store.Load(rig.App).Committed;
        var (web, side) = (Container(rig.App, "web"), Container(rig.App, "side"));
        DockerEngine.DockerOk("exec", web.Split('|')[0], "sh", "-c", ": > /data/fail-once"); // web's next start fails, once
        var journal = rig.Store.Journal(rig.App).Count;

        var resp = await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir) { Service = "web", IdempotencyKey = "restart-web-fails" });

        Assert.False(resp.Success);
        Assert.Contains($"rolled back: {rig.App} runs its last-known-good 1.0 as before the restart", resp.Message);
        Assert.Contains("exit", resp.Message); // the sub-module's reason: web exited
        var web2 = Container(rig.App, "web");
        Assert.NotEqual(web.Split('|')[0], web2.Split('|')[0]); // recreated (twice: the variant, then the last-known-good over it)
        Assert.Equal(web.Split('|')[2], web2.Split('|')[2]); // with the same image
        Assert.Equal("healthy", DockerEngine.DockerOk("inspect", "-f", "{{.State.Health.Status}}", web2.Split('|')[0]).Trim());
        Assert.DoesNotContain("io.appmodule.fleet.restarted", DockerEngine.DockerOk("inspect", "-f", "{{json .Config.Labels}}", web2.Split('|')[0])); // as the last-known-good defines it
        Assert.Equal(side, Container(rig.App, "side")); // side untouched: same container, same start time
        var state = rig.Store.Load(rig.App);
        Assert.Equal((lkg, lkg, null, null), (state.Committed, state.Running, state.Previous, state.Pending));
        Assert.Empty(state.Garbage); // the failed variant was collected; its images are the last-known-good's and stay
        Assert.Equal(DockerEngine.ImageId($"{fx.Repo}:1.0"), DockerEngine.DockerOk("inspect", "-f", "{{.Image}}", web2.Split('|')[0]).Trim());
        var steps = rig.Store.Journal(rig.App).Skip(journal).Select(j => j.Event).ToArray();
        Assert.Contains("rolled-back", steps);
        Assert.DoesNotContain("stopping", steps); // in place: nothing was stopped, neither for the variant nor for the rollback
        var events = await rig.CommandEventsAsync("failed");
        Assert.Equal("restart-web-fails", events[^1].CommandId);
        Assert.Contains(events, e => e.Event == "rolled-back");
        Assert.Equal(("1.0", "1.0", null, false), rig.Versions());
    }

    [SkippableFact]
    public async Task Restore_brings_back_the_last_known_good_with_its_compose_file_and_env_after_changes_by_hand()
    {
        await using var rig = await StartAsync("1.0");
        var env = Path.Combine(rig.Dir, ".env");
        var first = Running(rig.App);
        // nothing in the store yet: nothing to restore, and nothing is touched
        var refused = await rig.CallAsync(new DockerCommandRequest("restore", rig.Dir));
        Assert.False(refused.Success);
        Assert.Contains("nothing to restore", refused.Message);
        Assert.Equal(first[2..], Running(rig.App)[2..]);

        await File.WriteAllTextAsync(env, "NOTE=stored with 2.0\n");
        Assert.True((await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0"))).Success);
        var stored = Running(rig.App);
        // by hand: the compose file back to 1.0, another .env, and the app brought up from them
        await File.WriteAllTextAsync(rig.File, ComposeText("1.0"));
        await File.WriteAllTextAsync(env, "NOTE=edited by hand\n");
        Cmd.Ok(DockerEngine.Cli, "compose", "-p", rig.App, "-f", rig.File, "up", "-d");
        Assert.Equal($"{fx.Repo}:1.0", Running(rig.App)[0]);

        var resp = await rig.CallAsync(new DockerCommandRequest("restore", rig.Dir));

        Assert.Equal(new DockerCommandResponse(true, $"Restored 2.0, the last-known-good, in {rig.Dir}"), resp);
        var restored = Running(rig.App);
        Assert.Equal($"{fx.Repo}:2.0|healthy", string.Join('|', restored[..2]));
        Assert.NotEqual(stored[2], restored[2]); // rolled out again from the store
        Assert.Equal(DockerEngine.ImageId($"{fx.Repo}:2.0"), DockerEngine.DockerOk("inspect", "-f", "{{.Image}}", restored[2]).Trim());
        Assert.Equal(ComposeText("2.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal("NOTE=stored with 2.0\n", await File.ReadAllTextAsync(env));
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File + FleetAgent.BackupSuffix)); // the hand-made files are kept aside
        Assert.Equal("NOTE=edited by hand\n", await File.ReadAllTextAsync(env + FleetAgent.BackupSuffix));
        Assert.Equal(("2.0", "2.0", "1.0", false), rig.Versions()); // the store's versions are unchanged
        Assert.Equal("restored", rig.Store.Journal(rig.App)[^1].Event);

        // after down, restore brings it up again
        Assert.True((await rig.CallAsync(new DockerCommandRequest("down", rig.Dir))).Success);
        Assert.True((await rig.CallAsync(new DockerCommandRequest("restore", rig.Dir))).Success);
        Assert.Equal($"{fx.Repo}:2.0|healthy", RunningImage(rig.App));
        Assert.Equal(("2.0", "2.0", "1.0", false), rig.Versions());
    }

    [SkippableFact]
    public async Task With_a_shared_key_unsigned_commands_are_refused_and_signed_ones_run()
    {
        var key = CommandSigner.KeyFromText(Key, "test");
        await using var rig = await StartAsync("1.0", key);
        var unsigned = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0"));
        Assert.False(unsigned.Success);
        Assert.Contains("unsigned", unsigned.Message);
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File));
        var signed = new CommandSigner(key).Sign(rig.Rpc, new DockerCommandRequest("restart", rig.Dir), TimeSpan.FromSeconds(60));
        Assert.True((await rig.CallAsync(signed)).Success);
        Assert.Contains("replayed", (await rig.CallAsync(signed)).Message);
    }
}
