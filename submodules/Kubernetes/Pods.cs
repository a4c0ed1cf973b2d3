using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>Reads pods: label selectors of workloads, whether a pod runs, what is wrong with it.</summary>
public static class Pods
{
    /// <summary>A workload's spec.selector as a label selector string, or null when it has none.</summary>
    public static string? Selector(JsonObject? selector)
    {
        if (selector is null)
        {
            return null;
        }

        var parts = new List<string>();
        foreach (var (k, v) in selector["matchLabels"] as JsonObject ?? [])
        {
            parts.Add($"{k}={v}");
        }

        foreach (var e in (selector["matchExpressions"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var key = e["key"]?.GetValue<string>();
            var values = string.Join(',', (e["values"] as JsonArray ?? []).Select(x => x?.ToString()));
            parts.Add(e["operator"]?.GetValue<string>() switch
            {
                "In" => $"{key} in ({values})",
                "NotIn" => $"{key} notin ({values})",
                "Exists" => key!,
                _ => $"!{key}",
            });
        }

        return parts.Count == 0 ? null : string.Join(',', parts);
    }

    /// <summary>True when the pod's phase is Running and every container is running (ready or not).</summary>
    public static bool IsRunning(JsonObject pod)
    {
        if (pod["status"]?["phase"]?.GetValue<string>() != "Running")
        {
            return false;
        }

        var statuses = pod["status"]?["containerStatuses"] as JsonArray;
        return statuses is { Count: > 0 } && statuses.All(c => c?["state"]?["running"] is not null);
    }

    /// <summary>What is wrong with the pods' containers, e.g. "container web: CrashLoopBackOff (...), last exit code 1".</summary>
    public static string Problems(IReadOnlyList<JsonObject> pods)
    {
        var seen = new List<string>();
        foreach (var pod in pods)
        {
            var podName = pod["metadata"]?["name"]?.GetValue<string>();
            var phase = pod["status"]?["phase"]?.GetValue<string>();
            if (phase is "Pending" or "Failed" && pod["status"]?["containerStatuses"] is null)
            {
                var reason = pod["status"]?["reason"]?.GetValue<string>() ?? (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>()
                    .FirstOrDefault(c => c["status"]?.GetValue<string>() == "False")?["message"]?.GetValue<string>();
                Add(seen, $"pod {podName}: {phase}{(reason is null ? string.Empty : ": " + reason)}");
            }

            foreach (var list in new[] { "initContainerStatuses", "containerStatuses" })
            {
                foreach (var c in (pod["status"]?[list] as JsonArray ?? []).OfType<JsonObject>())
                {
                    var name = c["name"]?.GetValue<string>();
                    var lastExit = c["lastState"]?["terminated"]?["exitCode"];
                    var last = lastExit is null ? string.Empty : $", last exit code {lastExit}";
                    if (c["state"]?["waiting"] is JsonObject waiting && waiting["reason"]?.GetValue<string>() is { } reason && reason != "ContainerCreating" && reason != "PodInitializing")
                    {
                        var msg = waiting["message"]?.GetValue<string>();
                        Add(seen, $"container {name}: {reason}{(msg is null ? string.Empty : " (" + msg + ")")}{last}, {c["restartCount"] ?? 0} restarts");
                    }
                    else if (c["state"]?["terminated"] is JsonObject terminated && list == "containerStatuses")
                    {
                        Add(seen, $"container {name}: terminated ({terminated["reason"]}), exit code {terminated["exitCode"]}");
                    }
                    else if (c["state"]?["running"] is not null && c["ready"]?.GetValue<bool>() == false && list == "containerStatuses")
                    {
                        Add(seen, $"container {name}: running but not ready (readiness probe failing){last}");
                    }
                }
            }
        }

        return string.Join("; ", seen.Take(4));
    }

    /// <summary>
    /// Each container's restart count, by "pod-uid/container" (pod status <c>containerStatuses[].restartCount</c>:
    /// "the number of times the container has been restarted", API reference, Pod v1, ContainerStatus).
    /// </summary>
    public static Dictionary<string, long> RestartCounts(IEnumerable<JsonObject> pods)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var pod in pods)
        {
            var uid = pod["metadata"]?["uid"]?.GetValue<string>() ?? pod["metadata"]?["name"]?.GetValue<string>() ?? "?";
            foreach (var c in (pod["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>())
            {
                counts[$"{uid}/{c["name"]?.GetValue<string>()}"] = c["restartCount"]?.GetValue<long>() ?? 0;
            }
        }

        return counts;
    }

    /// <summary>
    /// The containers that restarted since a rollout left them with <paramref name="baseline"/> (from
    /// <see cref="RestartCounts"/>): a restart count above the baseline, or, for a container the rollout did not
    /// see (a pod created since), any restart; each named with the pod, its count, its last exit code and, when
    /// the kubelet is holding it back, CrashLoopBackOff. Empty when none did. With <paramref name="onlyKnown"/>,
    /// containers not in the baseline are left out (a wait that records each container at first sight).
    /// </summary>
    public static List<string> RestartedSince(IEnumerable<JsonObject> pods, IReadOnlyDictionary<string, long> baseline, bool onlyKnown = false)
    {
        var restarted = new List<string>();
        foreach (var pod in pods)
        {
            var uid = pod["metadata"]?["uid"]?.GetValue<string>() ?? pod["metadata"]?["name"]?.GetValue<string>() ?? "?";
            var podName = pod["metadata"]?["name"]?.GetValue<string>();
            foreach (var c in (pod["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var name = c["name"]?.GetValue<string>();
                var count = c["restartCount"]?.GetValue<long>() ?? 0;
                var known = baseline.TryGetValue($"{uid}/{name}", out var then);
                if (count <= then || (onlyKnown && !known))
                {
                    continue;
                }

                var lastExit = c["lastState"]?["terminated"]?["exitCode"];
                var waiting = c["state"]?["waiting"]?["reason"]?.GetValue<string>();
                restarted.Add($"pod {podName} container {name} restarted {count - then} time(s) since the rollout (restart count {count}{(lastExit is null ? string.Empty : $", last exit code {lastExit}")}{(waiting is null ? string.Empty : ", now " + waiting)})");
            }
        }

        return restarted;
    }

    private static void Add(List<string> seen, string problem)
    {
        if (!seen.Contains(problem))
        {
            seen.Add(problem);
        }
    }
}
