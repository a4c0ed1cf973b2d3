namespace FakeKubeApi;

/// <summary>A resource the fake serves, as discovery describes it.</summary>
public sealed record ResourceDef(string Group, string Version, string Resource, string Kind, bool Namespaced, bool HasStatus)
{
    public string GroupVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>The name used in API messages, e.g. <c>deployments.apps</c>.</summary>
    public string QualifiedResource => Group.Length == 0 ? Resource : $"{Resource}.{Group}";

    public string Singular => Kind.ToLowerInvariant();
}

/// <summary>The built-in kinds the fake serves (the subset of a real cluster that applications use).</summary>
public static class ResourceTypes
{
    public static readonly IReadOnlyList<ResourceDef> All =
    [
        new(string.Empty, "v1", "namespaces", "Namespace", false, true),
        new(string.Empty, "v1", "configmaps", "ConfigMap", true, false),
        new(string.Empty, "v1", "secrets", "Secret", true, false),
        new(string.Empty, "v1", "services", "Service", true, true),
        new(string.Empty, "v1", "serviceaccounts", "ServiceAccount", true, false),
        new(string.Empty, "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, true),
        new(string.Empty, "v1", "persistentvolumes", "PersistentVolume", false, true),
        new(string.Empty, "v1", "pods", "Pod", true, true),
        new("apps", "v1", "deployments", "Deployment", true, true),
        new("apps", "v1", "statefulsets", "StatefulSet", true, true),
        new("apps", "v1", "daemonsets", "DaemonSet", true, true),
        new("apps", "v1", "replicasets", "ReplicaSet", true, true),
        new("batch", "v1", "jobs", "Job", true, true),
        new("batch", "v1", "cronjobs", "CronJob", true, true),
        new("networking.k8s.io", "v1", "ingresses", "Ingress", true, true),
        new("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, false),
        new("rbac.authorization.k8s.io", "v1", "roles", "Role", true, false),
        new("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false),
        new("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false),
        new("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, false),
        new("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true),
        new("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, true),
        new("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, true),
    ];

    public static ResourceDef? Find(string group, string version, string resource) =>
        All.FirstOrDefault(r => r.Group == group && r.Version == version && r.Resource == resource);

    public static ResourceDef? FindKind(string apiVersion, string kind) =>
        All.FirstOrDefault(r => r.GroupVersion == apiVersion && r.Kind == kind);
}
