using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Registry;
using Fleet.Core.Updater;
using Fleet.Core.Wire;

// Fleet benchmark: N simulated apps report their version over a real redis-server; the updaters, each in a process of
// its own (this program started again with --role updater), decide for each report (PEP 440 compare, registry check
// against a real docker-registry, cached; decide-and-record in Redis) and send update RPCs to simulated device
// services (in this process), which answer and report the new version.
// Reports travel on the report stream (--via stream, as fleet-agents do; default) or on the commlib pub/sub channel,
// bridged onto the stream by the updaters (--via pubsub; bridge dedupe off when a single updater runs).
// Prints version reports handled per second and the p50/p99/max decision latency (read from the stream -> decided and
// recorded in Redis).
// usage: dotnet run -c Release --project bench/fleet -- [--apps 10000] [--rounds 5] [--agents 100] [--updaters 1]
//        [--via stream|pubsub] [--window 256]
int apps = 10_000, rounds = 5, agents = 100, updaters = 1, window = new Fleet.Core.State.FleetStateOptions().ReadWindow;
int redisPort = 0, regPort = 0;
string via = "stream", role = "bench";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--apps": apps = int.Parse(args[++i]); break;
        case "--rounds": rounds = int.Parse(args[++i]); break;
        case "--agents": agents = int.Parse(args[++i]); break;
        case "--updaters": updaters = int.Parse(args[++i]); break;
        case "--via" when i + 1 < args.Length && args[i + 1] is "stream" or "pubsub": via = args[++i]; break;
        case "--window": window = int.Parse(args[++i]); break;
        case "--role" when i + 1 < args.Length && args[i + 1] is "updater": role = args[++i]; break;
        case "--out": i++; break;
        case "--ports": redisPort = int.Parse(args[++i]); regPort = int.Parse(args[++i]); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}; usage: [--apps N] [--rounds R] [--agents A] [--updaters U] [--via stream|pubsub] [--window W]"); return 2;
    }
}
Log.Component = "fleet-bench";
Log.Level = LogLevel.Error;

static int FreePort() { var l = new TcpListener(IPAddress.Loopback, 0); l.Start(); int p = ((IPEndPoint)l.LocalEndpoint).Port; l.Stop(); return p; }
static Process Start(string file, params string[] a)
{
    var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var x in a) psi.ArgumentList.Add(x);
    var p = Process.Start(psi)!;
    p.OutputDataReceived += (_, _) => { }; p.ErrorDataReceived += (_, _) => { };
    p.BeginOutputReadLine(); p.BeginErrorReadLine();
    return p;
}
static void Run(string file, params string[] a)
{
    var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
    foreach (var x in a) psi.ArgumentList.Add(x);
    using var p = Process.Start(psi)!;
    var err = p.StandardError.ReadToEnd(); p.StandardOutput.ReadToEnd(); p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{file} failed: {err}");
}

// The fleet: apps >= `apps` are the warm-up fleet: they run the whole path once before the measurement (the bench runs
// JIT compiled; the shipped updater is Native AOT and has no warm-up), and are not counted.
// Targets: half "2.0", a quarter the range ">=1.5,<3" (resolves to 2.0), a quarter not listed.
int warm = apps / 5;
string Name(int i) => i < apps ? $"app{i:D5}" : $"warm{i:D5}";
string Target(int i) => (i % 4) switch { 0 or 1 => "2.0", 2 => ">=1.5,<3", _ => "" };
UpdaterConfig Config()
{
    var env = new Hashtable
    {
        ["APP_TO_DIRECTORY"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"/opt/{Name(i)}\"")) + "}",
        ["APPS_TO_UPDATE"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Where(i => Target(i).Length > 0).Select(i => $"\"{Name(i)}\":\"{Target(i)}\"")) + "}",
        ["APP_TO_RPC"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"bench_machine_{i % agents}\"")) + "}",
        ["APP_TO_IMAGE"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"127.0.0.1:{regPort}/fleetbench/web\"")) + "}",
    };
    // one updater bridging pub/sub needs no dedupe; several do (each receives every PUBLISH)
    return UpdaterConfig.Load(null, env) with
    {
        Redis = new RedisOptions { Host = "127.0.0.1", Port = redisPort },
        Channel = "bench_version_channel",
        RpcTimeout = TimeSpan.FromSeconds(30),
        State = new() { BridgeDedupe = updaters == 1 ? TimeSpan.Zero : TimeSpan.FromSeconds(1), ReadWindow = window },
    };
}
if (role == "updater") return await RunUpdaterAsync();

var work = Directory.CreateTempSubdirectory("fleet-bench-").FullName;
redisPort = FreePort();
regPort = FreePort();
var redis = Start("redis-server", "--port", redisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no");
File.WriteAllText(Path.Combine(work, "registry.yml"), $"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\nhttp:\n  addr: 127.0.0.1:{regPort}\n");
var registryProc = Start("docker-registry", "serve", Path.Combine(work, "registry.yml"));
var children = new List<Child>();
try
{
    using (var http = new HttpClient())
        for (int i = 0; ; i++)
        {
            try { (await http.GetAsync($"http://127.0.0.1:{regPort}/v2/")).Dispose(); break; }
            catch (HttpRequestException) when (i < 200) { await Task.Delay(50); }
        }
    foreach (var (src, tag) in new[] { ("appmodule/web:1.0", "1.0"), ("appmodule/web:2.0", "2.0") })
        Run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--src-daemon-host", Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } dockerHost ? dockerHost : "unix:///var/run/docker.sock", $"docker-daemon:{src}", $"docker://127.0.0.1:{regPort}/fleetbench/web:{tag}");

    using var cts = new CancellationTokenSource();
    var cfg = Config();
    for (int i = 0; ; i++)
    {
        try { await (await RedisFleetBus.ConnectAsync(cfg.Redis, cts.Token)).DisposeAsync(); break; }
        catch (FleetBusException) when (i < 100) { await Task.Delay(100); }
    }
    await using var agentBus = await RedisFleetBus.ConnectAsync(cfg.Redis, cts.Token);
    await using var pubBus = await RedisFleetBus.ConnectAsync(cfg.Redis, cts.Token);
    var reporter = new Fleet.Core.State.FleetState(pubBus.Database, cfg.State);
    var agentReporter = new Fleet.Core.State.FleetState(agentBus.Database, cfg.State);

    // the updaters: this program again, one process each
    var self = Environment.ProcessPath!;
    var selfArgs = Path.GetFileNameWithoutExtension(self) == "dotnet" ? new[] { System.Reflection.Assembly.GetEntryAssembly()!.Location } : [];
    for (int u = 0; u < updaters; u++)
        children.Add(new Child(self, [.. selfArgs, "--role", "updater", "--ports", redisPort.ToString(), regPort.ToString(), "--apps", apps.ToString(),
            "--agents", agents.ToString(), "--updaters", updaters.ToString(), "--via", via, "--window", window.ToString(), "--out", Path.Combine(work, $"updater{u}.txt")]));

    var running = new List<Task>();
    long rpcs = 0;
    for (int a = 0; a < agents; a++)
    {
        var server = new CommlibRpcServer(agentBus, $"bench_machine_{a}", async (req, ct) =>
        {
            Interlocked.Increment(ref rpcs);
            var app = Path.GetFileName(req.Directory);
            var report = WireCodec.EncodeVersion(new VersionMessage(app, req.NewVersion!, []));
            if (via == "stream") await agentReporter.AddReportAsync(report, ct);
            else await agentBus.PublishAsync(cfg.Channel, report, ct);
            return new DockerCommandResponse(true, $"Successfully updated to version {req.NewVersion}");
        }, _ => { }) { IdlePoll = TimeSpan.FromMilliseconds(50) };
        running.Add(server.RunAsync(cts.Token));
    }
    // every updater listens (its group exists and it is subscribed) before the first report
    for (int i = 0; (await pubBus.Database.ExecuteAsync("PUBSUB", "NUMSUB", cfg.Channel)).ToDictionary().Values.Single().ToString() != updaters.ToString(); i++)
    {
        if (i > 1500 || children.Any(c => c.Exited)) throw new InvalidOperationException("the updater processes did not start: " + string.Join("; ", children.Select(c => c.Errors)));
        await Task.Delay(20);
    }

    var warmPayloads = Enumerable.Range(apps, warm).Select(i => WireCodec.EncodeVersion(new VersionMessage(Name(i), "1.0", []))).ToArray();
    for (int r = 0; r < 2; r++)
        await Task.WhenAll(warmPayloads.Select(p => via == "stream" ? reporter.AddReportAsync(p, cts.Token) : pubBus.PublishAsync(cfg.Channel, p, cts.Token)));
    while (children.Sum(c => c.Warm) < warm * 2 + warm * 3 / 4 || Interlocked.Read(ref rpcs) < warm * 3 / 4) await Task.Delay(20);
    Interlocked.Exchange(ref rpcs, 0);
    double Cpu() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds + CpuOf(redis.Id) + children.Sum(c => CpuOf(c.Pid));
    var cpuUpdaters0 = children.Sum(c => CpuOf(c.Pid));
    var cpu0 = Cpu();
    var cpuRedis0 = CpuOf(redis.Id);

    // Reports: every app reports 1.0, `rounds` times (periodic re-reports); updated apps then report 2.0 themselves.
    var payloads = Enumerable.Range(0, apps).Select(i => WireCodec.EncodeVersion(new VersionMessage(Name(i), "1.0", []))).ToArray();
    var sw = Stopwatch.StartNew();
    var startMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    if (Environment.GetEnvironmentVariable("FLEET_BENCH_PROGRESS") is not null)
        _ = Task.Run(async () => { while (!cts.IsCancellationRequested) { Console.Error.WriteLine($"{sw.ElapsedMilliseconds} ms: decided {children.Sum(c => c.Decided)}, rpcs {Interlocked.Read(ref rpcs)}"); await Task.Delay(500); } });
    for (int r = 0; r < rounds; r++)
    {
        var batch = new List<Task>(apps);
        foreach (var p in payloads) batch.Add(via == "stream" ? reporter.AddReportAsync(p, cts.Token) : pubBus.PublishAsync(cfg.Channel, p, cts.Token));
        await Task.WhenAll(batch);
    }
    long expected = (long)apps * rounds + apps * 3 / 4; // + one republished report per updated app
    while (children.Sum(c => c.Decided) < expected && sw.Elapsed < TimeSpan.FromMinutes(5) && !children.Any(c => c.Exited)) await Task.Delay(10);
    var elapsed = sw.Elapsed;
    var cpu = Cpu() - cpu0;
    var cpuUpdaters = children.Sum(c => CpuOf(c.Pid)) - cpuUpdaters0;
    var cpuRedis = CpuOf(redis.Id) - cpuRedis0;
    var reportPhase = children.Sum(c => c.Old) >= (long)apps * rounds ? TimeSpan.FromMilliseconds(children.Max(c => c.LastOldMs) - startMs) : elapsed;
    var results = new List<string>();
    foreach (var c in children) results.AddRange(await c.StopAsync());
    await cts.CancelAsync();
    try { await Task.WhenAll(running); } catch (OperationCanceledException) { }

    var decided = children.Sum(c => c.Decided);
    var kinds = results.Where(l => l.StartsWith("kind ", StringComparison.Ordinal)).Select(l => l.Split(' ')).GroupBy(x => x[1]).Select(g => $"{g.Key}={g.Sum(x => long.Parse(x[2]))}").Order();
    var sorted = results.Where(l => !l.StartsWith("kind ", StringComparison.Ordinal)).Select(l => double.Parse(l, System.Globalization.CultureInfo.InvariantCulture)).Order().ToArray();
    double P(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
    Console.WriteLine($"cpu: total {cpu:0.00} s (updater processes {cpuUpdaters:0.00} s, redis-server {cpuRedis:0.00} s, bench: reporters and device services {cpu - cpuUpdaters - cpuRedis:0.00} s); per report {cpu / decided * 1e6:0.0} us");
    Console.WriteLine($"apps: {apps}, agents: {agents}, rounds: {rounds}, updater processes: {updaters}, read window: {window}, reports via {via}");
    Console.WriteLine($"reports handled: {decided} of {expected} expected; all done (incl. {apps * 3 / 4} update RPC round trips and republished reports) in {elapsed.TotalSeconds:0.00} s");
    Console.WriteLine($"reports/s: {(double)apps * rounds / reportPhase.TotalSeconds:0} ({apps * rounds} published reports decided in {reportPhase.TotalSeconds:0.00} s)");
    Console.WriteLine($"decision latency ms (read from the stream -> decided and recorded): p50 {P(0.50):0.000}  p99 {P(0.99):0.000}  max {sorted.LastOrDefault():0.000}");
    Console.WriteLine($"update RPCs served: {rpcs}; decisions: {string.Join(", ", kinds)}");
    return decided >= expected && rpcs == apps * 3 / 4 ? 0 : 1;
}
finally
{
    foreach (var c in children) c.Kill();
    try { redis.Kill(); registryProc.Kill(); } catch (InvalidOperationException) { }
    try { Directory.Delete(work, true); } catch (IOException) { }
}

// --role updater: one FleetUpdater; progress on stdout every 10 ms ("progress decided warm old last-old-unix-ms")
// until the bench writes a line on stdin; then it stops, writes "kind NAME COUNT" lines and one latency (ms) per
// line to the --out file and prints "done".
async Task<int> RunUpdaterAsync()
{
    var outFile = args[Array.IndexOf(args, "--out") + 1];
    var cfg = Config();
    using var cts = new CancellationTokenSource();
    await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, cts.Token);
    var updater = new FleetUpdater(cfg, bus, new RegistryClient(cfg.Registry));
    var latencies = new ConcurrentQueue<double>();
    var kinds = new ConcurrentDictionary<DecisionKind, long>();
    long decided = 0, warmDecided = 0, old = 0, lastOldMs = 0;
    updater.Decided += d =>
    {
        if (d.App.StartsWith("warm", StringComparison.Ordinal)) { Interlocked.Increment(ref warmDecided); return; }
        latencies.Enqueue(d.Latency.TotalMilliseconds);
        kinds.AddOrUpdate(d.Kind, 1, (_, v) => v + 1);
        if (d.Reported == "1.0") { Interlocked.Exchange(ref lastOldMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()); Interlocked.Increment(ref old); }
        Interlocked.Increment(ref decided);
    };
    var run = updater.RunAsync(cts.Token);
    var stop = Task.Run(Console.In.ReadLine);
    void Progress() => Console.Out.WriteLine($"progress {Interlocked.Read(ref decided)} {Interlocked.Read(ref warmDecided)} {Interlocked.Read(ref old)} {Interlocked.Read(ref lastOldMs)}");
    while (!stop.IsCompleted) { Progress(); await Task.WhenAny(stop, Task.Delay(10)); }
    Progress();
    await cts.CancelAsync();
    await run;
    await File.WriteAllLinesAsync(outFile, kinds.Select(k => $"kind {k.Key} {k.Value}").Concat(latencies.Select(l => l.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
    Console.Out.WriteLine("done");
    return 0;
}

static double CpuOf(int pid)
{
    try { var f = File.ReadAllText($"/proc/{pid}/stat"); var x = f[(f.LastIndexOf(')') + 2)..].Split(' '); return (double.Parse(x[11]) + double.Parse(x[12])) / 100.0; }
    catch (IOException) { return 0; }
}

/// <summary>An updater process of the bench and its last progress line.</summary>
sealed class Child
{
    private readonly Process _p;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _errors = new();
    private readonly string _out;
    private long _decided, _warm, _old, _lastOldMs;

    public Child(string file, string[] args)
    {
        _out = args[Array.IndexOf(args, "--out") + 1];
        var psi = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { _done.TrySetResult(); return; }
            if (e.Data == "done") { _done.TrySetResult(); return; }
            var x = e.Data.Split(' ');
            if (x.Length != 5 || x[0] != "progress") return;
            Interlocked.Exchange(ref _decided, long.Parse(x[1]));
            Interlocked.Exchange(ref _warm, long.Parse(x[2]));
            Interlocked.Exchange(ref _old, long.Parse(x[3]));
            Interlocked.Exchange(ref _lastOldMs, long.Parse(x[4]));
        };
        _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_errors) _errors.AppendLine(e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public int Pid => _p.Id;
    public bool Exited => _p.HasExited;
    public long Decided => Interlocked.Read(ref _decided);
    public long Warm => Interlocked.Read(ref _warm);
    public long Old => Interlocked.Read(ref _old);
    public long LastOldMs => Interlocked.Read(ref _lastOldMs);
    public string Errors { get { lock (_errors) return _errors.ToString(); } }

    public async Task<string[]> StopAsync()
    {
        await _p.StandardInput.WriteLineAsync("stop");
        await _p.StandardInput.FlushAsync();
        await _done.Task.WaitAsync(TimeSpan.FromMinutes(1));
        await _p.WaitForExitAsync();
        return File.Exists(_out) ? await File.ReadAllLinesAsync(_out) : throw new InvalidOperationException("an updater process wrote no results: " + Errors);
    }

    public void Kill() { try { _p.Kill(); } catch (InvalidOperationException) { } }
}
