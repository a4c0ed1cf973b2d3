using System.Collections.Concurrent;
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

/// <summary>The agent against the real engine and Compose CLI (v2), driven over RPC on a real redis-server.</summary>
public sealed class AgentEngineTests(AgentFixture fx) : IClassFixture<AgentFixture>
{
    private const string Key = "agent-test-shared-key-0123456789";

    private sealed class Rig : IAsyncDisposable
    {
        public required string App, Dir, File, Rpc, Channel;
        public required RedisFleetBus Bus;
        public required CancellationTokenSource Cts;
        public required Task Run;
        public required IComposeRuntime Runtime;
        public string? StateDir;
        public ConcurrentQueue<VersionMessage> Reports { get; } = new();
        public IAsyncDisposable? Sub;

        public async Task<DockerCommandResponse> CallAsync(DockerCommandRequest req)
        {
            var r = await new CommlibRpcClient(Bus).CallAsync(Rpc, req, TimeSpan.FromMinutes(3), Cts.Token);
            Assert.Equal(RpcOutcome.Replied, r.Outcome);
            return r.Response!;
        }

        public async ValueTask DisposeAsync()
        {
            try { await Runtime.StopAsync(App, Dir, CancellationToken.None); } catch (Exception) { }
            await Cts.CancelAsync();
            try { await Run; } catch (OperationCanceledException) { }
            if (Sub is not null) await Sub.DisposeAsync();
            await Bus.DisposeAsync();
            try { Directory.Delete(Dir, true); } catch (IOException) { }
            if (StateDir is not null) try { Directory.Delete(StateDir, true); } catch (IOException) { }
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

    /// <summary>"cli": the agent's own Compose CLI runtime; "submodule": the project's docker-compose sub-module
    /// (published AOT binary), which owns the health gate.</summary>
    private static IComposeRuntime Runtime(string kind, out string? stateDir)
    {
        var cli = new ComposeCliRuntime(["/usr/bin/docker", "compose"], "/usr/bin/docker", TimeSpan.FromSeconds(60));
        stateDir = null;
        if (kind == "cli") return cli;
        stateDir = Directory.CreateTempSubdirectory("fleet-agent-state-").FullName;
        var conf = Path.Combine(stateDir, "docker-compose.conf");
        File.WriteAllText(conf, $"state_dir = \"{stateDir}/state\"\ndocker_command = \"/usr/bin/docker\"\nrollout_timeout = 60\n");
        return new SubModuleRuntime(Repo.Binary("docker-compose"), cli, TimeSpan.FromMinutes(3),
            new Dictionary<string, string?> { ["MENDER_APP_DOCKER_COMPOSE_CONF"] = conf });
    }

    private async Task<Rig> StartAsync(string tag, byte[]? hmac = null, string runtimeKind = "cli")
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var app = "fleetagent" + id;
        var dir = Directory.CreateTempSubdirectory("fleet-agent-").FullName;
        var file = Path.Combine(dir, "docker-compose.yml");
        await File.WriteAllTextAsync(file, ComposeText(tag));
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = fx.Redis.Host, Port = fx.Redis.Port }, cts.Token);
        var runtime = Runtime(runtimeKind, out var stateDir);
        await runtime.PullAsync(app, dir, null, cts.Token);
        await runtime.RolloutAsync(app, dir, cts.Token);
        var cfg = new AgentConfig
        {
            RpcName = "docker_compose_service_" + id,
            Channel = "version_channel_" + id,
            Apps = [new AgentApp(app, dir, null)],
            HmacKey = hmac,
            ReportInterval = TimeSpan.Zero,
        };
        var reports = new ConcurrentQueue<VersionMessage>();
        var sub = await bus.SubscribeAsync(cfg.Channel, (b, _) => { reports.Enqueue(WireCodec.DecodeVersion(b)); return Task.CompletedTask; }, cts.Token);
        var agent = new FleetAgent(cfg, bus, runtime);
        var rig = new Rig { App = app, Dir = dir, File = file, Rpc = cfg.RpcName, Channel = cfg.Channel, Bus = bus, Cts = cts, Run = agent.RunAsync(cts.Token), Runtime = runtime, Sub = sub, StateDir = stateDir };
        for (int i = 0; i < 200 && reports.IsEmpty; i++) await Task.Delay(25);
        foreach (var r in reports) rig.Reports.Enqueue(r);
        reports.Clear();
        _ = Task.Run(async () => { while (!cts.IsCancellationRequested) { while (reports.TryDequeue(out var m)) rig.Reports.Enqueue(m); await Task.Delay(10); } });
        return rig;
    }

    private static string RunningImage(string app)
    {
        var ids = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}").Trim();
        Assert.False(string.IsNullOrEmpty(ids), $"no running container for project {app}");
        return DockerEngine.DockerOk("inspect", "-f", "{{.Config.Image}}|{{.State.Health.Status}}", ids.Split('\n')[0]).Trim();
    }

    private static async Task WaitFor(Func<bool> cond, string what)
    {
        for (int i = 0; i < 400 && !cond(); i++) await Task.Delay(25);
        Assert.True(cond(), "timed out waiting for " + what);
    }

    [SkippableTheory]
    [InlineData("cli")]
    [InlineData("submodule")]
    public async Task Update_version_rewrites_only_the_tag_keeps_a_backup_rolls_out_healthy_and_reports_the_new_version(string runtime)
    {
        await using var rig = await StartAsync("1.0", runtimeKind: runtime);
        Assert.Contains(rig.Reports, m => m.Appname == rig.App && m.VersionNumber == "1.0");

        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "2.0"));

        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.0"), resp);
        Assert.Equal(ComposeText("2.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File + FleetAgent.BackupSuffix));
        Assert.Equal($"{fx.Repo}:2.0|healthy", RunningImage(rig.App));
        await WaitFor(() => rig.Reports.Any(m => m.VersionNumber == "2.0"), "the 2.0 report");
    }

    [SkippableTheory]
    [InlineData("3.0", "exited", "cli")]
    [InlineData("4.0", "unhealthy", "cli")]
    [InlineData("3.0", "exited", "submodule")]
    public async Task A_broken_image_fails_the_health_gate_and_the_previous_file_and_version_come_back(string broken, string symptom, string runtime)
    {
        await using var rig = await StartAsync("2.0", runtimeKind: runtime);

        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, broken));

        Assert.False(resp.Success);
        Assert.Contains($"update to {broken} failed", resp.Message);
        Assert.Contains(symptom, resp.Message);
        Assert.Contains("rolled back to 2.0", resp.Message);
        Assert.Equal(ComposeText("2.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal($"{fx.Repo}:2.0|healthy", RunningImage(rig.App));
        await WaitFor(() => rig.Reports.Any(m => m.VersionNumber == "2.0"), "the 2.0 report after rollback");
    }

    [SkippableFact]
    public async Task A_tag_missing_from_the_registry_fails_at_pull_and_changes_nothing()
    {
        await using var rig = await StartAsync("1.0");
        var resp = await rig.CallAsync(new DockerCommandRequest("update_version", rig.Dir, "8.8"));
        Assert.False(resp.Success);
        Assert.Contains("pull of", resp.Message);
        Assert.Equal(ComposeText("1.0"), await File.ReadAllTextAsync(rig.File));
        Assert.Equal($"{fx.Repo}:1.0|healthy", RunningImage(rig.App));
    }

    [SkippableFact]
    public async Task Restart_update_and_down_work_and_unmanaged_directories_or_unknown_commands_are_refused()
    {
        await using var rig = await StartAsync("1.0");
        Assert.True((await rig.CallAsync(new DockerCommandRequest("restart", rig.Dir) { Service = "web" })).Success);
        Assert.True((await rig.CallAsync(new DockerCommandRequest("update", rig.Dir) { Wait = false })).Success);
        Assert.Contains("not managed", (await rig.CallAsync(new DockerCommandRequest("down", "/etc"))).Message);
        Assert.Contains("unknown command", (await rig.CallAsync(new DockerCommandRequest("format_disk", rig.Dir))).Message);
        Assert.Equal(new DockerCommandResponse(true, $"Stopped services in {rig.Dir}"), await rig.CallAsync(new DockerCommandRequest("down", rig.Dir)));
        Assert.Equal("", DockerEngine.DockerOk("ps", "-aq", "--filter", $"label=com.docker.compose.project={rig.App}").Trim());
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
