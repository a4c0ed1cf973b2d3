using System.Diagnostics;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Whether the application's workloads run: the wait for a rollout (ROLLOUT, START), ALIVE and HEALTHY.
/// A container restart since the rollout (the baseline in <see cref="AppRecords.Restarts"/>) makes it unhealthy.
/// </summary>
internal sealed class Health(IKubeApi api, K8sSettings settings, Inventory inventory, AppRecords records)
{
    public async Task AliveAsync(string app, CancellationToken ct)
    {
        var workloads = await inventory.RequireWorkloadsAsync(app, ct).ConfigureAwait(false);
        var dead = new List<string>();
        foreach (var (_, live) in workloads)
        {
            if (Workloads.IsStopped(live))
            {
                dead.Add($"{Workloads.Describe(live)}: stopped by STOP");
                continue;
            }

            if (Workloads.Desired(live) == 0)
            {
                continue; // nothing is meant to run
            }

            var pods = await inventory.PodsOfAsync(live, ct).ConfigureAwait(false);
            if (!pods.Any(Pods.IsRunning))
            {
                var problems = Pods.Problems(pods);
                dead.Add($"{Workloads.Describe(live)}: no running pod{(problems.Length > 0 ? " (" + problems + ")" : pods.Count == 0 ? " (no pods)" : string.Empty)}");
            }
        }

        if (dead.Count > 0)
        {
            throw new SubModuleFailure($"{app} is not alive: {string.Join("; ", dead)}");
        }
    }

    public async Task HealthyAsync(string app, CancellationToken ct)
    {
        var workloads = await inventory.RequireWorkloadsAsync(app, ct).ConfigureAwait(false);
        var unhealthy = new List<string>();
        var baseline = records.Restarts(app);
        foreach (var (_, live) in workloads)
        {
            // A restart since the rollout is named first: a container between two runs (back-off) also makes its
            // workload not ready, and the restart count says more than that does.
            var state = Workloads.Evaluate(live);
            if (Pods.RestartedSince(await inventory.PodsOfAsync(live, ct).ConfigureAwait(false), baseline) is { Count: > 0 } restarted)
            {
                unhealthy.Add($"{Workloads.Describe(live)}: {string.Join("; ", restarted.Take(4))}");
            }
            else if (!state.RolledOut)
            {
                unhealthy.Add($"{Workloads.Describe(live)}: {await inventory.WithPodProblemsAsync(live, state.Reason, ct).ConfigureAwait(false)}");
            }
        }

        if (unhealthy.Count > 0)
        {
            throw new SubModuleFailure($"{app} is not healthy: {string.Join("; ", unhealthy)}");
        }
    }

    /// <summary>Waits until every workload rolled out and records the restart counts it left: HEALTHY's baseline.</summary>
    public async Task WaitRolledOutAsync(string app, IReadOnlyList<(ResourceType Type, string? Namespace, string Name)> workloads, CancellationToken ct) =>
        records.RecordRestarts(app, await RestartsWhenRolledOutAsync(workloads, ct).ConfigureAwait(false));

    /// <summary>
    /// Waits until every workload rolled out; a container that restarts meanwhile fails it at once (its restart
    /// count above what the first look saw). Returns the restart counts at the end: HEALTHY's baseline.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, long>> RestartsWhenRolledOutAsync(IReadOnlyList<(ResourceType Type, string? Namespace, string Name)> workloads, CancellationToken ct)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        if (workloads.Count == 0)
        {
            return counts;
        }

        var clock = Stopwatch.StartNew();
        var lastReport = new Dictionary<string, string>(StringComparer.Ordinal);
        while (true)
        {
            // The last round (timeout reached) also asks the pods what is wrong, for the message.
            var final = clock.Elapsed >= settings.RolloutTimeout;
            var notReady = new List<string>();
            foreach (var (type, ns, name) in workloads)
            {
                var live = await api.GetObjectAsync(type, ns, name, ct).ConfigureAwait(false);
                var what = $"{type.Kind.ToLowerInvariant()} {(ns is null ? string.Empty : ns + "/")}{name}";
                if (live is null)
                {
                    notReady.Add($"{what}: does not exist (deleted meanwhile?)");
                    continue;
                }

                var state = Workloads.Evaluate(live);
                if (state.Failed)
                {
                    throw new SubModuleFailure($"{what} failed to roll out: {state.Reason}");
                }

                var pods = await inventory.PodsOfAsync(live, ct).ConfigureAwait(false);
                if (Pods.RestartedSince(pods, counts, onlyKnown: true) is { Count: > 0 } restarted)
                {
                    throw new SubModuleFailure($"{what} failed to roll out: {string.Join("; ", restarted.Take(4))}");
                }

                foreach (var (key, count) in Pods.RestartCounts(pods))
                {
                    counts.TryAdd(key, count);
                }

                if (!state.RolledOut)
                {
                    notReady.Add($"{what}: {(final ? await inventory.WithPodProblemsAsync(live, state.Reason, ct).ConfigureAwait(false) : state.Reason)}");
                    if (!lastReport.TryGetValue(what, out var last) || last != state.Reason)
                    {
                        Log.Info($"waiting for {what}: {state.Reason}");
                        lastReport[what] = state.Reason;
                    }
                }
            }

            if (notReady.Count == 0)
            {
                return counts;
            }

            if (final)
            {
                throw new SubModuleFailure($"not rolled out within {settings.RolloutTimeout.TotalSeconds:0} s (rollout_timeout_seconds): {string.Join("; ", notReady)}");
            }

            await Task.Delay(settings.PollInterval, ct).ConfigureAwait(false);
        }
    }
}
