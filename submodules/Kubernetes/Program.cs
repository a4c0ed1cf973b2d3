using Kubernetes;
using SubModule.Hosting;

// k8s: the Kubernetes orchestrator sub-module, /usr/share/mender/app-modules/v1/k8s.
// Usage: k8s <CALL> args... (see docs/sub-module-api.md). Config: K8sSettings.cs (/etc/mender/mender-app-k8s.conf,
// kubeconfig, K8S_NAMESPACE). Exit codes: the contract shared by every sub-module (SubModuleHost, docs/exit-codes.md).
return await SubModuleBootstrap.RunAsync(args, new SubModuleDefinition<K8sSettings>(
    "k8s",
    K8sSettings.DefaultConfigPath,
    K8sSettings.ConfigPathVariable,
    K8sSettings.From,
    (settings, context) => new KubernetesSubModule(settings, context)));
