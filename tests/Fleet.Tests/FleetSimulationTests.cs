using System.Collections;
using System.Collections.Concurrent;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Registry;
using Fleet.Core.Security;
using Fleet.Core.Updater;
using Fleet.Core.Wire;
using TestSupport;

namespace Fleet.Tests;

public sealed class FleetFixture : IDisposable
{
    public RedisServer Redis { get; } = new();
    public PushedRegistry Registry { get; } = new();
    public void Dispose() { Redis.Dispose(); Registry.Dispose(); }
}

/// <summary>A simulated fleet on a real redis-server and docker-registry: device services that answer
/// update_version by republishing the new version, as seed 001's service does.</summary>
public sealed class FleetSimulationTests(Deferred<FleetFixture> deferred) : IClassFixture<Deferred<FleetFixture>>
{
    private FleetFixture fx => deferred.Value;

    private sealed record Sim(FleetUpdater Updater, RedisFleetBus Bus, ConcurrentQueue<(string App, DockerCommandRequest Req)> Calls,
        ConcurrentQueue<Decision> Decisions, string Channel, CancellationTokenSource Cts, List<Task> Tasks);

    /// <param name="rpcTimeout">how long the updater waits for an agent (default 10 s: a loaded CI machine must not turn a success into a timeout)</param>
    private async Task<Sim> StartAsync(Dictionary<string, string?> targets, IEnumerable<string> agents, string? hmac = null, Func<DockerCommandRequest, string?>? verify = null, TimeSpan? rpcTimeout = null)
    {
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = fx.Redis.Host, Port = fx.Redis.Port }, cts.Token);
        var prefix = Guid.NewGuid().ToString("N")[..6];
        var channel = "version_channel_" + prefix;
        var env = new Hashtable
        {
            ["REDIS_HOST"] = fx.Redis.Host,
            ["REDIS_PORT"] = fx.Redis.Port.ToString(),
            ["APP_TO_DIRECTORY"] = "{" + string.Join(',', targets.Keys.Select(a => $"\"{a}\":\"/opt/{a}\"")) + "}",
            ["APPS_TO_UPDATE"] = "{" + string.Join(',', targets.Where(t => t.Value is not null).Select(t => $"\"{t.Key}\":\"{t.Value}\"")) + "}",
            ["APP_TO_RPC"] = "{" + string.Join(',', targets.Keys.Select(a => $"\"{a}\":\"{prefix}_machine_{a}\"")) + "}",
            ["APP_TO_IMAGE"] = "{" + string.Join(',', targets.Keys.Select(a => $"\"{a}\":\"{fx.Registry.Web}\"")) + "}",
        };
        if (hmac is not null) env["FLEET_HMAC_KEY"] = hmac;
        var cfg = UpdaterConfig.Load(null, env) with { Channel = channel, RpcTimeout = rpcTimeout ?? TimeSpan.FromSeconds(10), State = new() { Prefix = "fleet_" + prefix } };
        var updater = new FleetUpdater(cfg, bus, new RegistryClient(cfg.Registry));
        var calls = new ConcurrentQueue<(string, DockerCommandRequest)>();
        var decisions = new ConcurrentQueue<Decision>();
        updater.Decided += decisions.Enqueue;
        var tasks = new List<Task> { updater.RunAsync(cts.Token) };
        foreach (var app in agents)
        {
            var server = new CommlibRpcServer(bus, $"{prefix}_machine_{app}", async (req, ct) =>
            {
                calls.Enqueue((app, req));
                if (verify?.Invoke(req) is { } refusal) return new DockerCommandResponse(false, refusal);
                await bus.PublishAsync(channel, WireCodec.EncodeVersion(new VersionMessage(app, req.NewVersion!, [])), ct);
                return new DockerCommandResponse(true, $"Successfully updated to version {req.NewVersion}");
            }, _ => { });
            tasks.Add(server.RunAsync(cts.Token));
        }
        // The version channel is fire-and-forget: publish only once the updater listens on it.
        for (var i = 0; i < 500 && fx.Redis.Cli("PUBSUB", "NUMSUB", channel).Split('\n').LastOrDefault()?.Trim() is "0" or null; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal("1", fx.Redis.Cli("PUBSUB", "NUMSUB", channel).Split('\n').Last().Trim());
        return new Sim(updater, bus, calls, decisions, channel, cts, tasks);
    }

    private static async Task StopAsync(Sim s)
    {
        await s.Updater.DrainAsync();
        await s.Cts.CancelAsync();
        await Task.WhenAll(s.Tasks);
        await s.Bus.DisposeAsync();
    }

    private static async Task WaitUntil(Func<bool> cond, string what)
    {
        for (int i = 0; i < 1500 && !cond(); i++) await Task.Delay(20);
        Assert.True(cond(), "timed out waiting until " + what);
    }

    [SkippableFact]
    public async Task Only_listed_apps_are_updated_to_exactly_their_target_once_and_missing_targets_are_refused()
    {
        var targets = new Dictionary<string, string?>();
        for (int i = 1; i <= 30; i++)
            targets[$"app{i}"] = (i % 5) switch { 0 => null, 1 => "2.0", 2 => ">=1.5,<3", 3 => "9.9", _ => "~1.0" };
        var s = await StartAsync(targets, targets.Keys);
        var pub = s.Bus;
        for (int round = 0; round < 3; round++)
            foreach (var app in targets.Keys)
                await pub.PublishAsync(s.Channel, WireCodec.EncodeVersion(new VersionMessage(app, "1.0", [])), s.Cts.Token);

        int expectedUpdates = targets.Count(t => t.Value is "2.0" or ">=1.5,<3");
        await WaitUntil(() => s.Calls.Count >= expectedUpdates, $"{expectedUpdates} updates");
        // the republished 2.0 reports arrive and are judged up to date
        await WaitUntil(() => s.Decisions.Count(d => d.Kind == DecisionKind.UpToDate && d.Reported == "2.0") >= expectedUpdates, "republished versions judged");
        await StopAsync(s);

        var byApp = s.Calls.GroupBy(c => c.App).ToDictionary(g => g.Key, g => g.Select(c => c.Req).ToList());
        foreach (var (app, target) in targets)
        {
            if (target is "2.0" or ">=1.5,<3")
            {
                var req = Assert.Single(byApp[app]);
                // no platform configured: the command pins the tag's manifest, as the registry names it
                Assert.Equal(new DockerCommandRequest("update_version", $"/opt/{app}", "2.0") { Digest = fx.Registry.Server.ManifestDigest("fleettest/web:2.0") }, req with { IdempotencyKey = null });
                Assert.Equal($"{app}:2.0:1", req.IdempotencyKey);
            }
            else Assert.False(byApp.ContainsKey(app), $"{app} (target {target ?? "none"}) must not be updated");
        }
        Assert.All(s.Decisions.Where(d => targets[d.App] == "9.9"), d =>
        {
            Assert.Equal(DecisionKind.TargetMissing, d.Kind);
            Assert.Contains("does not exist in registry", d.Reason);
        });
        Assert.All(s.Decisions.Where(d => targets[d.App] is null), d => Assert.Equal(DecisionKind.NotListed, d.Kind));
        Assert.All(s.Decisions.Where(d => targets[d.App] == "~1.0"), d => Assert.Equal(DecisionKind.UpToDate, d.Kind));
        Assert.Equal(expectedUpdates, s.Updater.Metrics.Get("fleet_rpc_total", "outcome=\"success\""));
    }

    [SkippableFact]
    public async Task An_unreachable_agent_times_out_cleanly_and_its_request_is_retracted()
    {
        var s = await StartAsync(new() { ["lonely"] = "2.0" }, agents: [], rpcTimeout: TimeSpan.FromMilliseconds(800));
        var rpcs = new ConcurrentQueue<RpcResult>();
        s.Updater.RpcCompleted += (_, r) => rpcs.Enqueue(r);
        await s.Bus.PublishAsync(s.Channel, WireCodec.EncodeVersion(new VersionMessage("lonely", "1.0", [])), s.Cts.Token);
        await WaitUntil(() => !rpcs.IsEmpty, "the RPC outcome");
        await StopAsync(s);
        var r = Assert.Single(rpcs);
        Assert.Equal(RpcOutcome.TimedOut, r.Outcome);
        Assert.True(r.Retracted);
        Assert.Equal(1, s.Updater.Metrics.Get("fleet_rpc_total", "outcome=\"timeout\""));
        // nothing of the call is left: neither the request on the device's list nor the reply list
        Assert.Equal("", fx.Redis.Cli("--scan", "--pattern", RpcNameOf(s, "lonely")));
        Assert.Equal("", fx.Redis.Cli("--scan", "--pattern", "rpc-*"));
        Assert.Equal("timeout", fx.Redis.Cli("HGET", s.Updater.State!.Options.CommandKey("lonely"), "status"));
    }

    [SkippableFact]
    public async Task Start_up_validation_reports_each_target_and_a_bad_report_is_dropped_with_a_reason()
    {
        var s = await StartAsync(new() { ["a1"] = "2.0", ["a2"] = "7.7", ["a3"] = ">=1.1,<2" }, agents: []);
        var result = await s.Updater.ValidateTargetsAsync(s.Cts.Token);
        Assert.Equal("2.0", result["a1"]);
        Assert.Null(result["a2"]);
        Assert.Null(result["a3"]);
        var d = await s.Updater.HandleReportAsync("""{"appname":"a1","version_number":1.0,"dependencies":{}}"""u8.ToArray(), s.Cts.Token);
        Assert.Equal(DecisionKind.Invalid, d.Kind);
        await StopAsync(s);
    }

    [SkippableFact]
    public async Task Signed_commands_are_accepted_by_a_verifying_agent()
    {
        const string key = "0123456789abcdef0123456789abcdef";
        CommandVerifier? verifier = null;
        var s = await StartAsync(new() { ["signed"] = "2.0" }, ["signed"], hmac: key, verify: req => verifier!.Check(req));
        // the agent verifies against its own RPC name
        verifier = new CommandVerifier(CommandSigner.KeyFromText(key, "test"), RpcNameOf(s), TimeSpan.FromSeconds(60));
        await s.Bus.PublishAsync(s.Channel, WireCodec.EncodeVersion(new VersionMessage("signed", "1.0", [])), s.Cts.Token);
        await WaitUntil(() => s.Updater.Metrics.Get("fleet_rpc_total", "outcome=\"success\"") == 1, "a successful signed update");
        var (_, req) = Assert.Single(s.Calls);
        Assert.NotNull(req.Signature);
        Assert.Equal("replayed command refused (this nonce was already used)", verifier.Check(req));
        await StopAsync(s);
    }

    private static string RpcNameOf(Sim s, string app = "signed") => s.Channel.Replace("version_channel_", "") + "_machine_" + app;
}
