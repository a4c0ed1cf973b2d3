using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Hosting;
using Fleet.Core.Observability;
using Fleet.Core.Registry;
using Fleet.Core.Updater;

namespace Fleet.Updater;

/// <summary>
/// fleet-updater: seed 000's updater service.
/// <code>
/// fleet-updater [--config FILE] [--check]
/// fleet-updater [--config FILE] rollout start|status|pause|resume|abort ...   (the operator's CLI, <see cref="RolloutCommand"/>)
/// fleet-updater [--config FILE] target set|clear|reset|list ...               (run-time targets, <see cref="TargetCommand"/>)
/// fleet-updater [--config FILE] device restart|update|down APP...|--group G    (seed 002's operations, <see cref="DeviceCommand"/>)
/// </code>
/// Config: FILE, else $FLEET_UPDATER_CONFIG, else /etc/fleet/updater.toml if present; the seed's environment
/// variables override it (see UpdaterConfig.Load). --check validates the targets against the registry, prints one
/// line per app ("app1 2.1.0" or "app2 MISSING") on stdout and exits.
/// Exit codes (exceptions are mapped in one place, <see cref="FleetProgram.RunAsync"/>):
///   0  stopped by SIGINT/SIGTERM, or --check found every target, or device: every device succeeded
///   1  device: at least one device answered that the operation failed (the answers are printed)
///  70  unexpected error (a bug; the message says where; docs/exit-codes.md)
///   2  bad usage or configuration
///   3  Redis unreachable at start
///   4  --check: at least one target is missing or could not be checked
///   5  rollout: the operation does not apply (the group has no rollout, or its state forbids it: start while one
///      runs or is paused, resume of a halted or aborted one); the message says what to do
///   6  rollout status: the answer was printed and a rollout shown has halted (the reason is in it)
///   7  device: no device answered a failure, but at least one did not answer within --timeout (unreachable)
/// </summary>
public static class Program
{
    public static Task<int> Main(string[] args) => FleetProgram.RunAsync("fleet-updater", args, RunAsync);

    private static async Task<int> RunAsync(string[] args)
    {
        string? configPath = null;
        bool check = false;
        string[]? rollout = null, target = null, device = null;
        for (int i = 0; i < args.Length && rollout is null && target is null && device is null; i++)
        {
            switch (args[i])
            {
                case "rollout": rollout = args[(i + 1)..]; break;
                case "target": target = args[(i + 1)..]; break;
                case "device": device = args[(i + 1)..]; break;
                case "--config" when i + 1 < args.Length: configPath = args[++i]; break;
                case "--check": check = true; break;
                case "-h" or "--help":
                    Console.Out.WriteLine("usage: fleet-updater [--config FILE] [--check]\n" + RolloutCommand.Usage + "\n" + TargetCommand.Usage + "\n" + DeviceCommand.Usage);
                    return 0;
                default: throw new UsageException($"unknown argument '{args[i]}'; usage: fleet-updater [--config FILE] [--check]");
            }
        }
        configPath ??= Environment.GetEnvironmentVariable("FLEET_UPDATER_CONFIG") is { Length: > 0 } p ? p
            : File.Exists("/etc/fleet/updater.toml") ? "/etc/fleet/updater.toml" : null;
        if (configPath is not null && !File.Exists(configPath)) throw new ConfigException($"config file {configPath} does not exist");
        var cfg = UpdaterConfig.Load(configPath, Environment.GetEnvironmentVariables());
        Log.Format = cfg.LogFormat;
        if (cfg.Apps.Count == 0) throw new ConfigException("no apps configured; set APP_TO_DIRECTORY/APPS_TO_UPDATE or [apps.NAME] tables");

        var metrics = new Metrics();
        var registry = new RegistryClient(cfg.Registry, log: Log.Info)
        {
            Observer = (op, status, elapsed) => metrics.Observe("fleet_registry_request_seconds", "Registry HTTP request latency.", elapsed.TotalSeconds, $"op=\"{op}\""),
        };

        using var shutdown = new ShutdownSignal();
        if (rollout is not null) return await RolloutCommand.RunAsync(cfg, rollout, shutdown.Token);
        if (target is not null) return await TargetCommand.RunAsync(cfg, target, shutdown.Token);
        if (device is not null) return await DeviceCommand.RunAsync(cfg, device, shutdown.Token);
        if (check)
        {
            var bus0 = new NoBus();
            var u0 = new FleetUpdater(cfg, bus0, registry, metrics);
            var r = await u0.ValidateTargetsAsync(shutdown.Token);
            foreach (var (app, tag) in r) Console.Out.WriteLine($"{app} {tag ?? "MISSING"}");
            return r.Values.All(t => t is not null) ? 0 : 4;
        }

        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, shutdown.Token);
        Log.Info($"connected to {cfg.Redis}; {cfg.Apps.Count} app(s) configured{(cfg.HmacKey is null ? "; commands unsigned" : "; commands HMAC-signed")}");
        var updater = new FleetUpdater(cfg, bus, registry, metrics);
        await using var server = cfg.MetricsListen is null ? null : new MetricsServer(metrics, MetricsServer.ParseEndpoint(cfg.MetricsListen)) { Health = updater.HealthAsync };
        if (server is not null) { server.Start(); Log.Info($"metrics on http://{server.LocalEndpoint}/metrics, health on http://{server.LocalEndpoint}/healthz"); }
        await updater.ValidateTargetsAsync(shutdown.Token);
        await updater.RunAsync(shutdown.Token);
        Log.Info("stopped");
        return 0;
    }

    /// <summary>For --check, which never touches Redis.</summary>
    private sealed class NoBus : IFleetBus
    {
        private static InvalidOperationException No() => new("--check does not use Redis");
        public Task<long> PublishAsync(string c, byte[] p, CancellationToken ct) => throw No();
        public Task<IAsyncDisposable> SubscribeAsync(string c, Func<byte[], CancellationToken, Task> h, CancellationToken ct) => throw No();
        public Task ListPushAsync(string k, byte[] v, CancellationToken ct) => throw No();
        public Task<byte[]?> ListPopAsync(string k, CancellationToken ct) => throw No();
        public Task<byte[]?[]> ListPopManyAndDeleteAsync(IReadOnlyList<string> k, CancellationToken ct) => throw No();
        public Task<long> ListRemoveAsync(string k, byte[] v, CancellationToken ct) => throw No();
        public Task<long> ListLengthAsync(string k, CancellationToken ct) => throw No();
        public Task DeleteAsync(string k, CancellationToken ct) => throw No();
        public Task ExpireAsync(string k, TimeSpan t, CancellationToken ct) => throw No();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
