using AppModule.Runtime;
using Fleet.Core.Agent;
using Fleet.Core.Bus;

namespace Fleet.Core.Hosting;

/// <summary>A bad command line: exit code 2, with the usage in the message.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The one place where the fleet executables (fleet-updater, fleet-agent) turn exceptions into
/// their exit codes; each executable documents its contract where its Main lives:
/// 0 stopped by SIGINT/SIGTERM (cancellation), 70 unexpected error, 2 bad usage or configuration,
/// 3 Redis unreachable at start; any other code is the run's own answer. Logs: FLEET_LOG_LEVEL (error, warning,
/// info, debug) and FLEET_LOG_FORMAT (text, json: one JSON object per line) from the environment.
/// </summary>
public static class FleetProgram
{
    public static async Task<int> RunAsync(string component, string[] args, Func<string[], Task<int>> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        Log.Component = component;
        if (Environment.GetEnvironmentVariable("FLEET_LOG_LEVEL") is { } lvl && Log.TryParseLevel(lvl, out var level))
        {
            Log.Level = level;
        }

        // the configuration's log_format applies once it is read; the environment's from the first line
        if (Environment.GetEnvironmentVariable("FLEET_LOG_FORMAT") is { } fmt && Log.TryParseFormat(fmt, out var format))
        {
            Log.Format = format;
        }

        try
        {
            return await run(args).ConfigureAwait(false);
        }
        catch (UsageException e) { Log.Error(e.Message); return 2; }
        catch (ConfigException e) { Log.Error("configuration: " + e.Message); return 2; }
        catch (FormatException e) { Log.Error("configuration: " + e.Message); return 2; }
        catch (FleetBusException e) { Log.Error(e.Message); return 3; }
        catch (OperationCanceledException) { return 0; }
        catch (Exception e) { Log.Error($"unexpected error: {e}"); return 70; }
    }
}
