namespace Kubernetes;

/// <summary>A resource type as discovery names it.</summary>
public sealed record ResourceType(string ApiVersion, string Kind, string Resource, bool Namespaced)
{
    public string Group => ApiVersion.Contains('/', StringComparison.Ordinal) ? ApiVersion[..ApiVersion.IndexOf('/', StringComparison.Ordinal)] : string.Empty;

    public string Prefix => ApiVersion.Contains('/', StringComparison.Ordinal) ? $"/apis/{ApiVersion}" : $"/api/{ApiVersion}";

    public string ObjectPath(string? ns, string name) =>
        Namespaced ? $"{Prefix}/namespaces/{Esc(ns!)}/{Resource}/{Esc(name)}" : $"{Prefix}/{Resource}/{Esc(name)}";

    /// <summary>All objects of the type, in every namespace.</summary>
    public string ListPath(string labelSelector) => $"{Prefix}/{Resource}?labelSelector={Uri.EscapeDataString(labelSelector)}";

    public override string ToString() => $"{Kind}.{ApiVersion}";

    private static string Esc(string s) => Uri.EscapeDataString(s);
}
