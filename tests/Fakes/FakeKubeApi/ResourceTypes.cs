namespace FakeKubeApi;

/// <summary>
/// A resource the fake serves, as discovery describes it: short names and categories as a real
/// API server of Kubernetes 1.31 lists them (<c>kubectl api-resources</c>), and whether it has the
/// <c>status</c> and <c>scale</c> subresources.
/// </summary>
public sealed record ResourceDef(string Group, string Version, string Resource, string Kind, bool Namespaced, bool HasStatus)
{
    public string GroupVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>The name used in API messages, e.g. <c>deployments.apps</c>.</summary>
    public string QualifiedResource => Group.Length == 0 ? Resource : $"{Resource}.{Group}";

    public string Singular => Kind.ToLowerInvariant();

    public IReadOnlyList<string> ShortNames { get; init; } = [];

    public IReadOnlyList<string> Categories { get; init; } = [];

    /// <summary>Serves <c>&lt;resource&gt;/scale</c> (autoscaling/v1 Scale).</summary>
    public bool HasScale { get; init; }
}

/// <summary>The built-in kinds the fake serves (the subset of a real cluster that applications use).</summary>
public static class ResourceTypes
{
    // Short names and categories: the apiserver's REST storage of each kind (ShortNames(), Categories()),
    // e.g. pkg/registry/apps/deployment/storage/storage.go: ShortNames {"deploy"}, Categories {"all"}.
    private static readonly string[] InAll = ["all"];

    public static readonly IReadOnlyList<ResourceDef> All =
    [
        new(string.Empty, "v1", "namespaces", "Namespace", false, true) { ShortNames = ["ns"] },
        new(string.Empty, "v1", "configmaps", "ConfigMap", true, false) { ShortNames = ["cm"] },
        new(string.Empty, "v1", "secrets", "Secret", true, false),
        new(string.Empty, "v1", "services", "Service", true, true) { ShortNames = ["svc"], Categories = InAll },
        new(string.Empty, "v1", "serviceaccounts", "ServiceAccount", true, false) { ShortNames = ["sa"] },
        new(string.Empty, "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, true) { ShortNames = ["pvc"] },
        new(string.Empty, "v1", "persistentvolumes", "PersistentVolume", false, true) { ShortNames = ["pv"] },
        new(string.Empty, "v1", "pods", "Pod", true, true) { ShortNames = ["po"], Categories = InAll },
        new("apps", "v1", "deployments", "Deployment", true, true) { ShortNames = ["deploy"], Categories = InAll, HasScale = true },
        new("apps", "v1", "statefulsets", "StatefulSet", true, true) { ShortNames = ["sts"], Categories = InAll, HasScale = true },
        new("apps", "v1", "daemonsets", "DaemonSet", true, true) { ShortNames = ["ds"], Categories = InAll },
        new("apps", "v1", "replicasets", "ReplicaSet", true, true) { ShortNames = ["rs"], Categories = InAll, HasScale = true },
        new("batch", "v1", "jobs", "Job", true, true) { Categories = InAll },
        new("batch", "v1", "cronjobs", "CronJob", true, true) { ShortNames = ["cj"], Categories = InAll },
        new("networking.k8s.io", "v1", "ingresses", "Ingress", true, true) { ShortNames = ["ing"] },
        new("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, false) { ShortNames = ["netpol"] },
        new("rbac.authorization.k8s.io", "v1", "roles", "Role", true, false),
        new("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false),
        new("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false),
        new("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, false),
        new("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true) { ShortNames = ["pdb"] },
        new("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, true) { ShortNames = ["hpa"], Categories = InAll },
        new("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, true) { ShortNames = ["crd", "crds"], Categories = ["api-extensions"] },
    ];

    public static ResourceDef? Find(string group, string version, string resource) =>
        All.FirstOrDefault(r => r.Group == group && r.Version == version && r.Resource == resource);

    public static ResourceDef? FindKind(string apiVersion, string kind) =>
        All.FirstOrDefault(r => r.GroupVersion == apiVersion && r.Kind == kind);
}
