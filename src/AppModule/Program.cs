using AppModule;
using AppModule.Artifacts;
using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.Protocol;
using AppModule.Core.Store;
using AppModule.Runtime;

// `app`: the Mender Update Module for container applications (payload type "app").
//
//   app <State> <tree>                     called by the Mender client (protocol v3)
//   app status [--json] [<application>]    shows the persistent store (every version, with its origin)
//   app unpack <file.mender> <dir>         writes the File API tree the client would hand over
//   app simulate <file.mender> [--then commit|rollback] [--fail-at <State>]
//                                          drives the client's state sequence without a client
//   app plan <file.mender> [--json]        what installing it would do and whether its pre-checks pass; changes nothing
//
// Exit codes (the Mender client treats every non-zero value as a failure of the state):
//   0    success; query states printed their answer on stdout; `app plan`: every pre-check would pass
//   1    a step failed (pre-check, LOAD, STOP, ROLLOUT, health check, commit, rollback): the
//        message on stderr names the step, the image or service, and the sub-module's output;
//        `app plan`: a pre-check would fail (the plan on stdout names it and why)
//   2    usage: wrong command line
//   3    configuration error (/etc/mender/mender-app.conf, or $MENDER_APP_CONFIG)
//   4    the artifact is invalid (meta-data, payload layout); nothing on the device was changed
//   5    the persistent store cannot be read or written
//   70   internal error (a bug: report it with the stderr output; log_level = "debug" or APPMODULE_DEBUG=1 adds the stack trace)
//   143  stopped by SIGTERM/SIGINT (children were stopped first; the store stays recoverable)
// Every exception is mapped to these codes in one place: ExitCodes.For below; its message to one sentence in
// one place: RuntimeMessages.For (the runtime's own messages are bare resource keys in this AOT build).
Log.Component = "app";
using var shutdown = new ShutdownSignal();
try
{
    return await Cli.RunAsync(args, Console.Out, shutdown.Token).ConfigureAwait(false);
}
catch (Exception e)
{
    var code = ExitCodes.For(e, shutdown.Token);
    // One sentence (RuntimeMessages: never a bare resource key); the stack trace only with log_level debug or APPMODULE_DEBUG=1.
    Log.Error(code == ExitCodes.Internal ? $"internal error: {RuntimeMessages.For(e)}; please report it with this output" : RuntimeMessages.For(e));
    if (Log.Level >= LogLevel.Debug || Environment.GetEnvironmentVariable("APPMODULE_DEBUG") == "1")
    {
        Log.Error(e.ToString());
    }

    return code;
}

namespace AppModule
{
    public static class ExitCodes
    {
        public const int Success = 0;
        public const int Failed = 1;
        public const int Usage = 2;
        public const int Config = 3;
        public const int BadArtifact = 4;
        public const int Store = 5;
        public const int Internal = 70;
        public const int Interrupted = 143;

        /// <summary>The one place where exceptions become exit codes.</summary>
        public static int For(Exception e, CancellationToken shutdown) => e switch
        {
            OperationCanceledException when shutdown.IsCancellationRequested => Interrupted,
            UsageException => Usage,
            ConfigException => Config,
            ArtifactException => BadArtifact,
            StoreException => Store,
            InstallException => Failed,
            IOException or UnauthorizedAccessException => Failed,
            OperationCanceledException or TimeoutException => Failed,
            _ => Internal,
        };
    }

    /// <summary>The command line is wrong; the message says how to call.</summary>
    public sealed class UsageException(string message) : Exception(message);
}
