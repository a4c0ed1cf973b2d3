using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>What a workload's status says, in the terms of <c>kubectl rollout status</c>.</summary>
public sealed record WorkloadState(bool RolledOut, bool Alive, bool Failed, string Reason);

/// <summary>Reads Deployments, StatefulSets and DaemonSets: desired size, rollout state, liveness.</summary>
public static class Workloads
{
    public const string ApplicationLabel = "app.mender.io/application";
    public const string StoppedReplicasAnnotation = "app.mender.io/stopped-replicas";
    public const string StoppedAnnotation = "app.mender.io/stopped";
    public const string StoppedNodeSelector = "app.mender.io/stopped";

    /// <summary>Kinds whose rollout is waited for and whose status makes ALIVE/HEALTHY.</summary>
    public static readonly IReadOnlyList<(string ApiVersion, string Kind)> Kinds =
        [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet")];

    /// <summary>Kinds whose pod templates name images (LS_COMPONENTS).</summary>
    public static readonly IReadOnlyList<(string ApiVersion, string Kind)> ImageKinds =
        [.. Kinds, ("batch/v1", "Job"), ("batch/v1", "CronJob"), ("v1", "Pod")];

    public static bool IsWorkload(string apiVersion, string kind) => Kinds.Contains((apiVersion, kind));

    public static string Describe(JsonObject o)
    {
        var ns = o["metadata"]?["namespace"]?.GetValue<string>();
        return $"{o["kind"]?.GetValue<string>()?.ToLowerInvariant()} {(ns is null ? string.Empty : ns + "/")}{o["metadata"]?["name"]?.GetValue<string>()}";
    }

    public static bool IsStopped(JsonObject o) =>
        o["metadata"]?["annotations"]?[StoppedAnnotation] is not null || o["metadata"]?["annotations"]?[StoppedReplicasAnnotation] is not null;

    public static WorkloadState Evaluate(JsonObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var kind = o["kind"]?.GetValue<string>();
        var generation = Long(o["metadata"]?["generation"]);
        var status = o["status"] as JsonObject ?? [];
        var observed = Long(status["observedGeneration"]);
        if (IsStopped(o))
        {
            return new WorkloadState(false, false, false, "stopped by STOP (run START or ROLLOUT)");
        }

        if (observed < generation)
        {
            return new WorkloadState(false, AliveFromStatus(kind, o, status), false, $"waiting for the controller to observe generation {generation} (observed {observed})");
        }

        switch (kind)
        {
            case "Deployment":
                {
                    var desired = Long(o["spec"]?["replicas"], 1);
                    var updated = Long(status["updatedReplicas"]);
                    var replicas = Long(status["replicas"]);
                    var available = Long(status["availableReplicas"]);
                    var alive = desired == 0 || Long(status["readyReplicas"]) > 0;
                    var progressing = Condition(status, "Progressing");
                    if (progressing is { } p && p.Reason == "ProgressDeadlineExceeded")
                    {
                        return new WorkloadState(false, alive, true, $"progress deadline exceeded: {p.Message}{Conditions(status)}");
                    }

                    if (updated < desired)
                    {
                        return new WorkloadState(false, alive, false, $"{updated} of {desired} replicas updated{Conditions(status)}");
                    }

                    if (replicas > updated)
                    {
                        return new WorkloadState(false, alive, false, $"{replicas - updated} old replicas pending termination{Conditions(status)}");
                    }

                    if (available < updated)
                    {
                        return new WorkloadState(false, alive, false, $"{available} of {updated} updated replicas available{Conditions(status)}");
                    }

                    return new WorkloadState(true, alive, false, $"{available} of {desired} replicas available");
                }

            case "StatefulSet":
                {
                    var desired = Long(o["spec"]?["replicas"], 1);
                    var ready = Long(status["readyReplicas"]);
                    var updated = Long(status["updatedReplicas"]);
                    var available = status["availableReplicas"] is null ? ready : Long(status["availableReplicas"]);
                    var alive = desired == 0 || ready > 0;
                    if (updated < desired)
                    {
                        return new WorkloadState(false, alive, false, $"{updated} of {desired} replicas updated{Conditions(status)}");
                    }

                    if (ready < desired || available < desired)
                    {
                        return new WorkloadState(false, alive, false, $"{Math.Min(ready, available)} of {desired} replicas ready and available{Conditions(status)}");
                    }

                    return new WorkloadState(true, alive, false, $"{available} of {desired} replicas available");
                }

            case "DaemonSet":
                {
                    var desired = Long(status["desiredNumberScheduled"]);
                    var updated = Long(status["updatedNumberScheduled"]);
                    var available = Long(status["numberAvailable"]);
                    var alive = desired == 0 || Long(status["numberReady"]) > 0;
                    if (updated < desired)
                    {
                        return new WorkloadState(false, alive, false, $"{updated} of {desired} scheduled pods updated{Conditions(status)}");
                    }

                    if (available < desired)
                    {
                        return new WorkloadState(false, alive, false, $"{available} of {desired} scheduled pods available{Conditions(status)}");
                    }

                    return new WorkloadState(true, alive, false, $"{available} of {desired} scheduled pods available");
                }

            default:
                return new WorkloadState(true, true, false, "not a workload");
        }
    }

    /// <summary>How many pods the workload wants: spec.replicas, or for a DaemonSet status.desiredNumberScheduled.</summary>
    public static long Desired(JsonObject o) =>
        o["kind"]?.GetValue<string>() == "DaemonSet" ? Long(o["status"]?["desiredNumberScheduled"]) : Long(o["spec"]?["replicas"], 1);

    /// <summary>True when nothing of the workload runs any more (after a STOP).</summary>
    public static bool IsScaledDown(JsonObject o)
    {
        var status = o["status"] as JsonObject ?? [];
        if (Long(status["observedGeneration"]) < Long(o["metadata"]?["generation"]))
        {
            return false;
        }

        return o["kind"]?.GetValue<string>() == "DaemonSet"
            ? Long(status["currentNumberScheduled"]) == 0 && Long(status["numberReady"]) == 0
            : Long(status["replicas"]) == 0 && Long(status["readyReplicas"]) == 0;
    }

    private static bool AliveFromStatus(string? kind, JsonObject o, JsonObject status) => kind switch
    {
        "DaemonSet" => Long(status["desiredNumberScheduled"]) == 0 || Long(status["numberReady"]) > 0,
        _ => Long(o["spec"]?["replicas"], 1) == 0 || Long(status["readyReplicas"]) > 0,
    };

    private static (string Status, string Reason, string Message)? Condition(JsonObject status, string type)
    {
        if (status["conditions"] is not JsonArray conditions)
        {
            return null;
        }

        foreach (var c in conditions.OfType<JsonObject>())
        {
            if (c["type"]?.GetValue<string>() == type)
            {
                return (c["status"]?.GetValue<string>() ?? "Unknown", c["reason"]?.GetValue<string>() ?? string.Empty, c["message"]?.GetValue<string>() ?? string.Empty);
            }
        }

        return null;
    }

    /// <summary>The conditions that are not True, as " (Type=False: Reason: message; ...)".</summary>
    private static string Conditions(JsonObject status)
    {
        if (status["conditions"] is not JsonArray conditions)
        {
            return string.Empty;
        }

        var bad = conditions.OfType<JsonObject>()
            .Where(c => c["status"]?.GetValue<string>() != "True")
            .Select(c => $"{c["type"]}={c["status"]}: {c["reason"]}: {c["message"]}".TrimEnd(' ', ':'))
            .ToList();
        return bad.Count == 0 ? string.Empty : $" ({string.Join("; ", bad)})";
    }

    public static long Long(JsonNode? n, long fallback = 0) =>
        n is JsonValue v && v.TryGetValue<long>(out var l) ? l
        : n is JsonValue v2 && v2.TryGetValue<int>(out var i) ? i
        : n is JsonValue v3 && v3.TryGetValue<double>(out var d) ? (long)d
        : fallback;
}
