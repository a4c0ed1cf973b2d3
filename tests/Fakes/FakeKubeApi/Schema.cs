using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FakeKubeApi;

/// <summary>
/// The part of the built-in kinds' schemas the fake enforces, with the real API server's messages:
/// the top-level fields of each kind and of ObjectMeta, and the maps whose values must be strings
/// (labels, annotations, ConfigMap and Secret data, selectors, node selectors). Deeper fields are
/// not checked; custom resources are not checked (their CRD schema is not read).
/// </summary>
public static class Schema
{
    private static readonly HashSet<string> ObjectMeta =
    [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "managedFields",
    ];

    private static readonly string[] SpecStatus = ["spec", "status"];

    // Top-level fields per kind besides apiVersion, kind and metadata (the Go types in k8s.io/api).
    private static readonly Dictionary<string, string[]> TopLevel = new(StringComparer.Ordinal)
    {
        ["ConfigMap"] = ["data", "binaryData", "immutable"],
        ["Secret"] = ["data", "stringData", "type", "immutable"],
        ["ServiceAccount"] = ["secrets", "imagePullSecrets", "automountServiceAccountToken"],
        ["Role"] = ["rules"],
        ["ClusterRole"] = ["rules", "aggregationRule"],
        ["RoleBinding"] = ["subjects", "roleRef"],
        ["ClusterRoleBinding"] = ["subjects", "roleRef"],
    };

    // Maps of string to string (map[string]string in k8s.io/api), as paths from the object's root.
    private static readonly Dictionary<string, string[]> StringMaps = new(StringComparer.Ordinal)
    {
        ["ConfigMap"] = ["data", "binaryData"],
        ["Secret"] = ["data", "stringData"],
        ["Service"] = ["spec.selector"],
        ["Pod"] = ["spec.nodeSelector"],
        ["Deployment"] = ["spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec.nodeSelector"],
        ["StatefulSet"] = ["spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec.nodeSelector"],
        ["DaemonSet"] = ["spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec.nodeSelector"],
        ["ReplicaSet"] = ["spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec.nodeSelector"],
        ["Job"] = ["spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec.nodeSelector"],
    };

    /// <summary>The first schema error of an object as field path and problem, or null when the checked part is fine.</summary>
    public static (string Path, string Problem)? FirstError(ResourceDef def, JsonObject obj, bool custom)
    {
        if (custom)
        {
            return null;
        }

        var allowed = TopLevel.TryGetValue(def.Kind, out var t) ? t : SpecStatus;
        foreach (var (key, _) in obj)
        {
            if (key is not ("apiVersion" or "kind" or "metadata") && !allowed.Contains(key))
            {
                return ("." + key, "field not declared in schema");
            }
        }

        if (obj["metadata"] is JsonObject meta)
        {
            foreach (var (key, _) in meta)
            {
                if (!ObjectMeta.Contains(key))
                {
                    return (".metadata." + key, "field not declared in schema");
                }
            }
        }

        foreach (var path in new[] { "metadata.labels", "metadata.annotations" }.Concat(StringMaps.TryGetValue(def.Kind, out var m) ? m : []))
        {
            JsonNode? node = obj;
            foreach (var part in path.Split('.'))
            {
                node = node is JsonObject o ? o[part] : null;
            }

            if (node is JsonObject map)
            {
                foreach (var (key, value) in map)
                {
                    if (value is not null && (value is not JsonValue v || v.GetValueKind() != JsonValueKind.String))
                    {
                        return ($".{path}.{key}", $"expected string, got &value.valueUnstructured{{Value:{GoValue(value)}}}");
                    }
                }
            }
        }

        return null;
    }

    /// <summary>How Go's %#v prints a decoded JSON value (as in the apiserver's message).</summary>
    private static string GoValue(JsonNode value) => value switch
    {
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValueKind() == JsonValueKind.True ? "true" : "false",
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.ToJsonString(),
        JsonArray a => "[]interface {}{" + string.Join(", ", a.Select(x => x is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.ToJsonString() : x?.ToJsonString())) + "}",
        _ => "map[string]interface {}{...}",
    };

    /// <summary>The Go type name the JSON decoder names for a value, for create/update messages.</summary>
    public static string JsonKind(JsonNode? value) => value switch
    {
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => "bool",
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => "number",
        JsonArray => "array",
        JsonObject => "object",
        _ => string.Format(CultureInfo.InvariantCulture, "{0}", value?.GetValueKind()),
    };
}
