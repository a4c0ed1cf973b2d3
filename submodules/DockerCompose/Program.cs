using DockerApi;
using DockerCompose;
using SubModule.Hosting;

// The docker-compose orchestrator sub-module, installed as /usr/share/mender/app-modules/v1/docker-compose.
// Usage: docker-compose <CALL> args... (docs/sub-module-api.md). Config: Settings.cs.
// Exit codes: the contract shared by every sub-module (SubModuleHost, docs/exit-codes.md).
return await SubModuleBootstrap.RunAsync(args, new SubModuleDefinition<Settings>(
    "docker-compose",
    Settings.DefaultPath,
    Settings.PathVariable,
    (config, context) => Settings.From(config, context.Get(DockerApiEngine.HostVariable)),
    (settings, context) => new DockerComposeModule(settings, new DockerApiEngine(settings.DockerHost, settings.EngineTimeout), context)));
