using System.Globalization;
using System.Text.Json.Nodes;

namespace FakeKubeApi;

/// <summary>
/// Server-side printing: the meta.k8s.io/v1 Table a real API server returns when the client asks
/// for one (Accept: application/json;as=Table;v=v1;g=meta.k8s.io, as <c>kubectl get</c> does). The
/// columns and cells follow the apiserver's printers (pkg/printers/internalversion/printers.go) for
/// the kinds below; other kinds get the default table (Name, Age) that the apiserver uses for kinds
/// without a printer (k8s.io/apiserver/pkg/registry/rest/table.go).
/// </summary>
public static class Tables
{
    public static bool Wanted(string accept) => accept.Contains("as=Table", StringComparison.Ordinal);

    private sealed record Column(string Name, string Type, int Priority, Func<JsonObject, JsonNode?> Cell, string Format = "");

    public static JsonObject Convert(ResourceDef def, IEnumerable<JsonObject> objects, string resourceVersion, DateTime now)
    {
        var columns = Columns(def.Kind, now);
        var rows = new JsonArray();
        foreach (var o in objects)
        {
            var meta = (JsonObject)o["metadata"]!.DeepClone();
            rows.Add(new JsonObject
            {
                ["cells"] = new JsonArray(columns.Select(c => c.Cell(o)).ToArray()),
                ["object"] = new JsonObject { ["kind"] = "PartialObjectMetadata", ["apiVersion"] = "meta.k8s.io/v1", ["metadata"] = meta },
            });
        }

        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
            ["columnDefinitions"] = new JsonArray(columns.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name,
                ["type"] = c.Type,
                ["format"] = c.Format,
                ["description"] = string.Empty,
                ["priority"] = c.Priority,
            }).ToArray()),
            ["rows"] = rows,
        };
    }

    private static string S(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : string.Empty;

    private static long L(JsonNode? n) => n is JsonValue v && v.TryGetValue<long>(out var l) ? l : n is JsonValue w && w.TryGetValue<int>(out var i) ? i : 0;

    private static List<Column> Columns(string kind, DateTime now)
    {
        var name = new Column("Name", "string", 0, o => S(o["metadata"]?["name"]), "name");
        var age = new Column("Age", "string", 0, o => Age(o, now));
        var containers = new Column("Containers", "string", 1, o => string.Join(',', Containers(o).Select(c => S(c["name"]))));
        var images = new Column("Images", "string", 1, o => string.Join(',', Containers(o).Select(c => S(c["image"]))));
        var selector = new Column("Selector", "string", 1, o => Selector(o["spec"]?["selector"]));
        return kind switch
        {
            "Namespace" => [name, new("Status", "string", 0, o => S(o["status"]?["phase"])), age],
            "ConfigMap" => [name, new("Data", "string", 0, o => (long)((o["data"] as JsonObject)?.Count ?? 0) + ((o["binaryData"] as JsonObject)?.Count ?? 0)), age],
            "Secret" => [name, new("Type", "string", 0, o => S(o["type"]) is { Length: > 0 } t ? t : "Opaque"), new("Data", "string", 0, o => (long)((o["data"] as JsonObject)?.Count ?? 0)), age],
            "Service" =>
            [
                name, new("Type", "string", 0, o => S(o["spec"]?["type"]) is { Length: > 0 } t ? t : "ClusterIP"),
                new("Cluster-IP", "string", 0, o => S(o["spec"]?["clusterIP"]) is { Length: > 0 } ip ? ip : "<none>"),
                new("External-IP", "string", 0, _ => "<none>"),
                new("Port(s)", "string", 0, o => Ports(o)), age,
                new("Selector", "string", 1, o => o["spec"]?["selector"] is JsonObject sel && sel.Count > 0 ? string.Join(',', sel.Select(p => $"{p.Key}={S(p.Value)}")) : "<none>"),
            ],
            "PersistentVolumeClaim" =>
            [
                name, new("Status", "string", 0, o => S(o["status"]?["phase"])),
                new("Volume", "string", 0, o => S(o["spec"]?["volumeName"])),
                new("Capacity", "string", 0, o => S(o["status"]?["capacity"]?["storage"])),
                new("Access Modes", "string", 0, o => AccessModes(o["status"]?["accessModes"] as JsonArray)),
                new("StorageClass", "string", 0, o => S(o["spec"]?["storageClassName"])),
                new("VolumeAttributesClass", "string", 0, o => S(o["spec"]?["volumeAttributesClassName"]) is { Length: > 0 } c ? c : "<unset>"),
                age, new("VolumeMode", "string", 1, o => S(o["spec"]?["volumeMode"]) is { Length: > 0 } m ? m : "Filesystem"),
            ],
            "Pod" =>
            [
                name,
                new("Ready", "string", 0, o => $"{(o["status"]?["containerStatuses"] as JsonArray ?? []).Count(c => c?["ready"]?.GetValue<bool>() == true)}/{(o["spec"]?["containers"] as JsonArray ?? []).Count}"),
                new("Status", "string", 0, o => PodStatus(o)),
                new("Restarts", "string", 0, o => Restarts(o, now)), age,
                new("IP", "string", 1, o => S(o["status"]?["podIP"]) is { Length: > 0 } ip ? ip : "<none>"),
                new("Node", "string", 1, o => S(o["spec"]?["nodeName"]) is { Length: > 0 } n ? n : "<none>"),
                new("Nominated Node", "string", 1, _ => "<none>"),
                new("Readiness Gates", "string", 1, _ => "<none>"),
            ],
            "Deployment" =>
            [
                name,
                new("Ready", "string", 0, o => $"{L(o["status"]?["readyReplicas"])}/{Desired(o)}"),
                new("Up-to-date", "string", 0, o => L(o["status"]?["updatedReplicas"])),
                new("Available", "string", 0, o => L(o["status"]?["availableReplicas"])),
                age, containers, images, selector,
            ],
            "StatefulSet" =>
            [
                name, new("Ready", "string", 0, o => $"{L(o["status"]?["readyReplicas"])}/{Desired(o)}"), age, containers, images,
            ],
            "DaemonSet" =>
            [
                name,
                new("Desired", "integer", 0, o => L(o["status"]?["desiredNumberScheduled"])),
                new("Current", "integer", 0, o => L(o["status"]?["currentNumberScheduled"])),
                new("Ready", "integer", 0, o => L(o["status"]?["numberReady"])),
                new("Up-to-date", "integer", 0, o => L(o["status"]?["updatedNumberScheduled"])),
                new("Available", "integer", 0, o => L(o["status"]?["numberAvailable"])),
                new("Node Selector", "string", 0, o => o["spec"]?["template"]?["spec"]?["nodeSelector"] is JsonObject ns && ns.Count > 0 ? string.Join(',', ns.Select(p => $"{p.Key}={S(p.Value)}")) : "<none>"),
                age, containers, images, selector,
            ],
            _ => [name, age],
        };
    }

    private static long Desired(JsonObject o) => o["spec"]?["replicas"] is { } r ? L(r) : 1;

    private static IEnumerable<JsonObject> Containers(JsonObject o) => (o["spec"]?["template"]?["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>();

    private static string Selector(JsonNode? selector)
    {
        if (selector is not JsonObject s)
        {
            return "<none>";
        }

        var parts = (s["matchLabels"] as JsonObject ?? []).Select(p => $"{p.Key}={S(p.Value)}").ToList();
        return parts.Count == 0 ? "<none>" : string.Join(',', parts);
    }

    private static string Ports(JsonObject o)
    {
        var ports = (o["spec"]?["ports"] as JsonArray ?? []).OfType<JsonObject>()
            .Select(p => $"{L(p["port"])}/{(S(p["protocol"]) is { Length: > 0 } proto ? proto : "TCP")}").ToList();
        return ports.Count == 0 ? "<none>" : string.Join(',', ports);
    }

    private static string AccessModes(JsonArray? modes) => modes is null ? string.Empty : string.Join(',', modes.Select(m => S(m) switch
    {
        "ReadWriteOnce" => "RWO",
        "ReadOnlyMany" => "ROX",
        "ReadWriteMany" => "RWX",
        "ReadWriteOncePod" => "RWOP",
        var x => x,
    }));

    /// <summary>printPod: the phase, overridden by a container's waiting or terminated reason.</summary>
    private static string PodStatus(JsonObject o)
    {
        if (o["metadata"]?["deletionTimestamp"] is not null)
        {
            return "Terminating";
        }

        var reason = S(o["status"]?["reason"]) is { Length: > 0 } r ? r : S(o["status"]?["phase"]);
        var running = false;
        foreach (var c in (o["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>().Reverse())
        {
            if (S(c["state"]?["waiting"]?["reason"]) is { Length: > 0 } waiting)
            {
                reason = waiting;
            }
            else if (S(c["state"]?["terminated"]?["reason"]) is { Length: > 0 } terminated)
            {
                reason = terminated;
            }
            else if (c["ready"]?.GetValue<bool>() == true && c["state"]?["running"] is not null)
            {
                running = true;
            }
        }

        return reason == "Completed" && running ? "Running" : reason;
    }

    private static string Restarts(JsonObject o, DateTime now)
    {
        long restarts = 0;
        DateTime? last = null;
        foreach (var c in (o["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>())
        {
            restarts += L(c["restartCount"]);
            if (DateTime.TryParse(S(c["lastState"]?["terminated"]?["finishedAt"]), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t) && (last is null || t > last))
            {
                last = t;
            }
        }

        return last is { } when ? $"{restarts} ({HumanDuration(now - when)} ago)" : restarts.ToString(CultureInfo.InvariantCulture);
    }

    private static string Age(JsonObject o, DateTime now) =>
        DateTime.TryParse(S(o["metadata"]?["creationTimestamp"]), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var created)
            ? HumanDuration(now - created)
            : "<unknown>";

    /// <summary>k8s.io/apimachinery/pkg/util/duration.HumanDuration.</summary>
    public static string HumanDuration(TimeSpan d)
    {
        var seconds = (long)d.TotalSeconds;
        if (seconds < -1)
        {
            return "<invalid>";
        }

        if (seconds < 0)
        {
            return "0s";
        }

        if (seconds < 60 * 2)
        {
            return $"{seconds}s";
        }

        var minutes = (long)d.TotalMinutes;
        if (minutes < 10)
        {
            var s = seconds % 60;
            return s == 0 ? $"{minutes}m" : $"{minutes}m{s}s";
        }

        if (minutes < 60 * 3)
        {
            return $"{minutes}m";
        }

        var hours = (long)d.TotalHours;
        if (hours < 8)
        {
            var m = minutes % 60;
            return m == 0 ? $"{hours}h" : $"{hours}h{m}m";
        }

        if (hours < 48)
        {
            return $"{hours}h";
        }

        if (hours < 24 * 8)
        {
            var h = hours % 24;
            return h == 0 ? $"{hours / 24}d" : $"{hours / 24}d{h}h";
        }

        if (hours < 24 * 365 * 2)
        {
            return $"{hours / 24}d";
        }

        if (hours < 24 * 365 * 8)
        {
            var dy = hours / 24 % 365;
            return dy == 0 ? $"{hours / 24 / 365}y" : $"{hours / 24 / 365}y{dy}d";
        }

        return $"{hours / 24 / 365}y";
    }
}
