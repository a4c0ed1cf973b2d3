using System.Text.Json;
using AppModule.Core;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Wire;

namespace AppModule.Tests;

/// <summary>
/// One device, two triggers, one truth: the fleet agent and the real Mender client (with our `app`) install
/// the same application through the same engine, store and docker-compose sub-module. After each step
/// `app status --json` names what runs, with its origin, and the container answers as that version.
/// </summary>
public sealed class BothTriggersEndToEndTests
{
    private static void Ok(CmdResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    /// <summary>"&lt;version&gt; from &lt;trigger&gt;" of the running version, as `app status --json` (the real binary) reports it.</summary>
    private static string Running(ComposeRig rig, string app) => StatusOf(rig, app) is var (v, t, _) ? $"{v} from {t}" : "";

    /// <summary>The running version's name, origin trigger and command id, as `app status --json` reports them.</summary>
    private static (string? Version, string? Trigger, string? CommandId) StatusOf(ComposeRig rig, string app)
    {
        var r = Cmd.Run(Repo.Binary("app"), ["status", "--json", app], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = rig.Mender.Config });
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var running = doc.RootElement.GetProperty("applications")[0].GetProperty("running");
        if (running.ValueKind == JsonValueKind.Null)
        {
            return (null, null, null);
        }

        var origin = running.GetProperty("origin");
        return (running.GetProperty("version").GetString(), origin.GetProperty("trigger").GetString(), origin.GetProperty("command_id").GetString());
    }

    [SkippableFact]
    public async Task Fleet_updates_then_a_Mender_deployment_and_its_rollback_all_go_through_one_store()
    {
        using var rig = new ComposeRig();
        using var redis = new RedisServer();
        using var registry = new RegistryServer();
        var app = Unique.Name("both");
        var port = WebApps.FreePort();
        var repo = $"{registry.Address}/{app.ToLowerInvariant()}/web";
        registry.Push("appmodule/web:1.0", $"{app.ToLowerInvariant()}/web:1.0");
        registry.Push("appmodule/web:2.0", $"{app.ToLowerInvariant()}/web:2.0");
        registry.Push("appmodule/web:exits", $"{app.ToLowerInvariant()}/web:3.0");
        using var dir = new TempDir("both-app");
        var file = dir.Write("docker-compose.yml", $"services:\n  web:\n    image: {repo}:1.0\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
        var v4 = rig.Web.Image(app, "1.0");
        var v5 = rig.Web.Image(app, "2.0");
        _ = rig.Web.Spec("unused", app, v4, port); // registers the project for cleanup
        Cmd.Ok(DockerEngine.Cli, "compose", "-p", app.ToLowerInvariant(), "-f", file, "up", "-d"); // 1.0 runs, brought up by hand
        Assert.Equal("web 1.0", WebApps.Answer(port));

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        await using var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = redis.Host, Port = redis.Port }, cts.Token);
        var cfg = new AgentConfig
        {
            RpcName = "both_" + app,
            Channel = "both_versions_" + app,
            Apps = [new AgentApp(app, dir.Path, null)],
            ReportInterval = TimeSpan.Zero,
            SubModuleConfig = Path.Combine(rig.Client.EtcDir, "mender-app-docker-compose.conf"),
            DockerCli = DockerEngine.Cli,
            // the same engine config `app` reads under the Mender client: one store
            Engine = new AppConfig { PersistentStore = rig.Mender.Store, SubModulesDir = rig.Mender.SubModules, HealthTimeout = TimeSpan.FromSeconds(60), Soak = TimeSpan.Zero },
        };
        var agent = new FleetAgent(cfg, bus);
        var run = agent.RunAsync(cts.Token);
        async Task<DockerCommandResponse> Fleet(string version)
        {
            var r = await new CommlibRpcClient(bus).CallAsync(cfg.RpcName, new DockerCommandRequest("update_version", dir.Path, version), TimeSpan.FromMinutes(3), cts.Token);
            Assert.Equal(RpcOutcome.Replied, r.Outcome);
            return r.Response!;
        }

        try
        {
            // fleet v1 -> v2: healthy, committed; the store's running version is the fleet's, with its command id
            Assert.True((await Fleet("2.0")).Success);
            Assert.Equal("web 2.0", WebApps.Answer(port));
            Assert.Equal("2.0 from fleet", Running(rig, app));
            Assert.False(string.IsNullOrEmpty(StatusOf(rig, app).CommandId));

            // fleet v3 exits at start: rolled back by the engine, the store still runs 2.0
            var broken = await Fleet("3.0");
            Assert.False(broken.Success, broken.Message);
            Assert.Equal("web 2.0", WebApps.Answer(port));
            Assert.Equal("2.0 from fleet", Running(rig, app));

            // a Mender deployment through the real client: it stops what the fleet deployed and runs v4
            Ok(rig.Install(rig.Web.Spec("web-v4", app, v4, port)));
            Assert.Equal("web 1.0", WebApps.Answer(port));
            Assert.Equal("web-v4 from mender", Running(rig, app));

            // Mender rollback of v4 (not committed): back to the fleet's last-known-good 2.0
            Ok(rig.Client.Rollback());
            Assert.Equal("web 2.0", WebApps.Answer(port));
            Assert.Equal("2.0 from fleet", Running(rig, app));

            // and a Mender deployment committed after the fleet's: the fleet agent then reports its version's tag
            Ok(rig.Install(rig.Web.Spec("web-v5", app, v5, port)));
            Ok(rig.Client.Commit());
            Assert.Equal("web 2.0", WebApps.Answer(port));
            Assert.Equal("web-v5 from mender", Running(rig, app));
            Assert.Equal("2.0", agent.CurrentVersion(cfg.Apps[0]));
        }
        finally
        {
            await cts.CancelAsync();
            try { await run; } catch (OperationCanceledException) { }
            foreach (var tag in new[] { "1.0", "2.0", "3.0" })
            {
                Cmd.Run(DockerEngine.Cli, ["image", "rm", $"{repo}:{tag}"]);
            }
        }
    }
}
