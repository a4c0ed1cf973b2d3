using AppModule.Runtime;
using SubModule.Hosting;

namespace DockerApi;

/// <summary>How long <see cref="ContainerReadiness"/> waits, and what it names when it gives up.</summary>
/// <param name="Timeout">how long every service may take to be ready</param>
/// <param name="Soak">how long a container without a healthcheck must run without restarting</param>
/// <param name="LogTailLines">lines of a failing container's log to print (0: none)</param>
/// <param name="TimeoutSetting">where the timeout is set, named when it expires (e.g. "rollout_timeout in /etc/...")</param>
public sealed record ReadinessOptions(TimeSpan Timeout, TimeSpan Soak, int LogTailLines, string TimeoutSetting);

/// <summary>A service of a project and how many containers it should run.</summary>
public sealed record ExpectedService(string Name, int Replicas);

/// <summary>
/// Waits until every service of a project is up: each expected container runs and is healthy, or runs
/// without a healthcheck and has not restarted for the soak period. An exited, dead, restarting or
/// unhealthy container fails at once, naming the service, its state and the tail of its log. Works the
/// same for Compose v1 (which has no <c>--wait</c>), v2 and any engine that speaks the Docker API. What it saw
/// last is the baseline HEALTHY holds the containers to (<see cref="Restarted"/>): a container that restarts
/// after the rollout is unhealthy.
/// </summary>
public sealed class ContainerReadiness(IEngine engine, ReadinessOptions options)
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(400);

    /// <summary>Waits until every service is up; returns the containers as they were then (the health baseline).</summary>
    public async Task<IReadOnlyList<ContainerInfo>> WaitAsync(string project, IEnumerable<ExpectedService> services, CancellationToken ct)
    {
        var began = DateTimeOffset.UtcNow;
        var deadline = began + options.Timeout;
        var baseline = new Dictionary<string, long>();
        while (true)
        {
            var containers = await engine.ListContainersAsync(project, ct).ConfigureAwait(false);
            var pending = new List<string>();
            foreach (var service in services.Where(s => s.Replicas > 0))
            {
                var mine = containers.Where(c => c.Service == service.Name).ToList();
                if (mine.Count < service.Replicas)
                {
                    pending.Add($"{service.Name}: {mine.Count} of {service.Replicas} container(s) created");
                }

                foreach (var c in mine)
                {
                    if (!baseline.TryGetValue(c.Id, out var restarts))
                    {
                        restarts = c.RestartCount;
                        baseline[c.Id] = restarts;
                        if (c.RestartCount > 0 && c.StartedAt is { } s && s >= began.AddSeconds(-1))
                        {
                            restarts = -1; // restarted since this rollout began
                        }
                    }

                    var problem = Problem(c, restarts);
                    if (problem is not null)
                    {
                        await FailAsync(service.Name, c, problem, ct).ConfigureAwait(false);
                    }

                    var wait = Pending(c, DateTimeOffset.UtcNow);
                    if (wait is not null)
                    {
                        pending.Add($"{service.Name}: {wait}");
                    }
                }
            }

            if (pending.Count == 0)
            {
                return containers;
            }

            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new SubModuleFailure(
                    $"not every service was ready within {options.Timeout.TotalSeconds:0} s ({options.TimeoutSetting}): {string.Join("; ", pending)}");
            }

            Log.Debug("waiting: " + string.Join("; ", pending));
            await Task.Delay(Poll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A state that fails the rollout, or null.</summary>
    public static string? Problem(ContainerInfo c, long baselineRestarts)
    {
        if (c.Status is "exited" or "dead")
        {
            var policy = c.RestartPolicy?.ToLowerInvariant() ?? string.Empty;
            return policy is "" or "no" or "undefined"
                ? $"exited with code {c.ExitCode}"
                : $"exited with code {c.ExitCode} (restart policy {c.RestartPolicy}, restart count {c.RestartCount})";
        }

        if (c.Status == "restarting" || (baselineRestarts >= 0 && c.RestartCount > baselineRestarts) || baselineRestarts < 0)
        {
            return $"is restarting (restart count {c.RestartCount}, last exit code {c.ExitCode})";
        }

        if (c.Status == "running" && c.Health == "unhealthy")
        {
            return "is unhealthy (its healthcheck fails)";
        }

        return null;
    }

    /// <summary>
    /// How <paramref name="c"/> restarted since the rollout that recorded <paramref name="baseline"/>, or null:
    /// its restart count grew (the restart policy started it again) or it started later than then (restarted by
    /// hand, `docker restart` does not count); a container the rollout did not see counts when it restarted at all.
    /// </summary>
    public static string? Restarted(ContainerInfo c, IReadOnlyDictionary<string, ContainerStart> baseline)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(baseline);
        if (!baseline.TryGetValue(c.Id, out var then))
        {
            return c.RestartCount > 0 ? $"restarted {c.RestartCount} time(s) (a container the rollout did not start; last exit code {c.ExitCode})" : null;
        }

        if (c.RestartCount > then.RestartCount)
        {
            return $"restarted {c.RestartCount - then.RestartCount} time(s) since the rollout (restart count {c.RestartCount}, last exit code {c.ExitCode})";
        }

        return c.StartedAt is { } now && then.StartedAt is { } was && now > was
            ? $"was started again at {now:u} since the rollout (it had started at {was:u})"
            : null;
    }

    private string? Pending(ContainerInfo c, DateTimeOffset now)
    {
        if (c.Status != "running")
        {
            return $"container {c.Name} is {c.Status}";
        }

        if (c.Health is "starting")
        {
            return $"container {c.Name} is running, health starting";
        }

        if (c.Health is null)
        {
            var up = c.StartedAt is { } s ? now - s : TimeSpan.Zero;
            if (up < options.Soak)
            {
                return $"container {c.Name} has no healthcheck, running for {up.TotalSeconds:0.0} of {options.Soak.TotalSeconds:0} s soak";
            }
        }

        return null;
    }

    private async Task FailAsync(string service, ContainerInfo c, string problem, CancellationToken ct)
    {
        Log.Error($"service {service}: container {c.Name} {problem}");
        if (options.LogTailLines > 0)
        {
            var tail = await engine.LogTailAsync(c.Id, options.LogTailLines, ct).ConfigureAwait(false);
            Log.Error(tail.Length == 0
                ? $"service {service}: container {c.Name} logged nothing"
                : $"service {service}: last {options.LogTailLines} log lines of {c.Name}:\n" + string.Join('\n', tail.Split('\n').Select(l => "    " + l)));
        }

        throw new SubModuleFailure($"service {service} (container {c.Name}, image {c.Image}) {problem}");
    }
}
