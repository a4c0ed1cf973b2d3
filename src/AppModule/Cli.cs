using AppModule.Core;
using AppModule.Engine;
using AppModule.Core.Protocol;
using AppModule.Core.Store;
using AppModule.Runtime;

namespace AppModule;

/// <summary>Dispatches the command line: a protocol state, or one of the manual-testing commands.</summary>
public static class Cli
{
    public const string Usage = "usage: app <State> <tree> | app status [<application>] | app unpack <file.mender> <dir> | app simulate <file.mender> [--then commit|rollback] [--fail-at <State>]";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        if (args.Length == 0)
        {
            throw new UsageException(Usage);
        }

        switch (args[0])
        {
            case "status":
                return Status(args.Length > 1 ? args[1] : null, stdout);
            case "unpack":
                if (args.Length != 3)
                {
                    throw new UsageException("usage: app unpack <file.mender> <dir>");
                }

                await ManualCommands.UnpackAsync(args[1], args[2], ct).ConfigureAwait(false);
                return ExitCodes.Success;
            case "simulate":
                return await ManualCommands.SimulateAsync(args[1..], LoadConfig(), stdout, ct).ConfigureAwait(false);
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

    private static int Status(string? application, TextWriter stdout)
    {
        var config = LoadConfig();
        var store = new AppStore(config.PersistentStore);
        var apps = application is null ? store.Applications() : [application];
        if (apps.Count == 0)
        {
            stdout.WriteLine($"no applications in {store.Root}");
            return ExitCodes.Success;
        }

        foreach (var app in apps)
        {
            var s = store.Load(app);
            string Show(string? id)
            {
                if (id is null)
                {
                    return "-";
                }

                try
                {
                    var c = store.ReadComposition(app, id);
                    return $"{c.ArtifactName} ({id}; {c.Orchestrator}; images: {string.Join(", ", c.Images.Select(i => i.Url))})";
                }
                catch (StoreException)
                {
                    return $"{id} (missing)";
                }
            }

            stdout.WriteLine($"application {app}");
            stdout.WriteLine($"  running:        {Show(s.Running)}");
            stdout.WriteLine($"  last-known-good: {Show(s.Committed)}");
            stdout.WriteLine($"  rollback:       {Show(s.Previous)}");
            stdout.WriteLine($"  pending:        {(s.Pending is { } p ? $"{p.ArtifactName} ({p.Composition}, {p.Phase})" : "-")}");
            if (s.Garbage.Count > 0)
            {
                stdout.WriteLine($"  to collect:     {string.Join(", ", s.Garbage)}");
            }

            foreach (var j in store.Journal(app).TakeLast(5))
            {
                stdout.WriteLine($"  {j.TimeUtc:u} {j.Event} {j.Detail}");
            }
        }

        return ExitCodes.Success;
    }
}
