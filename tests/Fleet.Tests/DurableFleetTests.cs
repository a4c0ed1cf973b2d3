using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Registry;
using Fleet.Core.Security;
using Fleet.Core.State;
using Fleet.Core.Updater;
using Fleet.Core.Wire;
using TestSupport;

namespace Fleet.Tests;

/// <summary>A redis-server that persists every write (AOF) and can be restarted, and a registry with web:1.0/2.0.</summary>
public sealed class DurableFixture : IDisposable
{
    private readonly TempDir _dir = new("fleet-aof");
    public RedisServer Redis { get; }
    public PushedRegistry Registry { get; } = new();
    public DurableFixture() => Redis = RedisServer.StartWithAof(_dir.Path);
    public void Dispose() { Redis.Dispose(); Registry.Dispose(); _dir.Dispose(); }
}

/// <summary>Durable delivery and shared state: reports on a Redis stream read by a consumer group, decisions
/// recorded atomically in Redis, commands idempotent per (app, target, attempt). Simulated devices serve commlib RPC
/// as fleet-agents do, answer a command key they already ran from their cache (counting what they run), and report
/// their version on the stream, also periodically.</summary>
public sealed class DurableFleetTests(DurableFixture fx) : IClassFixture<DurableFixture>
{
    private sealed class Fleet(string id, DurableFixture fx) : IAsyncDisposable
    {
        public string Id { get; } = id;
        public string Prefix => "fleet_" + Id;
        public string Channel => "vc_" + Id;
        public string Rpc(string app) => $"{Id}_m_{app}";
        public ConcurrentDictionary<string, int> Executed { get; } = new();
        public ConcurrentDictionary<string, int> Received { get; } = new();
        /// <summary>The manifest digest each device's last update_version carried.</summary>
        public ConcurrentDictionary<string, string?> Digests { get; } = new();
        public ConcurrentDictionary<string, string> Version { get; } = new();
        /// <summary>Devices that answer every command with a failure (as an agent whose health gate failed and rolled back).</summary>
        public ConcurrentDictionary<string, byte> Failing { get; } = new();
        /// <summary>Order of events across devices: when each first received a command, and when each ran its new version.</summary>
        public ConcurrentDictionary<string, long> FirstReceived { get; } = new();
        public ConcurrentDictionary<string, long> Converged { get; } = new();
        /// <summary>Every command other than update_version each device ran (restart, update, down): app, command, wait, key.</summary>
        public ConcurrentQueue<(string App, string Command, bool? Wait, string? Key)> Operations { get; } = new();
        /// <summary>With a key, devices run only commands signed with it (as agents with FLEET_HMAC_KEY).</summary>
        public byte[]? HmacKey { get; init; }
        private long _seq;
        private readonly ConcurrentDictionary<string, DockerCommandResponse> _seenKeys = new();
        private readonly CancellationTokenSource _cts = new(TimeSpan.FromMinutes(4));
        private readonly List<Task> _tasks = [];
        private RedisFleetBus? _bus;
        public FleetState State { get; private set; } = null!;
        public CancellationToken Token => _cts.Token;

        public Hashtable Env(IEnumerable<string> apps, string target) => new()
        {
            ["REDIS_HOST"] = fx.Redis.Host,
            ["REDIS_PORT"] = fx.Redis.Port.ToString(),
            ["APP_TO_DIRECTORY"] = "{" + string.Join(',', apps.Select(a => $"\"{a}\":\"/opt/{a}\"")) + "}",
            ["APPS_TO_UPDATE"] = "{" + string.Join(',', apps.Select(a => $"\"{a}\":\"{target}\"")) + "}",
            ["APP_TO_RPC"] = "{" + string.Join(',', apps.Select(a => $"\"{a}\":\"{Rpc(a)}\"")) + "}",
            ["APP_TO_IMAGE"] = "{" + string.Join(',', apps.Select(a => $"\"{a}\":\"{fx.Registry.Web}\"")) + "}",
        };

        /// <summary>Starts one simulated device per app, each running <paramref name="initial"/> and reporting it now and
        /// every <paramref name="reportEvery"/>.</summary>
        public async Task StartDevicesAsync(IEnumerable<string> apps, string initial, TimeSpan work, TimeSpan reportEvery)
        {
            _bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = fx.Redis.Host, Port = fx.Redis.Port }, Token);
            State = new FleetState(_bus.Database, new FleetStateOptions { Prefix = Prefix });
            foreach (var app in apps)
            {
                Version[app] = initial;
                var one = new SemaphoreSlim(1); // one command per app at a time, as the agent's per-app lock
                var verifier = HmacKey is null ? null : new CommandVerifier(HmacKey, Rpc(app), TimeSpan.FromMinutes(5));
                var server = new CommlibRpcServer(_bus, Rpc(app), async (req, ct) =>
                {
                    if (verifier?.Check(req) is { } refusal) return new DockerCommandResponse(false, refusal);
                    Received.AddOrUpdate(app, 1, (_, n) => n + 1);
                    if (req.Command == "update_version") Digests[app] = req.Digest;
                    FirstReceived.TryAdd(app, Interlocked.Increment(ref _seq));
                    await one.WaitAsync(ct);
                    try { return await RunAsync(req, ct); }
                    finally { one.Release(); }
                }, _ => { });
                _tasks.Add(server.RunAsync(Token));

                async Task<DockerCommandResponse> RunAsync(DockerCommandRequest req, CancellationToken ct)
                {
                    if (req.IdempotencyKey is { } k && _seenKeys.TryGetValue(k, out var cached)) return cached;
                    if (req.Command != "update_version")
                    {
                        Operations.Enqueue((app, req.Command, req.Wait, req.IdempotencyKey));
                        return Failing.ContainsKey(app) ? new DockerCommandResponse(false, $"{req.Command} failed: health gate failed")
                            : new DockerCommandResponse(true, $"{req.Command} of {req.Directory} done");
                    }
                    Executed.AddOrUpdate(app, 1, (_, n) => n + 1);
                    await Task.Delay(work, ct);
                    DockerCommandResponse resp;
                    if (Failing.ContainsKey(app))
                    {
                        resp = new DockerCommandResponse(false, $"health gate failed for {req.NewVersion}: rolled back to {Version[app]}");
                        if (req.IdempotencyKey is { } fk) _seenKeys[fk] = resp;
                        return resp;
                    }
                    Version[app] = req.NewVersion!;
                    Converged.TryAdd(app, Interlocked.Increment(ref _seq));
                    resp = new DockerCommandResponse(true, $"Successfully updated to version {req.NewVersion}");
                    if (req.IdempotencyKey is { } key) _seenKeys[key] = resp;
                    // as the agent: a report that cannot be sent (Redis restarting) is logged, not a failed update
                    try { await ReportAsync(app, ct); }
                    catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException) { }
                    return resp;
                }
                _tasks.Add(Task.Run(async () =>
                {
                    while (!Token.IsCancellationRequested)
                    {
                        try { await ReportAsync(app, Token); }
                        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException) { } // Redis restarting: the next report goes through
                        try { await Task.Delay(reportEvery, Token); } catch (OperationCanceledException) { return; }
                    }
                }));
            }
        }

        private Task ReportAsync(string app, CancellationToken ct) =>
            State.AddReportAsync(WireCodec.EncodeVersion(new VersionMessage(app, Version[app], [])), ct);

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            try { await Task.WhenAll(_tasks); } catch (OperationCanceledException) { }
            if (_bus is not null) await _bus.DisposeAsync();
            _cts.Dispose();
        }
    }

    private Fleet NewFleet(byte[]? hmacKey = null) => new(Guid.NewGuid().ToString("N")[..8], fx) { HmacKey = hmacKey };

    private static async Task WaitUntil(Func<bool> cond, string what, int seconds = 60)
    {
        var sw = Stopwatch.StartNew();
        while (!cond() && sw.Elapsed < TimeSpan.FromSeconds(seconds)) await Task.Delay(50);
        Assert.True(cond(), "timed out waiting until " + what);
    }

    private async Task<(FleetUpdater Updater, RedisFleetBus Bus, Task Run, CancellationTokenSource Cts)> StartUpdater(Fleet f, IEnumerable<string> apps, string target, TimeSpan? rpcTimeout = null, int readWindow = 64, TimeSpan? errorRetry = null, string? conf = null, Action<Hashtable>? env = null)
    {
        var vars = f.Env(apps, target);
        env?.Invoke(vars);
        var cfg = UpdaterConfig.Load(conf, vars) with
        {
            Channel = f.Channel,
            RpcTimeout = rpcTimeout ?? TimeSpan.FromSeconds(10),
            ErrorRetry = errorRetry ?? TimeSpan.FromSeconds(5),
            State = new FleetStateOptions { Prefix = f.Prefix, ClaimIdle = TimeSpan.FromSeconds(1), ReadWindow = readWindow },
        };
        var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, f.Token);
        var u = new FleetUpdater(cfg, bus, new RegistryClient(cfg.Registry));
        var cts = CancellationTokenSource.CreateLinkedTokenSource(f.Token);
        return (u, bus, u.RunAsync(cts.Token), cts);
    }

    private static async Task StopAsync((FleetUpdater Updater, RedisFleetBus Bus, Task Run, CancellationTokenSource Cts) u)
    {
        await u.Cts.CancelAsync();
        await u.Run;
        await u.Bus.DisposeAsync();
    }

    private string Observed(Fleet f, string app) => fx.Redis.Cli("HGET", f.Prefix + ":observed", app).Split('\t')[0];

    [Fact]
    public async Task A_report_added_while_no_updater_runs_is_acted_on_once_an_updater_starts()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync(["early"], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        await WaitUntil(() => fx.Redis.Cli("XLEN", f.Prefix + ":reports") == "1", "the report is on the stream");
        Assert.Equal("", fx.Redis.Cli("HGET", f.Prefix + ":observed", "early")); // nobody has read it yet

        var u = await StartUpdater(f, ["early"], "2.0");
        await WaitUntil(() => Observed(f, "early") == "2.0", "the device runs and reports 2.0");
        await WaitUntil(() => fx.Redis.Cli("HGET", f.Prefix + ":cmd:early", "status") == "success", "the reply is recorded");
        await StopAsync(u);

        Assert.Equal(1, f.Executed["early"]);
        Assert.Equal("success", fx.Redis.Cli("HGET", f.Prefix + ":cmd:early", "status"));
        Assert.Equal("early:2.0:1", fx.Redis.Cli("HGET", f.Prefix + ":cmd:early", "key"));
        Assert.Equal("0", fx.Redis.Cli("XPENDING", f.Prefix + ":reports", "updaters").Split('\n')[0]);
    }

    [Fact]
    public async Task A_fleet_agent_reports_on_the_stream_so_the_updater_sees_its_version_without_any_app_publishing_and_a_bridged_report_is_added_once()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync([], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        using var dir = new TempDir("fleet-agent-report");
        var appDir = Directory.CreateDirectory(Path.Combine(dir.Path, "app")).FullName;
        File.WriteAllText(Path.Combine(appDir, "docker-compose.yml"), $"services:\n  web:\n    image: \"{fx.Registry.Web}:1.0\"\n");
        var app = new AgentApp("agentapp", appDir, null);
        var cfg = new AgentConfig
        {
            Redis = new RedisOptions { Host = fx.Redis.Host, Port = fx.Redis.Port },
            RpcName = f.Rpc("agentapp"),
            Channel = f.Channel,
            EventsChannel = "",
            Apps = [app],
            ReportInterval = TimeSpan.Zero,
            StatePrefix = f.Prefix,
            Engine = new AppModule.Core.AppConfig { PersistentStore = Path.Combine(dir.Path, "store") },
        };
        await using var agentBus = await RedisFleetBus.ConnectAsync(cfg.Redis, f.Token);
        var agent = new FleetAgent(cfg, agentBus);
        var stream = f.Prefix + ":reports";

        // no updater runs: the PUBLISH reaches nobody, the stream keeps the report
        await agent.PublishVersionAsync(app, f.Token);
        Assert.Equal("1", fx.Redis.Cli("XLEN", stream));

        var u = await StartUpdater(f, ["agentapp"], "1.0");
        long UpToDate() => u.Updater.Metrics.Get("fleet_decisions_total", "decision=\"uptodate\"");
        long Bridged() => u.Updater.Metrics.Get("fleet_reports_bridged_total", "result=\"added\"") + u.Updater.Metrics.Get("fleet_reports_bridged_total", "result=\"duplicate\"");
        await WaitUntil(() => Observed(f, "agentapp") == "1.0", "the updater records the agent's version from the stream");
        await WaitUntil(() => fx.Redis.Cli("PUBSUB", "NUMSUB", f.Channel).Split('\n').Last() == "1", "the updater bridges the channel");

        // (the same payload within the dedupe window would be the same entry: the next report comes after it)
        await WaitUntil(() => fx.Redis.Cli("KEYS", f.Prefix + ":dedupe:*").Trim() == "", "the dedupe window of the first report has passed");
        var bridgedBefore = Bridged();

        // an updater runs: the report arrives twice (PUBLISH bridged by the updater, and the agent's own add) and is one entry
        await agent.PublishVersionAsync(app, f.Token);
        await WaitUntil(() => Bridged() == bridgedBefore + 1, "the updater's bridge handled the published copy");
        await WaitUntil(() => UpToDate() >= 2, "the second report is decided");
        await StopAsync(u);

        Assert.Equal("2", fx.Redis.Cli("XLEN", stream));
        Assert.Equal(2, UpToDate());
        Assert.Equal(2, u.Updater.Metrics.Get("fleet_reports_total"));
        Assert.Equal(bridgedBefore + 1, Bridged());
        Assert.Equal("0", fx.Redis.Cli("XPENDING", stream, "updaters").Split('\n')[0]);
    }

    [Fact]
    public async Task Malformed_reports_are_acknowledged_and_counted_and_the_consumer_keeps_serving()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync([], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        var stream = f.Prefix + ":reports";
        fx.Redis.Cli("XADD", stream, "*", "p", "not json at all");
        fx.Redis.Cli("XADD", stream, "*", "p", """{"appname":"x","version_number":1.0,"dependencies":{}}""");
        fx.Redis.Cli("XADD", stream, "*", "something", "else");
        var u = await StartUpdater(f, ["good"], "2.0");
        var decided = new ConcurrentQueue<Decision>();
        u.Updater.Decided += decided.Enqueue;
        await f.State.AddReportAsync(WireCodec.EncodeVersion(new VersionMessage("good", "2.0", [])), f.Token);
        await WaitUntil(() => decided.Any(d => d.App == "good"), "the good report is decided");
        await StopAsync(u);

        Assert.Equal(3, u.Updater.Metrics.Get("fleet_bad_input_total"));
        Assert.Equal(DecisionKind.UpToDate, decided.Single(d => d.App == "good").Kind);
        Assert.Contains(decided, d => d.Kind == DecisionKind.Invalid && d.Reason.Contains("without a payload field 'p'"));
        Assert.Equal("0", fx.Redis.Cli("XPENDING", stream, "updaters").Split('\n')[0]);
    }

    [Fact]
    public async Task An_updater_holds_at_most_its_read_window_of_undecided_reports_and_leaves_the_rest_in_the_stream()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync([], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        var stream = f.Prefix + ":reports";
        const int reports = 5000;
        await f.State.AddReportsAsync(Enumerable.Range(0, reports).Select(i => WireCodec.EncodeVersion(new VersionMessage($"other{i}", "1.0", []))).ToList(), dedupe: false, f.Token);
        await f.State.EnsureGroupAsync(f.Token);
        var u = await StartUpdater(f, ["listed"], "2.0", readWindow: 64);
        long decided = 0;
        u.Updater.Decided += _ => Interlocked.Increment(ref decided);

        // sampled until every report is decided: reports read and not acknowledged (XPENDING), and entries not yet read (lag)
        long maxPending = 0, samplesWithBoth = 0;
        var sw = Stopwatch.StartNew();
        while (Interlocked.Read(ref decided) < reports && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var summary = (StackExchange.Redis.RedisResult[])(await f.State.Database.ExecuteAsync("XPENDING", stream, "updaters"))!;
            var pending = (long)summary[0];
            var groups = (StackExchange.Redis.RedisResult[])(await f.State.Database.ExecuteAsync("XINFO", "GROUPS", stream))!;
            var info = ((StackExchange.Redis.RedisResult[])groups[0]!).Chunk(2).ToDictionary(kv => (string)kv[0]!, kv => kv[1]);
            var lag = info["lag"].IsNull ? -1 : (long)info["lag"];
            maxPending = Math.Max(maxPending, pending);
            if (pending > 0 && lag > 0) samplesWithBoth++;
        }
        await StopAsync(u);

        Assert.Equal(reports, Interlocked.Read(ref decided));
        Assert.InRange(maxPending, 1, 64);
        Assert.True(samplesWithBoth > 0, "no sample saw reports being decided while others still waited unread in the stream");
        Assert.Equal(reports, u.Updater.Metrics.Get("fleet_decisions_total", "decision=\"notlisted\""));
    }

    [Fact]
    public async Task Two_updaters_bridge_one_published_report_onto_the_stream_once_and_decide_it_once()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync([], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        var a = await StartUpdater(f, ["pub"], "1.0");
        var b = await StartUpdater(f, ["pub"], "1.0");
        var decided = new ConcurrentQueue<Decision>();
        a.Updater.Decided += decided.Enqueue;
        b.Updater.Decided += decided.Enqueue;
        await WaitUntil(() => fx.Redis.Cli("PUBSUB", "NUMSUB", f.Channel).Split('\n').Last() == "2", "both updaters listen");
        // a commlib app publishes as it always did
        fx.Redis.Cli("PUBLISH", f.Channel, """{"appname": "pub", "version_number": "1.0", "dependencies": {}}""");
        await WaitUntil(() => !decided.IsEmpty, "the report is decided");
        await StopAsync(a);
        await StopAsync(b);

        Assert.Equal("1", fx.Redis.Cli("XLEN", f.Prefix + ":reports"));
        var d = Assert.Single(decided);
        Assert.Equal(DecisionKind.UpToDate, d.Kind);
    }

    [Fact]
    public async Task A_target_goes_only_to_devices_whose_platform_it_offers_and_the_command_carries_that_platforms_manifest_digest()
    {
        await using var f = NewFleet();
        var m = await fx.Registry.MultiPlatformAsync();
        // p1 and p3 are in a group of the other platform: web:2.0 is built for the engine's platform only, multi:2.0 is
        // an index of both; p2 runs the engine's platform
        string[] apps = ["p1", "p2", "p3"];
        using var tmp = new TempDir("fleet-platform");
        var conf = tmp.Write("updater.toml", $"""
            [groups.edge]
            members = ["p1", "p3"]
            platform = "{m.Other}"
            [apps.p2]
            platform = "{m.Native}"
            """);
        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));
        var u = await StartUpdater(f, apps, "2.0", conf: conf,
            env: e => e["APP_TO_IMAGE"] = $$"""{"p1":"{{fx.Registry.Web}}","p2":"{{fx.Registry.Web}}","p3":"{{m.Image}}"}""");
        var refused = new ConcurrentQueue<Decision>();
        u.Updater.Decided += d => { if (d.Kind == DecisionKind.PlatformMissing) refused.Enqueue(d); };
        await WaitUntil(() => f.Version["p2"] == "2.0" && f.Version["p3"] == "2.0" && refused.Any(d => d.App == "p1"), "p2 and p3 run 2.0 and p1's report is refused");

        Assert.Equal(m.NativeDigest, f.Digests["p2"]);
        Assert.Equal(m.OtherDigest, f.Digests["p3"]); // the manifest of p3's platform, not the index
        Assert.False(f.Received.ContainsKey("p1"));
        Assert.Equal($"refused: the devices of p1 run {m.Other}, and {fx.Registry.Web}:2.0 is a single-platform image for {m.Native}, not {m.Other}; push an image for {m.Other} under 2.0 (e.g. docker buildx build --platform {m.Other}) or fix the target or the platform",
            refused.First(d => d.App == "p1").Reason);
        Assert.Equal("", fx.Redis.Cli("HGET", f.Prefix + ":cmd:p1", "status")); // nothing claimed for it
        await StopAsync(u);
    }

    [Fact]
    public async Task A_target_set_at_run_time_applies_without_a_restart()
    {
        await using var f = NewFleet();
        await f.StartDevicesAsync(["rt"], "1.0", TimeSpan.Zero, TimeSpan.FromMilliseconds(300));
        var u = await StartUpdater(f, ["rt"], "1.0");
        await WaitUntil(() => Observed(f, "rt") == "1.0", "the device's report is recorded");
        Assert.False(f.Executed.ContainsKey("rt"));

        await f.State.SetTargetAsync("rt", "~2.0", f.Token);
        await WaitUntil(() => Observed(f, "rt") == "2.0", "the device runs the run-time target");
        await StopAsync(u);
        Assert.Equal(1, f.Executed["rt"]);
        Assert.Equal("rt:2.0:1", fx.Redis.Cli("HGET", f.Prefix + ":cmd:rt", "key"));
    }

    [Fact]
    public async Task Redis_restarted_mid_wave_the_rollout_resumes_and_completes_with_one_run_per_device()
    {
        await using var f = NewFleet();
        var apps = Enumerable.Range(1, 30).Select(i => $"r{i:D2}").ToArray();
        var u = await StartUpdater(f, apps, "2.0");
        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(1));
        await WaitUntil(() => f.Executed.Count >= 5, "the wave is under way");

        fx.Redis.Restart();

        await WaitUntil(() => apps.All(a => Observed(f, a) == "2.0"), "every device reports 2.0 (recorded in Redis)", 120);
        await WaitUntil(() => apps.All(a => fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + a, "status") == "success"), "every reply is recorded");
        await StopAsync(u);
        Assert.All(apps, a => Assert.Equal(1, f.Executed[a]));
        Assert.All(apps, a => Assert.Equal("success", fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + a, "status")));
    }

    [Fact]
    public async Task A_send_that_failed_on_the_updaters_side_is_retried_soon_with_the_same_key_and_runs_once()
    {
        await using var f = NewFleet();
        // the device's RPC list is a string: the updater's RPUSH fails (WRONGTYPE), as a send does while Redis restarts
        fx.Redis.Cli("SET", f.Rpc("e1"), "not a list");
        await f.StartDevicesAsync(["e1"], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10)); // one report only
        var u = await StartUpdater(f, ["e1"], "2.0", errorRetry: TimeSpan.FromSeconds(1));
        string Cmd(string field) => fx.Redis.Cli("HGET", f.Prefix + ":cmd:e1", field);
        await WaitUntil(() => Cmd("status") == "error", "the send fails and is recorded as an error");
        Assert.Contains("WRONGTYPE", Cmd("message"));
        var key = Cmd("key");

        fx.Redis.Cli("DEL", f.Rpc("e1"));

        // retried without a new report of the device (its next one is 10 min away) and long before retry_after (300 s)
        await WaitUntil(() => Observed(f, "e1") == "2.0", "the retried command runs on the device");
        await WaitUntil(() => Cmd("status") == "success", "its reply is recorded");
        await StopAsync(u);
        Assert.Equal(key, Cmd("key"));
        Assert.Equal(1, f.Executed["e1"]);
        Assert.True(int.Parse(Cmd("retries")) >= 1);
    }

    [Fact]
    public async Task Redis_restarted_mid_rollout_the_rollout_resumes_from_its_AOF_and_completes_with_one_run_per_device()
    {
        await using var f = NewFleet();
        var apps = Enumerable.Range(1, 12).Select(i => $"a{i:D2}").ToArray();
        using var tmp = new TempDir("fleet-rollout-aof");
        var conf = RolloutConf(tmp, f, "g", apps);
        var env = f.Env(apps, "1.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        env["FLEET_LOG_LEVEL"] = "info";
        string H(string field) => fx.Redis.Cli("HGET", f.Prefix + ":rollout:g", field);
        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(1000), TimeSpan.FromSeconds(1));
        using var u = Start(conf, env);
        await WaitUntil(() => apps.All(x => Observed(f, x) == "1.0"), "every device's 1.0 is recorded");
        var started = Ctl(conf, env, "start", "g", "2.0", "--waves", "2,50%"); // 2, 6, 12
        Assert.True(started.Code == 0, started.Err);
        // restarted while a device of the second wave runs its command (its answer and report meet the restart)
        await WaitUntil(() => apps[2..6].Any(x => f.FirstReceived.ContainsKey(x) && !f.Converged.ContainsKey(x)), "the second wave is under way", 120);

        fx.Redis.Restart();

        await WaitUntil(() => H("status") is "completed" or "halted", "the rollout completes after the restart", 180);
        Assert.True(H("status") == "completed", $"status {H("status")} wave {H("wave")} reason {H("reason")} at_target {H("at_target")}\n{u.StandardErrorTail()}");
        u.Kill();
        Assert.All(apps, x => Assert.Equal("2.0", Observed(f, x)));
        Assert.All(apps, x => Assert.True(f.Executed[x] == 1, $"{x} ran its command {f.Executed[x]} times"));
        Assert.Equal("12", H("at_target"));
    }

    [Fact]
    public async Task Two_updater_processes_serve_one_fleet_and_one_killed_with_SIGKILL_mid_wave_loses_nothing_and_sends_nothing_twice()
    {
        await using var f = NewFleet();
        var apps = Enumerable.Range(1, 30).Select(i => $"k{i:D2}").ToArray();
        using var tmp = new TempDir("fleet-kill");
        var conf = tmp.Write("updater.toml", $"""
            [redis]
            channel = "{f.Channel}"
            [updater]
            rpc_timeout_seconds = 3
            state_prefix = "{f.Prefix}"
            claim_idle_seconds = 1
            """);
        var env = f.Env(apps, "2.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        env["FLEET_LOG_LEVEL"] = "info";
        using var a = Start(conf, env);
        using var b = Start(conf, env);
        await WaitUntil(() => fx.Redis.Cli("PUBSUB", "NUMSUB", f.Channel).Split('\n').Last() == "2", "both updaters run");
        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1));
        await WaitUntil(() => f.Executed.Count >= 5, "the wave is under way");

        a.Kill();
        Assert.True(a.WaitForExit(10_000));

        await WaitUntil(() => apps.All(x => Observed(f, x) == "2.0"), "every device reports 2.0", 120);
        var bErr = b.StandardErrorTail();
        b.Kill();
        Assert.All(apps, x => Assert.True(f.Executed[x] == 1, $"{x} ran its command {f.Executed[x]} times\n{bErr}"));
        Assert.All(apps, x => Assert.Equal("2.0", fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + x, "target")));
    }

    private static string RolloutConf(TempDir tmp, Fleet f, string group, IEnumerable<string> members) => tmp.Write("updater.toml", $"""
        [redis]
        channel = "{f.Channel}"
        [updater]
        rpc_timeout_seconds = 5
        state_prefix = "{f.Prefix}"
        claim_idle_seconds = 1
        [groups.{group}]
        members = [{string.Join(", ", members.Select(m => $"\"{m}\""))}]
        [rollout]
        wave_timeout_seconds = 300
        """);

    /// <summary>Runs <c>fleet-updater rollout ...</c> to its end: exit code, stdout, stderr.</summary>
    private static (int Code, string Out, string Err) Ctl(string conf, Dictionary<string, string?> env, params string[] args) =>
        Run(conf, env, ["rollout", .. args]);

    private static (int Code, string Out, string Err) Run(string conf, Dictionary<string, string?> env, string[] args) => UpdaterCli.Run(conf, env, args);

    private static System.Text.Json.JsonElement StatusJson(string conf, Dictionary<string, string?> env, string group, int expectCode = 0)
    {
        var (code, stdout, err) = Ctl(conf, env, "status", group, "--json");
        Assert.True(code == expectCode, $"rollout status exited {code}, expected {expectCode}: {err}");
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        return Assert.Single(doc.RootElement.EnumerateArray()).Clone();
    }

    [Fact]
    public async Task A_rollout_goes_out_in_waves_each_after_the_previous_converged_holds_while_paused_and_an_updater_killed_mid_rollout_is_continued_by_another()
    {
        await using var f = NewFleet();
        var apps = Enumerable.Range(1, 10).Select(i => $"w{i:D2}").ToArray();
        using var tmp = new TempDir("fleet-rollout");
        var conf = RolloutConf(tmp, f, "canary", apps);
        var env = f.Env(apps, "1.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        env["FLEET_LOG_LEVEL"] = "info";
        var rollout = f.Prefix + ":rollout:canary";
        string H(string field) => fx.Redis.Cli("HGET", rollout, field);
        int[] waveOf = [0, 1, 1, 1, 1, 2, 2, 2, 2, 2]; // waves "1,50%" of 10: 1 device, then to 5, then the rest

        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(1));
        using var a = Start(conf, env);
        await WaitUntil(() => fx.Redis.Cli("PUBSUB", "NUMSUB", f.Channel).Split('\n').Last() == "1", "the updater runs");
        await WaitUntil(() => apps.All(x => Observed(f, x) == "1.0"), "every device's 1.0 is recorded");
        Assert.Empty(f.Executed); // the configured target is the running 1.0

        var started = Ctl(conf, env, "start", "canary", "2.0", "--waves", "1,50%");
        Assert.True(started.Code == 0, started.Err);
        Assert.Equal("", started.Out);
        Assert.Equal("1,5,10", H("bounds"));

        // pause once the first device is being updated: what is released converges, nothing further is released
        await WaitUntil(() => f.Executed.ContainsKey("w01"), "the first wave's device gets the command");
        var paused = Ctl(conf, env, "pause", "canary");
        Assert.True(paused.Code == 0, paused.Err);
        var pausedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var wave = int.Parse(H("wave"));
        var released = new[] { 1, 5, 10 }[wave];
        await WaitUntil(() => long.Parse(H("gauges_at") is { Length: > 0 } g ? g : "0") > pausedAt && H("at_target") == released.ToString(),
            "an updater evaluated the paused rollout with its released waves at the target");
        Assert.Equal("paused", H("status"));
        Assert.Equal(wave.ToString(), H("wave"));
        Assert.DoesNotContain(apps.Where((x, i) => waveOf[i] > wave), x => f.FirstReceived.ContainsKey(x));
        var whilePaused = StatusJson(conf, env, "canary");
        Assert.Equal("paused", whilePaused.GetProperty("status").GetString());
        Assert.Equal(released, whilePaused.GetProperty("counts").GetProperty("at_target").GetInt32());
        Assert.Equal(10 - released, whilePaused.GetProperty("counts").GetProperty("held").GetInt32());

        var resumed = Ctl(conf, env, "resume", "canary");
        Assert.True(resumed.Code == 0, resumed.Err);

        // SIGKILL the updater once the last wave is under way; a new one continues from Redis
        await WaitUntil(() => apps.Where((x, i) => waveOf[i] == 2).Any(f.Executed.ContainsKey), "the last wave is under way", 120);
        a.Kill();
        Assert.True(a.WaitForExit(10_000));
        using var b = Start(conf, env);
        await WaitUntil(() => H("status") == "completed", "the rollout completes", 180);
        b.Kill();

        Assert.All(apps, x => Assert.Equal("2.0", Observed(f, x)));
        Assert.All(apps, x => Assert.True(f.Executed[x] == 1, $"{x} ran its command {f.Executed[x]} times"));
        // the next wave started only after every device of the earlier waves ran the target and reported it
        for (int w = 1; w <= 2; w++)
        {
            var before = apps.Where((x, i) => waveOf[i] < w).Max(x => f.Converged[x]);
            foreach (var x in apps.Where((x, i) => waveOf[i] == w))
                Assert.True(f.FirstReceived[x] > before, $"{x} (wave {w + 1}) got its command before the earlier waves converged");
        }
        var done = StatusJson(conf, env, "canary");
        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.Equal(10, done.GetProperty("counts").GetProperty("at_target").GetInt32());
        Assert.Equal(3, done.GetProperty("waves").GetInt32());
        var table = Ctl(conf, env, "status");
        Assert.Equal(0, table.Code);
        Assert.Matches(@"canary\s+2\.0\s+completed\s+3/3\s+10\s+0\s+0\s+0\s+0", table.Out);
    }

    [Fact]
    public async Task A_first_wave_with_failing_devices_halts_the_rollout_before_the_next_wave_status_names_them_and_a_rollout_started_again_after_a_fix_completes()
    {
        await using var f = NewFleet();
        var apps = Enumerable.Range(1, 30).Select(i => $"h{i:D2}").ToArray();
        using var tmp = new TempDir("fleet-halt");
        var conf = RolloutConf(tmp, f, "fleet", apps);
        var env = f.Env(apps, "1.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        var rollout = f.Prefix + ":rollout:fleet";
        string H(string field) => fx.Redis.Cli("HGET", rollout, field);
        foreach (var x in new[] { "h01", "h02", "h03" }) f.Failing[x] = 0;

        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1));
        using var u = Start(conf, env);
        await WaitUntil(() => fx.Redis.Cli("PUBSUB", "NUMSUB", f.Channel).Split('\n').Last() == "1", "the updater runs");

        var unknown = Ctl(conf, env, "start", "nosuchgroup", "2.0");
        Assert.Equal(2, unknown.Code);
        Assert.Contains("no group 'nosuchgroup'", unknown.Err);
        var range = Ctl(conf, env, "start", "fleet", "~2.0");
        Assert.Equal(2, range.Code);
        Assert.Contains("is a range", range.Err);

        var started = Ctl(conf, env, "start", "fleet", "2.0", "--waves", "10,50%"); // 10, then 15, then 30
        Assert.True(started.Code == 0, started.Err);
        await WaitUntil(() => H("status") == "halted", "the rollout halts", 120);

        Assert.Equal("0", H("wave"));
        Assert.Matches(@"wave 1 of 3: [1-3] device\(s\) failed 2\.0 \(at most 0 allowed\): h0[1-3]: health gate failed", H("reason"));
        await WaitUntil(() => new[] { "h01", "h02", "h03" }.All(x => fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + x, "status") == "failure"), "every failure of the first wave is recorded");
        Assert.DoesNotContain(apps[10..], x => f.FirstReceived.ContainsKey(x));
        var s = StatusJson(conf, env, "fleet", expectCode: 6);
        Assert.Equal("halted", s.GetProperty("status").GetString());
        Assert.Equal(3, s.GetProperty("counts").GetProperty("failed").GetInt32());
        Assert.Equal(20, s.GetProperty("counts").GetProperty("held").GetInt32());
        var failed = s.GetProperty("devices").EnumerateArray().Where(d => d.GetProperty("state").GetString() == "failed").ToList();
        Assert.Equal(["h01", "h02", "h03"], failed.Select(d => d.GetProperty("app").GetString()));
        Assert.All(failed, d => Assert.Contains("health gate failed", d.GetProperty("message").GetString()));
        var table = Ctl(conf, env, "status", "fleet");
        Assert.Equal(6, table.Code);
        Assert.Contains("failed: h01, h02, h03", table.Out);

        var resume = Ctl(conf, env, "resume", "fleet");
        Assert.Equal(5, resume.Code);
        Assert.Contains("halted by itself", resume.Err);
        var abort = Ctl(conf, env, "abort", "fleet");
        Assert.True(abort.Code == 0, abort.Err);
        Assert.Equal("aborted", H("status"));
        Assert.DoesNotContain(apps[10..], x => f.FirstReceived.ContainsKey(x));

        // the operator fixes the three devices and starts the rollout again: their failures belong to the aborted
        // rollout, so the new one neither halts on them nor waits retry_after; it sends them the target again with a
        // new key, and completes
        var keysBefore = new[] { "h01", "h02", "h03" }.ToDictionary(x => x, x => fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + x, "key"));
        f.Failing.Clear();
        var again = Ctl(conf, env, "start", "fleet", "2.0", "--waves", "10,50%");
        Assert.True(again.Code == 0, again.Err);
        var fresh = StatusJson(conf, env, "fleet");
        Assert.Equal(0, fresh.GetProperty("counts").GetProperty("failed").GetInt32());
        await WaitUntil(() => H("status") is "completed" or "halted", "the second rollout ends", 120);
        Assert.True(H("status") == "completed", "the second rollout " + H("status") + ": " + H("reason"));
        Assert.All(apps, x => Assert.Equal("2.0", Observed(f, x)));
        foreach (var (x, before) in keysBefore)
        {
            Assert.Equal(2, f.Executed[x]);
            Assert.NotEqual(before, fx.Redis.Cli("HGET", f.Prefix + ":cmd:" + x, "key"));
        }
        Assert.All(apps[3..], x => Assert.Equal(1, f.Executed[x]));
        u.Kill();
    }

    [Fact]
    public async Task Seed_002_operations_from_the_cli_reach_one_device_or_a_group_signed_and_the_exit_code_says_how_they_ended()
    {
        const string key = "device-ops-shared-key-0123456789";
        await using var f = NewFleet(CommandSigner.KeyFromText(key, "test"));
        string[] apps = ["d1", "d2", "d3", "d4"]; // d4 has no device serving it
        using var tmp = new TempDir("fleet-device-ops");
        var conf = RolloutConf(tmp, f, "trio", apps[..3]);
        var env = f.Env(apps, "1.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        env["FLEET_HMAC_KEY"] = key;
        await f.StartDevicesAsync(apps[..3], "1.0", TimeSpan.Zero, TimeSpan.FromMinutes(10));
        (string App, string Command, bool? Wait, string? Key)[] Ops(string app) => f.Operations.Where(o => o.App == app).ToArray();

        var group = Device(conf, env, "restart", "--group", "trio");
        Assert.True(group.Code == 0, group.Err);
        Assert.All(apps[..3], x => Assert.Matches($@"(?m)^{x}\s+success\s+restart of /opt/{x} done$", group.Out));
        Assert.All(apps[..3], x => Assert.Equal("restart", Assert.Single(Ops(x)).Command));
        Assert.All(apps[..3], x => Assert.Null(Ops(x)[0].Wait)); // the health wait is the agent's default
        Assert.Equal(3, f.Operations.Select(o => o.Key).Distinct().Count()); // a key of its own per device

        var down = Device(conf, env, "down", "d2", "--json");
        Assert.True(down.Code == 0, down.Err);
        using (var doc = System.Text.Json.JsonDocument.Parse(down.Out))
        {
            var row = Assert.Single(doc.RootElement.EnumerateArray());
            Assert.Equal(("d2", "down", "success"), (row.GetProperty("app").GetString(), row.GetProperty("command").GetString(), row.GetProperty("outcome").GetString()));
        }
        Assert.Equal(["restart", "down"], Ops("d2").Select(o => o.Command));
        Assert.Single(Ops("d1"));

        var update = Device(conf, env, "update", "d1", "--no-wait");
        Assert.True(update.Code == 0, update.Err);
        Assert.Equal(("update", false), (Ops("d1")[^1].Command, Ops("d1")[^1].Wait));

        f.Failing["d3"] = 0;
        var failed = Device(conf, env, "restart", "d1", "d3");
        Assert.Equal(1, failed.Code);
        Assert.Matches(@"(?m)^d3\s+failure\s+restart failed: health gate failed$", failed.Out);
        Assert.Matches(@"(?m)^d1\s+success", failed.Out);

        var unreachable = Device(conf, env, "restart", "d4", "--timeout", "2");
        Assert.Equal(7, unreachable.Code);
        Assert.Matches(@"(?m)^d4\s+unreachable\s+no answer", unreachable.Out);
        Assert.Equal("0", fx.Redis.Cli("LLEN", f.Rpc("d4"))); // retracted: a device starting later does not run it

        // without the key the devices refuse the command and nothing runs
        var unsignedEnv = env.Where(e => e.Key != "FLEET_HMAC_KEY").ToDictionary(e => e.Key, e => e.Value);
        var before = f.Operations.Count;
        var unsigned = Device(conf, unsignedEnv, "down", "d1");
        Assert.Equal(1, unsigned.Code);
        Assert.Contains("unsigned command refused", unsigned.Out);
        Assert.Equal(before, f.Operations.Count);

        Assert.Equal(2, Device(conf, env, "restart", "nosuchapp").Code);
        Assert.Equal(2, Device(conf, env, "reboot", "d1").Code);
        Assert.Equal(2, Device(conf, env, "restart", "--group", "nosuchgroup").Code);
        Assert.Equal(before, f.Operations.Count);
    }

    private static (int Code, string Out, string Err) Device(string conf, Dictionary<string, string?> env, params string[] args) =>
        Run(conf, env, ["device", .. args]);

    [Fact]
    public async Task Health_reports_the_groups_lag_and_is_unhealthy_above_health_max_lag_until_an_updater_catches_up()
    {
        await using var f = NewFleet();
        var cfg = UpdaterConfig.Load(null, f.Env(["l1"], "1.0")) with
        {
            Channel = f.Channel,
            HealthMaxLag = 3,
            State = new FleetStateOptions { Prefix = f.Prefix },
        };
        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, f.Token);
        var u = new FleetUpdater(cfg, bus, new RegistryClient(cfg.Registry));
        await u.State!.EnsureGroupAsync(f.Token);
        for (int i = 0; i < 5; i++) await u.State.AddReportAsync(WireCodec.EncodeVersion(new VersionMessage("l1", "1.0", [])), f.Token);

        var (healthy, json) = await u.HealthAsync(f.Token);

        Assert.False(healthy, json);
        using (var doc = System.Text.Json.JsonDocument.Parse(json))
        {
            var h = doc.RootElement;
            Assert.Equal("unhealthy", h.GetProperty("status").GetString());
            Assert.Contains("5 report(s) not read by any updater", h.GetProperty("reason").GetString());
            Assert.True(h.GetProperty("redis").GetProperty("reachable").GetBoolean());
            Assert.Equal(5, h.GetProperty("consumer").GetProperty("lag").GetInt64());
            Assert.Equal(3, h.GetProperty("consumer").GetProperty("max_lag").GetInt64());
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(f.Token);
        var run = u.RunAsync(cts.Token);
        for (int i = 0; i < 1200 && !healthy; i++)
        {
            await Task.Delay(50);
            (healthy, json) = await u.HealthAsync(f.Token);
        }
        await cts.CancelAsync();
        await run;
        Assert.True(healthy, json);
        using var after = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(0, after.RootElement.GetProperty("consumer").GetProperty("lag").GetInt64());
        Assert.Equal("1.0", Observed(f, "l1"));
    }

    [Fact]
    public async Task The_updater_serves_healthz_beside_metrics_says_when_redis_is_away_and_writes_json_log_lines_when_configured()
    {
        await using var f = NewFleet();
        using var tmp = new TempDir("fleet-health");
        var port = RedisServer.FreePort();
        var conf = tmp.Write("updater.toml", $"""
            [redis]
            channel = "{f.Channel}"
            [updater]
            state_prefix = "{f.Prefix}"
            metrics_listen = "127.0.0.1:{port}"
            log_format = "json"
            """);
        var env = f.Env(["j1"], "2.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        await f.StartDevicesAsync(["j1"], "1.0", TimeSpan.Zero, TimeSpan.FromSeconds(1));
        using var u = Start(conf, env);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        async Task<(int Code, System.Text.Json.JsonElement Body)> HealthWhen(int code)
        {
            (int, System.Text.Json.JsonElement) last = (0, default);
            for (int i = 0; i < 600 && last.Item1 != code; i++)
            {
                try
                {
                    using var r = await http.GetAsync($"http://127.0.0.1:{port}/healthz");
                    using var doc = System.Text.Json.JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                    last = ((int)r.StatusCode, doc.RootElement.Clone());
                }
                catch (HttpRequestException) { }
                if (last.Item1 != code) await Task.Delay(100);
            }
            Assert.True(last.Item1 == code, $"/healthz did not answer {code} (last: {last.Item1} {last.Item2})\n{u.StandardErrorTail()}");
            return last;
        }

        var ok = await HealthWhen(200);
        Assert.Equal("ok", ok.Body.GetProperty("status").GetString());
        Assert.True(ok.Body.GetProperty("redis").GetProperty("reachable").GetBoolean());
        Assert.Equal(f.Prefix + ":reports", ok.Body.GetProperty("consumer").GetProperty("stream").GetString());
        var metrics = "";
        for (int i = 0; i < 600 && !metrics.Contains("fleet_rpc_total{outcome=\"success\"} 1"); i++)
        {
            await Task.Delay(100);
            metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        }
        Assert.Contains("fleet_rpc_total{outcome=\"success\"} 1", metrics); // the device is updated, beside /healthz

        fx.Redis.Stop();
        try
        {
            var down = await HealthWhen(503);
            Assert.Equal("unhealthy", down.Body.GetProperty("status").GetString());
            Assert.False(down.Body.GetProperty("redis").GetProperty("reachable").GetBoolean());
            Assert.Contains("is not reachable", down.Body.GetProperty("reason").GetString());
        }
        finally { fx.Redis.Start(); }
        await HealthWhen(200);

        var lines = u.KillAndReadError().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var json = lines.Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.Clone()).ToList(); // every line is one JSON object
        Assert.All(json, j =>
        {
            Assert.True(DateTimeOffset.TryParse(j.GetProperty("time").GetString(), out _));
            Assert.Contains(j.GetProperty("level").GetString(), new[] { "error", "warning", "info", "debug" });
            Assert.Equal("fleet-updater", j.GetProperty("component").GetString());
            Assert.False(string.IsNullOrEmpty(j.GetProperty("msg").GetString()));
        });
        string? Field(System.Text.Json.JsonElement j, string k) => j.TryGetProperty(k, out var v) ? v.GetString() : null;
        Assert.Contains(json, j => Field(j, "decision") == "update" && Field(j, "app") == "j1" && Field(j, "reported") == "1.0" && Field(j, "target") == "2.0");
        Assert.Contains(json, j => Field(j, "outcome") == "success" && Field(j, "key") == "j1:2.0:1");
    }

    [Fact]
    public async Task Targets_set_cleared_and_reset_with_the_cli_apply_without_a_restart_and_list_answers_on_stdout()
    {
        await using var f = NewFleet();
        string[] apps = ["t1", "t2"];
        using var tmp = new TempDir("fleet-target");
        var conf = RolloutConf(tmp, f, "pair", apps);
        var env = f.Env(apps, "1.0").Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        await f.StartDevicesAsync(apps, "1.0", TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
        using var u = Start(conf, env);
        await WaitUntil(() => apps.All(x => Observed(f, x) == "1.0"), "both devices' reports are recorded");

        var set = Target(conf, env, "set", "t1", "~2.0");
        Assert.True(set.Code == 0, set.Err);
        Assert.Equal("", set.Out);
        await WaitUntil(() => Observed(f, "t1") == "2.0", "t1 runs the run-time target");
        Assert.False(f.Executed.ContainsKey("t2"));

        var clear = Target(conf, env, "clear", "t2");
        Assert.True(clear.Code == 0, clear.Err);
        var list = Target(conf, env, "list", "--json");
        Assert.True(list.Code == 0, list.Err);
        using (var doc = System.Text.Json.JsonDocument.Parse(list.Out))
        {
            var rows = doc.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("app").GetString()!);
            Assert.Equal("~2.0", rows["t1"].GetProperty("runtime").GetString());
            Assert.Equal("~2.0", rows["t1"].GetProperty("effective").GetString());
            Assert.Equal("1.0", rows["t1"].GetProperty("configured").GetString());
            Assert.Equal("", rows["t2"].GetProperty("runtime").GetString());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, rows["t2"].GetProperty("effective").ValueKind);
        }
        var reset = Target(conf, env, "reset", "t1");
        Assert.True(reset.Code == 0, reset.Err);
        Assert.Equal("0", fx.Redis.Cli("HEXISTS", f.Prefix + ":targets", "t1"));
        Assert.Matches(@"t1\s+1\.0\s+-\s+1\.0\s+-", Target(conf, env, "list").Out);
        await WaitUntil(() => Observed(f, "t1") == "1.0", "t1 is back at its configured target");

        var bad = Target(conf, env, "set", "nosuchapp", "2.0");
        Assert.Equal(2, bad.Code);
        Assert.Contains("'nosuchapp' is not a configured app", bad.Err);
        var badVersion = Target(conf, env, "set", "t1", "not a version");
        Assert.Equal(2, badVersion.Code);
        u.Kill();
        Assert.Equal(2, f.Executed["t1"]);
        Assert.False(f.Executed.ContainsKey("t2"));
    }

    private static (int Code, string Out, string Err) Target(string conf, Dictionary<string, string?> env, params string[] args) =>
        Run(conf, env, ["target", .. args]);

    private static Proc Start(string conf, Dictionary<string, string?> env)
    {
        var psi = new ProcessStartInfo(Repo.Binary("fleet-updater")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(conf);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        return new Proc(Process.Start(psi)!);
    }

    private sealed class Proc : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _err = new();
        public Proc(Process p)
        {
            _p = p;
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_err) _err.AppendLine(e.Data); };
            p.OutputDataReceived += (_, _) => { };
            p.BeginErrorReadLine();
            p.BeginOutputReadLine();
        }
        public void Kill() { if (!_p.HasExited) Cmd.Run("kill", "-KILL", _p.Id.ToString()); }
        public bool WaitForExit(int ms) => _p.WaitForExit(ms);
        public string StandardErrorTail() { lock (_err) { var s = _err.ToString(); return s.Length > 6000 ? s[^6000..] : s; } }
        /// <summary>Kills the process and returns everything it wrote on stderr.</summary>
        public string KillAndReadError()
        {
            Kill();
            _p.WaitForExit(); // and for the end of its redirected output
            lock (_err) return _err.ToString();
        }
        public void Dispose() { if (!_p.HasExited) _p.Kill(true); _p.Dispose(); }
    }
}
