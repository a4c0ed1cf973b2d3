using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>
/// The Kubernetes API as the sub-module's aspects see it: discovery and the generic object calls (any kind,
/// custom resources included, as JSON). <see cref="KubeApi"/> sends them to a real API server; the typed
/// accessors built on these calls are in <see cref="KubeApiAccessors"/>.
/// </summary>
public interface IKubeApi
{
    /// <summary>The API server's address, for messages.</summary>
    string Server { get; }

    /// <summary>Which kubeconfig (or in-cluster config) is used, for messages.</summary>
    string Source { get; }

    /// <summary>The namespace of the kubeconfig context, if it names one.</summary>
    string? ContextNamespace { get; }

    /// <summary>Forgets what discovery said, e.g. after CustomResourceDefinitions were applied.</summary>
    void ResetDiscovery();

    /// <summary>The resource type of a kind, or null when the API server does not serve it.</summary>
    Task<ResourceType?> ResolveAsync(string apiVersion, string kind, CancellationToken ct);

    /// <summary>GET; null when the object (or path) does not exist.</summary>
    Task<JsonObject?> GetAsync(string path, CancellationToken ct);

    /// <summary>The objects of a type with the label selector, in every namespace, each with apiVersion and kind filled in.</summary>
    Task<IReadOnlyList<JsonObject>> ListAsync(ResourceType type, string labelSelector, CancellationToken ct);

    /// <summary>Server-side apply of one object (created when missing).</summary>
    Task<JsonObject> ApplyAsync(ResourceType type, string? ns, string name, JsonObject body, string fieldManager, bool force, CancellationToken ct);

    Task<JsonObject> MergePatchAsync(ResourceType type, string? ns, string name, JsonObject patch, string fieldManager, CancellationToken ct);

    Task<JsonObject> CreateAsync(string collectionPath, JsonObject body, string fieldManager, CancellationToken ct);

    /// <summary>DELETE with background propagation; false when it was already gone.</summary>
    Task<bool> DeleteAsync(ResourceType type, string? ns, string name, CancellationToken ct);
}
