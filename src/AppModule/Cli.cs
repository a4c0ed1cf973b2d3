using AppModule.Core;
using AppModule.Core.Protocol;
using AppModule.Core.Store;
using AppModule.Engine;
using AppModule.Runtime;

namespace AppModule;

/// <summary>Dispatches the command line: a protocol state, or one of the manual-testing commands.</summary>
public static class Cli
{
    public const string Usage = "usage: app <State> <tree> | app status [--json] [<application>] | app unpack <file.mender> <dir> | app simulate <file.mender> [--then commit|rollback] [--fail-at <State>] | app plan <file.mender> [--json]";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        if (args.Length == 0)
        {
            throw new UsageException(Usage);
        }

        switch (args[0])
        {
            case "status":
                return StatusCommand.Run(args[1..], LoadConfig(), stdout);
            case "unpack":
                if (args.Length != 3)
                {
                    throw new UsageException("usage: app unpack <file.mender> <dir>");
                }

                await ManualCommands.UnpackAsync(args[1], args[2], ct).ConfigureAwait(false);
                return ExitCodes.Success;
            case "simulate":
                return await ManualCommands.SimulateAsync(args[1..], LoadConfig(), stdout, ct).ConfigureAwait(false);
            case "plan":
                return await PlanCommand.RunAsync(args[1..], LoadConfig(), stdout, ct).ConfigureAwait(false);
            case "--help" or "-h" or "help":
                stdout.WriteLine(Usage);
                return ExitCodes.Success;
        }

        // The protocol: app <State> <tree>
        var state = Protocol.Parse(args[0]);
        if (Protocol.QueryAnswer(state) is { } answer)
        {
            stdout.Write(answer + "\n"); // queries print only the answer, nothing else on stdout
            return ExitCodes.Success;
        }

        if (Protocol.IsNoOp(state))
        {
            return ExitCodes.Success; // reboot-related and unknown states: print nothing, exit 0
        }

        if (args.Length < 2)
        {
            throw new UsageException($"{args[0]} needs the File API tree: app {args[0]} <tree>");
        }

        var config = LoadConfig();
        Log.Info($"{state} {args[1]}");
        await new UpdateModule(config, new ArtifactTree(args[1])).RunAsync(state, stdout, ct).ConfigureAwait(false);
        return ExitCodes.Success;
    }

    public static AppConfig LoadConfig()
    {
        var config = ConfigLoader.Load(ConfigLoader.DefaultPath);
        if (Log.TryParseLevel(config.LogLevel, out var level))
        {
            Log.Level = level;
        }

        return config;
    }
}
