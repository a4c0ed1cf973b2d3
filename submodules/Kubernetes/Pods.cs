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

    private static void Add(List<string> seen, string problem)
    {
        if (!seen.Contains(problem))
        {
            seen.Add(problem);
        }
    }
}
