using System.Globalization;
using System.Text.RegularExpressions;
using AppModule.Core;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Wire;
using TestSupport;
using Xunit.Abstractions;

namespace Fleet.Tests;

/// <summary>
/// The fleet agent's engine-disk pre-check, on a private dockerd whose data root is a small tmpfs: the agent asks
/// the registry what a pull would bring (layers and their compressed sizes) and plans it the way an artifact's
/// install is planned (the sub-module's STORAGE, the one InstallPlanner); an update that cannot fit is refused
/// with the numbers before anything is pulled or stopped, and the running app keeps running.
/// </summary>
public sealed partial class AgentDiskPreCheckTests(ITestOutputHelper output) : IDisposable
{
    private const int PadMiB = 40;
    private readonly List<string> _tags = [];
    private readonly TempDir _dir = new("agent-disk");

    [SkippableFact]
    public async Task An_update_whose_layers_cannot_fit_is_refused_with_the_numbers_before_the_pull_and_the_running_app_keeps_running()
    {
        DockerEngine.Require();
        DockerEngine.RequireImages();
        Requires.Component("published docker-compose sub-module", File.Exists(Path.Combine(Repo.BinDir, "docker-compose")), $"it is missing in {Repo.BinDir}: run build/publish.sh");
        // 72 MiB: web 1.0 runs in a few MiB. The update adds a layer of 40 MiB of random bytes (it does not
        // compress): at least 40 MiB unpacked plus the 40 MiB download kept until it is unpacked, and the 4 MiB
        // margin: more than the tmpfs holds. web 2.0 (a few MiB) fits.
        using var engine = new PrivateDockerd(dataRootMiB: 72);
        using var registry = new RegistryServer();
        using var redis = new RedisServer();
        var id = Guid.NewGuid().ToString("N")[..8];
        var app = "agentdisk" + id;
        var repo = $"{registry.Address}/agentdisk{id}/web";
        registry.Push("appmodule/web:1.0", $"agentdisk{id}/web:1.0");
        registry.Push("appmodule/web:2.0", $"agentdisk{id}/web:2.0");
        registry.Push(BuildPadded($"agentdisk{id}/web:big-local"), $"agentdisk{id}/web:big");

        // The app runs 1.0 on the private engine, brought up by hand from its directory (as before any agent).
        var dir = _dir.Dir("app");
        var file = Path.Combine(dir, "docker-compose.yml");
        var compose = $"services:\n  web:\n    image: \"{repo}:1.0\"\n    restart: \"no\"\n";
        await File.WriteAllTextAsync(file, compose);
        var up = Cmd.Run(DockerEngine.Cli, ["-H", engine.Host, "compose", "-p", app, "-f", file, "up", "-d"], timeout: TimeSpan.FromMinutes(5));
        Assert.True(up.ExitCode == 0, $"compose up on the private engine: {up}\n{engine.Log}");

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        await using var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = redis.Host, Port = redis.Port }, cts.Token);
        var cfg = Config(id, app, dir, engine);
        var agent = new FleetAgent(cfg, bus);
        var run = agent.RunAsync(cts.Token);
        try
        {
            // The agent takes the running 1.0 into its store (restart adopts it as the last-known-good).
            var adopted = await CallAsync(bus, cfg, new DockerCommandRequest("restart", dir), cts.Token);
            Assert.True(adopted.Success, adopted.Message);
            var before = Running(engine, app);

            var refused = await CallAsync(bus, cfg, new DockerCommandRequest("update_version", dir, "big"), cts.Token);

            output.WriteLine($"the agent's answer: {refused.Message}");
            Assert.False(refused.Success, refused.Message);
            Assert.Contains("update to big refused by the pre-check, nothing changed", refused.Message, StringComparison.Ordinal);
            // The numbers: at least the new layer's compressed size plus its download, the margin, what is free, where.
            var m = NeedsRegex().Match(refused.Message);
            Assert.True(m.Success, $"the refusal does not name the numbers: {refused.Message}");
            var needed = long.Parse(m.Groups["needed"].Value, CultureInfo.InvariantCulture);
            var free = long.Parse(m.Groups["free"].Value, CultureInfo.InvariantCulture);
            Assert.True(needed >= 2L * PadMiB << 20, $"the need ({needed} bytes) leaves out the {PadMiB} MiB layer or its download: {refused.Message}");
            Assert.True(needed + (4L << 20) > free, $"refused although {needed} bytes + 4 MiB fit in {free}: {refused.Message}");
            Assert.Contains("(compressed, as the registry lists them; they unpack larger)", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"on the engine's data root {engine.DataRoot}", refused.Message, StringComparison.Ordinal);

            // Nothing was pulled or stopped: the same container runs since the same instant, the file and the store are as they were.
            Assert.Null(engine.ImageId($"{repo}:big"));
            Assert.Equal(before, Running(engine, app));
            Assert.Equal(compose, await File.ReadAllTextAsync(file));
            var state = agent.Store.Load(app);
            Assert.Equal("1.0", agent.Store.ReadComposition(app, state.Running!).ArtifactName); // adopted as the last-known-good, still running
            Assert.Null(state.Pending);
            Assert.DoesNotContain(agent.Store.Journal(app), j => j.Event is "prepared" or "stopping" && j.Detail.StartsWith("big", StringComparison.Ordinal));

            // An update that fits passes the same check and installs.
            var fits = await CallAsync(bus, cfg, new DockerCommandRequest("update_version", dir, "2.0"), cts.Token);
            Assert.True(fits.Success, $"{fits.Message}\n{engine.Docker("system", "df").Stdout}");
            Assert.Equal($"{repo}:2.0", Running(engine, app)[0]);
        }
        finally
        {
            await cts.CancelAsync();
            try { await run; } catch (OperationCanceledException) { }
            engine.Docker("compose", "-p", app, "-f", file, "down");
        }
    }

    [GeneratedRegex(@"need at least [\d.]+ MiB \((?<needed>\d+) bytes.*?only [\d.]+ MiB \((?<free>\d+) bytes\) are free", RegexOptions.Singleline)]
    private static partial Regex NeedsRegex();

    private static async Task<DockerCommandResponse> CallAsync(RedisFleetBus bus, AgentConfig cfg, DockerCommandRequest req, CancellationToken ct)
    {
        var r = await new CommlibRpcClient(bus).CallAsync(cfg.RpcName, req, TimeSpan.FromMinutes(5), ct);
        Assert.Equal(RpcOutcome.Replied, r.Outcome);
        return r.Response!;
    }

    /// <summary>"image|container id|started at" of the project's container on the private engine.</summary>
    private static string[] Running(PrivateDockerd engine, string app)
    {
        var ids = engine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}");
        Assert.False(string.IsNullOrEmpty(ids), $"no running container for project {app}");
        return engine.DockerOk("inspect", "-f", "{{.Config.Image}}|{{.Id}}|{{.State.StartedAt}}", ids.Split('\n')[0]).Split('|');
    }

    /// <summary>The agent's config for the private engine: its docker CLI and the sub-module both talk to it; a 4 MiB margin.</summary>
    private AgentConfig Config(string id, string app, string dir, PrivateDockerd engine)
    {
        var stateDir = _dir.Dir("state");
        var conf = Path.Combine(stateDir, "docker-compose.conf");
        File.WriteAllText(conf, $"state_dir = \"{stateDir}/submodule\"\ndocker_command = \"{DockerEngine.Cli}\"\ndocker_host = \"{engine.Host}\"\nrollout_timeout = 60\n");
        var cli = Path.Combine(stateDir, "docker");
        File.WriteAllText(cli, $"#!/bin/sh\nexec '{DockerEngine.Cli}' -H '{engine.Host}' \"$@\"\n");
        File.SetUnixFileMode(cli, (UnixFileMode)0b111_101_101);
        return new AgentConfig
        {
            RpcName = "docker_compose_service_" + id,
            Channel = "version_channel_" + id,
            EventsChannel = "fleet_events_" + id,
            Apps = [new AgentApp(app, dir, null)],
            ReportInterval = TimeSpan.Zero,
            SubModuleConfig = conf,
            DockerCli = cli,
            Engine = new AppConfig
            {
                PersistentStore = Path.Combine(stateDir, "store"),
                SubModulesDir = Repo.BinDir,
                HealthTimeout = TimeSpan.FromSeconds(60),
                HealthPoll = TimeSpan.FromSeconds(1),
                Soak = TimeSpan.Zero,
                EngineDiskMarginBytes = 4L << 20,
            },
        };
    }

    /// <summary>web 2.0 plus a layer of <see cref="PadMiB"/> MiB of random bytes, built on the shared engine.</summary>
    private string BuildPadded(string tag)
    {
        var context = _dir.Dir("padded");
        using (var f = File.Create(Path.Combine(context, "pad")))
        {
            var block = new byte[1 << 20];
            for (var i = 0; i < PadMiB; i++)
            {
                Random.Shared.NextBytes(block);
                f.Write(block);
            }
        }

        File.WriteAllText(Path.Combine(context, "Dockerfile"), "FROM appmodule/web:2.0\nCOPY pad /pad\n");
        DockerEngine.DockerOk("build", "-q", "-t", tag, context);
        _tags.Add(tag);
        return tag;
    }

    public void Dispose()
    {
        foreach (var t in _tags)
        {
            DockerEngine.Docker("image", "rm", t);
        }

        _dir.Dispose();
    }
}
