using AppModule.Runtime;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Hosting;

namespace Fleet.Agent;

/// <summary>
/// fleet-agent: seed 001's device-side "docker compose RPC service".
/// <code>
/// fleet-agent [--config FILE]
/// </code>
/// Config: FILE, else $FLEET_AGENT_CONFIG, else /etc/fleet/agent.toml if present; environment overrides (see
/// AgentConfig.Load). Every change goes through the install engine and store that `app` uses (its config:
/// [agent] app_config, else /etc/mender/mender-app.conf), rolled out by the docker-compose sub-module.
/// Exit codes (exceptions are mapped in one place, <see cref="FleetProgram.RunAsync"/>):
///   0  stopped by SIGINT/SIGTERM
///  70  unexpected error (a bug; docs/exit-codes.md)
///   2  bad usage or configuration
///   3  Redis unreachable at start
/// </summary>
public static class Program
{
    public static Task<int> Main(string[] args) => FleetProgram.RunAsync("fleet-agent", args, RunAsync);

    private static async Task<int> RunAsync(string[] args)
    {
        string? configPath = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--config" when i + 1 < args.Length: configPath = args[++i]; break;
                case "-h" or "--help":
                    Console.Out.WriteLine("usage: fleet-agent [--config FILE]");
                    return 0;
                default: throw new UsageException($"unknown argument '{args[i]}'; usage: fleet-agent [--config FILE]");
            }
        }
        configPath ??= Environment.GetEnvironmentVariable("FLEET_AGENT_CONFIG") is { Length: > 0 } p ? p
            : File.Exists("/etc/fleet/agent.toml") ? "/etc/fleet/agent.toml" : null;
        if (configPath is not null && !File.Exists(configPath)) throw new ConfigException($"config file {configPath} does not exist");
        var cfg = AgentConfig.Load(configPath, Environment.GetEnvironmentVariables());
        Log.Format = cfg.LogFormat;
        if (cfg.Apps.Count == 0) throw new ConfigException("no apps configured; set [apps.NAME] directory = \"...\" or APP_TO_DIRECTORY");

        using var shutdown = new ShutdownSignal();
        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, shutdown.Token);
        Log.Info($"connected to {cfg.Redis}");
        await new FleetAgent(cfg, bus).RunAsync(shutdown.Token);
        Log.Info("stopped");
        return 0;
    }
}
