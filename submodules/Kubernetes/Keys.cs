namespace Kubernetes;

/// <summary>The identity of an object across manifests and the cluster: group, kind, namespace, name.</summary>
public static class Keys
{
    public static string Of(string group, string kind, string? ns, string name) => $"{group}|{kind}|{ns}|{name}";
}
