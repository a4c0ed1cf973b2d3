using AppModule.Runtime;
using DockerCompose;
using SubModule.Hosting;

// The docker-compose orchestrator sub-module, installed as /usr/share/mender/app-modules/v1/docker-compose.
// Usage: docker-compose <CALL> args... (docs/sub-module-api.md). Config: Settings.cs.
//
// Exit codes (the shared sub-module contract, mapped in one place by SubModuleHost.RunAsync):
//   0   success; ALIVE/HEALTHY: alive/healthy
//   1   the call failed (one-line reason on stderr); ALIVE/HEALTHY: not alive/healthy
//   2   usage: unknown call or wrong arguments
//   3   configuration error (file and key named on stderr)
//   4   REQS: a requirement of severity error is not met
//   70  internal error (a bug; please report it with the stderr output)
//   143 stopped by SIGTERM/SIGINT (children stopped first)
Log.Component = "docker-compose";
if (Log.TryParseLevel(Environment.GetEnvironmentVariable("MENDER_APP_LOG_LEVEL"), out var level))
{
    Log.Level = level;
}

using var shutdown = new ShutdownSignal();
Settings? settings = null;
IEngine? engine = null;
try
{
    return await SubModuleHost.RunAsync(args, () =>
    {
        settings = Settings.Load();
        engine = new DockerApiEngine(settings.DockerHost, settings.EngineTimeout);
        return new DockerComposeModule(settings, engine);
    }, Console.Out, shutdown.Token);
}
finally
{
    engine?.Dispose();
}
