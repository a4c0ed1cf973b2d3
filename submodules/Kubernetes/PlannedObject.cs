using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>An object of the manifests, resolved against the API server and labelled.</summary>
public sealed record PlannedObject(ManifestObject Source, ResourceType Type, string? Namespace, JsonObject Body)
{
    public string Name => Source.Name;

    public string Key => Keys.Of(Type.Group, Type.Kind, Namespace, Name);

    public string Describe => $"{Type.Kind.ToLowerInvariant()} {(Namespace is null ? string.Empty : Namespace + "/")}{Name}";
}
