using Podman;
using SubModule.Hosting;

// podman: the podman orchestrator sub-module, /usr/share/mender/app-modules/v1/podman: Kubernetes manifests run
// with `podman kube play`. Usage: podman <CALL> args... (see docs/sub-module-api.md). Config: PodmanSettings.cs
// (/etc/mender/mender-app-podman.conf). Exit codes: the contract shared by every sub-module (SubModuleHost).
return await SubModuleBootstrap.RunAsync(args, new SubModuleDefinition<PodmanSettings>(
    "podman",
    PodmanSettings.DefaultPath,
    PodmanSettings.PathVariable,
    PodmanSettings.From,
    (settings, context) => new PodmanSubModule(settings, context)));
