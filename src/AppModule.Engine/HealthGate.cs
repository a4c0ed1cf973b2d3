using System.Diagnostics;
using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace AppModule.Engine;

/// <summary>
/// After ROLLOUT: polls ALIVE, then HEALTHY, until both succeed within <c>health_timeout_seconds</c>;
/// then, for <c>soak_seconds</c>, HEALTHY must keep succeeding at every poll.
/// </summary>
public sealed class HealthGate(AppConfig config, SubModuleRunner runner)
{
    public async Task WaitAsync(string executable, string application, IReadOnlyDictionary<string, string?> env, bool soak, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var polls = 0;
        string last = "no answer yet";
        Log.Info($"waiting up to {config.HealthTimeout.TotalSeconds:0} s for {application} to be alive and healthy");
        while (true)
        {
            polls++;
            var alive = await runner.CallAsync(executable, new SubModuleCall.Alive(application), env, ct, config.HealthTimeout, quiet: polls > 1).ConfigureAwait(false);
            if (alive.Succeeded)
            {
                var healthy = await runner.CallAsync(executable, new SubModuleCall.Healthy(application), env, ct, config.HealthTimeout, quiet: polls > 1).ConfigureAwait(false);
                if (healthy.Succeeded)
                {
                    break;
                }

                last = "HEALTHY: " + SubModuleRunner.Output(healthy);
            }
            else
            {
                last = "ALIVE: " + SubModuleRunner.Output(alive);
            }

            if (watch.Elapsed >= config.HealthTimeout)
            {
                throw new InstallException("health check", application,
                    $"not alive and healthy within {config.HealthTimeout.TotalSeconds:0} s ({polls} polls); raise health_timeout_seconds in {AppConfig.DefaultPath} if it needs longer to start", last);
            }

            await Task.Delay(config.HealthPoll, ct).ConfigureAwait(false);
        }

        Log.Info($"{application} is alive and healthy after {watch.Elapsed.TotalSeconds:0.0} s");
        if (!soak || config.Soak <= TimeSpan.Zero)
        {
            return;
        }

        Log.Info($"soak: {application} must stay healthy for {config.Soak.TotalSeconds:0} s");
        var soakWatch = Stopwatch.StartNew();
        while (soakWatch.Elapsed < config.Soak)
        {
            await Task.Delay(config.HealthPoll, ct).ConfigureAwait(false);
            var healthy = await runner.CallAsync(executable, new SubModuleCall.Healthy(application), env, ct, config.HealthTimeout, quiet: true).ConfigureAwait(false);
            if (!healthy.Succeeded)
            {
                throw new InstallException("soak", application,
                    $"became unhealthy {soakWatch.Elapsed.TotalSeconds:0} s into the {config.Soak.TotalSeconds:0} s soak period", SubModuleRunner.Output(healthy));
            }
        }

        Log.Info($"{application} stayed healthy through the soak period");
    }
}
