using System.Collections;
using AppModule.Runtime;
using Kubernetes;
using SubModule.Hosting;

// k8s: the Kubernetes orchestrator sub-module, /usr/share/mender/app-modules/v1/k8s.
// Usage: k8s <CALL> args... (see docs/sub-module-api.md).
//
// Exit codes (the contract shared by every sub-module, mapped in one place by SubModuleHost.RunAsync):
//   0   success; ALIVE/HEALTHY: alive/healthy
//   1   the call failed (one-line reason on stderr); ALIVE/HEALTHY: not alive/healthy
//   2   usage: unknown call or wrong number of arguments
//   3   configuration error (/etc/mender/mender-app-k8s.conf, kubeconfig, K8S_NAMESPACE): file and fix on stderr
//   4   REQS: a requirement is not met (API server or containerd)
//   70  internal error (a bug: report it with the stderr output)
//   143 stopped by SIGTERM/SIGINT
Log.Component = "k8s";
if (Log.TryParseLevel(Environment.GetEnvironmentVariable("MENDER_APP_LOG_LEVEL"), out var level))
{
    Log.Level = level;
}

var env = Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
    .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal);
using var shutdown = new ShutdownSignal();
KubernetesSubModule? module = null;
try
{
    return await SubModuleHost.RunAsync(args, () => module = new KubernetesSubModule(K8sSettings.Load(env), env), Console.Out, shutdown.Token);
}
finally
{
    module?.Dispose();
}
