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

// Fleet benchmark: N simulated apps report their version over a real redis-server; the updaters decide for each
// report (PEP 440 compare, registry check against a real docker-registry, cached; decide-and-record in Redis) and
// send update RPCs to simulated device services, which answer and report the new version.
// Reports travel on the report stream (--via stream, as fleet-agents do; default) or on the commlib pub/sub channel,
// bridged onto the stream by the updaters (--via pubsub; bridge dedupe off when a single updater runs).
// Prints version reports handled per second and the p50/p99/max decision latency (received -> decided and recorded).
// usage: dotnet run -c Release --project bench/fleet -- [--apps 10000] [--rounds 5] [--agents 100] [--updaters 1] [--via stream|pubsub]
int apps = 10_000, rounds = 5, agents = 100, updaters = 1;
string via = "stream";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--apps": apps = int.Parse(args[++i]); break;
        case "--rounds": rounds = int.Parse(args[++i]); break;
        case "--agents": agents = int.Parse(args[++i]); break;
        case "--updaters": updaters = int.Parse(args[++i]); break;
        case "--via" when i + 1 < args.Length && args[i + 1] is "stream" or "pubsub": via = args[++i]; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}; usage: [--apps N] [--rounds R] [--agents A] [--updaters U] [--via stream|pubsub]"); return 2;
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

var work = Directory.CreateTempSubdirectory("fleet-bench-").FullName;
int redisPort = FreePort(), regPort = FreePort();
var redis = Start("redis-server", "--port", redisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no");
File.WriteAllText(Path.Combine(work, "registry.yml"), $"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\nhttp:\n  addr: 127.0.0.1:{regPort}\n");
var registryProc = Start("docker-registry", "serve", Path.Combine(work, "registry.yml"));
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
    var ro = new RedisOptions { Host = "127.0.0.1", Port = redisPort };
    for (int i = 0; ; i++)
    {
        try { await (await RedisFleetBus.ConnectAsync(ro, cts.Token)).DisposeAsync(); break; }
        catch (FleetBusException) when (i < 100) { await Task.Delay(100); }
    }
    var buses = new List<RedisFleetBus>();
    for (int u = 0; u < updaters; u++) buses.Add(await RedisFleetBus.ConnectAsync(ro, cts.Token));
    await using var agentBus = await RedisFleetBus.ConnectAsync(ro, cts.Token);
    await using var pubBus = await RedisFleetBus.ConnectAsync(ro, cts.Token);

    // Targets: half "2.0", a quarter the range ">=1.5,<3" (resolves to 2.0), a quarter not listed.
    // apps >= `apps` are the warm-up fleet: they run the whole path once before the measurement (the bench runs JIT
    // compiled; the shipped updater is Native AOT and has no warm-up), and are not counted
    int warm = apps / 5;
    string Name(int i) => i < apps ? $"app{i:D5}" : $"warm{i:D5}";
    string Target(int i) => (i % 4) switch { 0 or 1 => "2.0", 2 => ">=1.5,<3", _ => "" };
    var env = new Hashtable
    {
        ["APP_TO_DIRECTORY"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"/opt/{Name(i)}\"")) + "}",
        ["APPS_TO_UPDATE"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Where(i => Target(i).Length > 0).Select(i => $"\"{Name(i)}\":\"{Target(i)}\"")) + "}",
        ["APP_TO_RPC"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"bench_machine_{i % agents}\"")) + "}",
        ["APP_TO_IMAGE"] = "{" + string.Join(',', Enumerable.Range(0, apps + warm).Select(i => $"\"{Name(i)}\":\"127.0.0.1:{regPort}/fleetbench/web\"")) + "}",
    };
    // one updater bridging pub/sub needs no dedupe; several do (each receives every PUBLISH)
    var cfg = UpdaterConfig.Load(null, env) with { Redis = ro, Channel = "bench_version_channel", RpcTimeout = TimeSpan.FromSeconds(30),
        State = new() { BridgeDedupe = updaters == 1 ? TimeSpan.Zero : TimeSpan.FromSeconds(1) } };
    var fleetUpdaters = buses.Select(b => new FleetUpdater(cfg, b, new RegistryClient(cfg.Registry))).ToList();
    var reporter = new Fleet.Core.State.FleetState(pubBus.Database, cfg.State);
    var agentReporter = new Fleet.Core.State.FleetState(agentBus.Database, cfg.State);
    var latencies = new ConcurrentQueue<double>();
    var kinds = new ConcurrentDictionary<DecisionKind, int>();
    long decided = 0, reportsOfOld = 0;
    var oldDone = new TaskCompletionSource<TimeSpan>();
    var sw = new Stopwatch();
    long warmDecided = 0;
    void OnDecided(Decision d)
    {
        if (d.App.StartsWith("warm", StringComparison.Ordinal)) { Interlocked.Increment(ref warmDecided); return; }
        latencies.Enqueue(d.Latency.TotalMilliseconds);
        kinds.AddOrUpdate(d.Kind, 1, (_, v) => v + 1);
        Interlocked.Increment(ref decided);
        if (d.Reported == "1.0" && Interlocked.Increment(ref reportsOfOld) == (long)apps * rounds) oldDone.TrySetResult(sw.Elapsed);
    }
    var running = new List<Task>();
    foreach (var u in fleetUpdaters) { u.Decided += OnDecided; running.Add(u.RunAsync(cts.Token)); }
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
    for (int i = 0; i < 500 && (await pubBus.Database.ExecuteAsync("PUBSUB", "NUMSUB", cfg.Channel)).ToDictionary().Values.Single().ToString() != updaters.ToString(); i++) await Task.Delay(20);

    var warmPayloads = Enumerable.Range(apps, warm).Select(i => WireCodec.EncodeVersion(new VersionMessage(Name(i), "1.0", []))).ToArray();
    for (int r = 0; r < 2; r++)
        await Task.WhenAll(warmPayloads.Select(p => via == "stream" ? reporter.AddReportAsync(p, cts.Token) : pubBus.PublishAsync(cfg.Channel, p, cts.Token)));
    while (Interlocked.Read(ref warmDecided) < warm * 2 + warm * 3 / 4 || Interlocked.Read(ref rpcs) < warm * 3 / 4) await Task.Delay(20);
    foreach (var u in fleetUpdaters) await u.DrainAsync();
    Interlocked.Exchange(ref rpcs, 0);
    var cpuSelf0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
    var cpuRedis0 = CpuOf(redis.Id);

    // Reports: every app reports 1.0, `rounds` times (periodic re-reports); updated apps then report 2.0 themselves.
    var payloads = Enumerable.Range(0, apps + warm).Select(i => WireCodec.EncodeVersion(new VersionMessage(Name(i), "1.0", []))).ToArray();
    sw.Start();
    if (Environment.GetEnvironmentVariable("FLEET_BENCH_PROGRESS") is not null)
        _ = Task.Run(async () => { while (!cts.IsCancellationRequested) { Console.Error.WriteLine($"{sw.ElapsedMilliseconds} ms: decided {Interlocked.Read(ref decided)}, rpcs {Interlocked.Read(ref rpcs)}"); await Task.Delay(500); } });
    for (int r = 0; r < rounds; r++)
    {
        var batch = new List<Task>(apps);
        foreach (var p in payloads) batch.Add(via == "stream" ? reporter.AddReportAsync(p, cts.Token) : pubBus.PublishAsync(cfg.Channel, p, cts.Token));
        await Task.WhenAll(batch);
    }
    long expected = (long)apps * rounds + apps * 3 / 4; // + one republished report per updated app
    while (Interlocked.Read(ref decided) < expected && sw.Elapsed < TimeSpan.FromMinutes(5)) await Task.Delay(20);
    var elapsed = sw.Elapsed;
    var reportPhase = oldDone.Task.IsCompleted ? oldDone.Task.Result : elapsed;
    foreach (var u in fleetUpdaters) await u.DrainAsync();
    await cts.CancelAsync();
    try { await Task.WhenAll(running); } catch (OperationCanceledException) { }
    foreach (var b in buses) await b.DisposeAsync();

    static double CpuOf(int pid) { var f = File.ReadAllText($"/proc/{pid}/stat"); var x = f[(f.LastIndexOf(')') + 2)..].Split(' '); return (double.Parse(x[11]) + double.Parse(x[12])) / 100.0; }
    var cpuSelf = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpuSelf0;
    var cpuRedis = CpuOf(redis.Id) - cpuRedis0;
    Console.WriteLine($"cpu: bench process {cpuSelf:0.00} s, redis-server {cpuRedis:0.00} s; per report {(cpuSelf + cpuRedis) / decided * 1e6:0.0} us");
    var sorted = latencies.OrderBy(x => x).ToArray();
    double P(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
    Console.WriteLine($"apps: {apps}, agents: {agents}, rounds: {rounds}, updaters: {updaters}, reports via {via}");
    Console.WriteLine($"reports handled: {decided} of {expected} expected; all done (incl. {apps * 3 / 4} update RPC round trips and republished reports) in {elapsed.TotalSeconds:0.00} s");
    Console.WriteLine($"reports/s: {(double)apps * rounds / reportPhase.TotalSeconds:0} ({apps * rounds} published reports decided in {reportPhase.TotalSeconds:0.00} s)");
    Console.WriteLine($"decision latency ms: p50 {P(0.50):0.000}  p99 {P(0.99):0.000}  max {sorted.LastOrDefault():0.000}");
    Console.WriteLine($"update RPCs served: {rpcs}; decisions: {string.Join(", ", kinds.OrderBy(k => k.Key).Select(k => $"{k.Key}={k.Value}"))}");
    return decided >= expected && rpcs == apps * 3 / 4 ? 0 : 1;
}
finally
{
    try { redis.Kill(); registryProc.Kill(); } catch (InvalidOperationException) { }
    try { Directory.Delete(work, true); } catch (IOException) { }
}
