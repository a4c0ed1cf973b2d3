using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>Typed accessors over <see cref="IKubeApi"/>: the aspects ask for an object, the pods of a selector, a namespace, not for paths.</summary>
public static class KubeApiAccessors
{
    /// <summary>The object as it is now, or null when it does not exist.</summary>
    public static Task<JsonObject?> GetObjectAsync(this IKubeApi api, ResourceType type, string? ns, string name, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(type);
        return api.GetAsync(type.ObjectPath(ns, name), ct);
    }

    public static async Task<bool> NamespaceExistsAsync(this IKubeApi api, string ns, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        return await api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(ns)}", ct).ConfigureAwait(false) is not null;
    }

    public static Task<JsonObject> CreateNamespaceAsync(this IKubeApi api, string ns, string fieldManager, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        var body = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = ns } };
        return api.CreateAsync("/api/v1/namespaces", body, fieldManager, ct);
    }

    /// <summary>The pods of a namespace that match a label selector (pods being deleted included).</summary>
    public static async Task<IReadOnlyList<JsonObject>> PodsAsync(this IKubeApi api, string ns, string labelSelector, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        var list = await api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(ns)}/pods?labelSelector={Uri.EscapeDataString(labelSelector)}", ct).ConfigureAwait(false);
        return Items(list);
    }

    /// <summary>Every PersistentVolumeClaim of a namespace.</summary>
    public static async Task<IReadOnlyList<JsonObject>> PersistentVolumeClaimsAsync(this IKubeApi api, string ns, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        var list = await api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(ns)}/persistentvolumeclaims", ct).ConfigureAwait(false);
        return Items(list);
    }

    /// <summary>/version: the server's version object, or null when it serves none.</summary>
    public static Task<JsonObject?> VersionAsync(this IKubeApi api, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        return api.GetAsync("/version", ct);
    }

    /// <summary>True when the server serves the core API (/api).</summary>
    public static async Task<bool> ServesCoreApiAsync(this IKubeApi api, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        return await api.GetAsync("/api", ct).ConfigureAwait(false) is not null;
    }

    private static List<JsonObject> Items(JsonObject? list) => (list?["items"] as JsonArray ?? []).OfType<JsonObject>().ToList();
}
