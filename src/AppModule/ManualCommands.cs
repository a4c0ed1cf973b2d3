using AppModule.Artifacts;
using AppModule.Core;
using AppModule.Core.Protocol;
using AppModule.Engine;
using AppModule.Runtime;

namespace AppModule;

/// <summary>
/// Manual testing without a Mender client: <c>app unpack</c> writes the File API tree the client
/// would hand over, <c>app simulate</c> drives the client's (3.4) state sequence in-process.
/// </summary>
public static class ManualCommands
{
    /// <summary>What the device contributes to the tree: /etc/mender/artifact_info and the device_type file, when present.</summary>
    public static DeviceState Device()
    {
        string? Value(string file, string key) =>
            File.Exists(file)
                ? File.ReadLines(file).Select(l => l.Trim()).Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).FirstOrDefault()
                : null;
        return new DeviceState(
            Value("/etc/mender/artifact_info", "artifact_name") ?? "unknown",
            Value("/etc/mender/artifact_info", "artifact_group") ?? string.Empty,
            Value("/var/lib/mender/device_type", "device_type") ?? Value("/data/mender/device_type", "device_type") ?? "unknown");
    }

    public static async Task UnpackAsync(string artifact, string dir, CancellationToken ct)
    {
        // Only app artifacts: the Mender client would hand any other payload type to another Update Module.
        var contents = await FileApiTree.WriteAsync(artifact, dir, Device(), new ArtifactReadOptions(PayloadType: "app"), ct).ConfigureAwait(false);
        Log.Info($"wrote the File API tree of {contents.Header.HeaderInfo.ArtifactName} ({contents.Files.Count} payload file(s), checksums verified) to {Path.GetFullPath(dir)}");
    }

    public static async Task<int> SimulateAsync(string[] args, AppConfig config, TextWriter stdout, CancellationToken ct)
    {
        const string usage = "usage: app simulate <file.mender> [--then commit|rollback] [--fail-at <State>]";
        string? file = null;
        var then = "commit";
        ModuleState? failAt = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--then" when i + 1 < args.Length && args[i + 1] is "commit" or "rollback":
                    then = args[++i];
                    break;
                case "--fail-at" when i + 1 < args.Length:
                    var s = Protocol.Parse(args[++i]);
                    failAt = s == ModuleState.Unknown ? throw new UsageException($"--fail-at {args[i]}: not a state; use e.g. ArtifactInstall, ArtifactCommit, NeedsArtifactReboot") : s;
                    break;
                default:
                    if (file is null && !args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        file = args[i];
                        break;
                    }

                    throw new UsageException(usage);
            }
        }

        if (file is null)
        {
            throw new UsageException(usage);
        }

        var tree = Directory.CreateTempSubdirectory("app-simulate-").FullName;
        Directory.Delete(tree);
        try
        {
            await UnpackAsync(file, tree, ct).ConfigureAwait(false);
            var module = new UpdateModule(config, new ArtifactTree(tree));
            async Task<bool> Run(ModuleState state)
            {
                stdout.WriteLine($"==> {state}");
                if (failAt == state)
                {
                    stdout.WriteLine($"    failed (--fail-at {state})");
                    Log.Error($"{state} failed (--fail-at {state})");
                    return false;
                }

                var answer = new StringWriter();
                try
                {
                    await module.RunAsync(state, answer, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    // On stdout for the sequence, and on stderr as one sentence, as the client's deployment log would have it.
                    var message = RuntimeMessages.For(e);
                    stdout.WriteLine($"    failed: {message}");
                    Log.Error($"{state} failed: {message}");
                    return false;
                }

                if (answer.ToString().Length > 0)
                {
                    stdout.WriteLine($"    answer: {answer.ToString().TrimEnd('\n')}");
                }

                return true;
            }

            async Task<int> Fail()
            {
                // As the client 3.4 does after a failure with SupportsRollback: Yes.
                await Run(ModuleState.SupportsRollback).ConfigureAwait(false);
                var rolledBack = await Run(ModuleState.ArtifactRollback).ConfigureAwait(false);
                await Run(ModuleState.ArtifactFailure).ConfigureAwait(false);
                await Run(ModuleState.Cleanup).ConfigureAwait(false);
                var result = rolledBack ? "result: failed, rolled back" : "result: failed, and the rollback failed too (the client would record <name>_INCONSISTENT)";
                stdout.WriteLine(result);
                Log.Error($"simulate {file}: {result["result: ".Length..]}");
                return ExitCodes.Failed;
            }

            if (!await Run(ModuleState.Download).ConfigureAwait(false))
            {
                await Run(ModuleState.Cleanup).ConfigureAwait(false);
                stdout.WriteLine("result: failed in Download, nothing changed");
                Log.Error($"simulate {file}: failed in Download, nothing changed");
                return ExitCodes.Failed;
            }

            if (!await Run(ModuleState.SupportsRollback).ConfigureAwait(false))
            {
                await Run(ModuleState.Cleanup).ConfigureAwait(false);
                stdout.WriteLine("result: failed, nothing changed");
                Log.Error($"simulate {file}: failed, nothing changed");
                return ExitCodes.Failed;
            }

            if (!await Run(ModuleState.ArtifactInstall).ConfigureAwait(false) || !await Run(ModuleState.NeedsArtifactReboot).ConfigureAwait(false))
            {
                return await Fail().ConfigureAwait(false);
            }

            if (then == "commit")
            {
                if (!await Run(ModuleState.ArtifactCommit).ConfigureAwait(false))
                {
                    return await Fail().ConfigureAwait(false);
                }

                await Run(ModuleState.Cleanup).ConfigureAwait(false);
                stdout.WriteLine("result: committed");
                return ExitCodes.Success;
            }

            await Run(ModuleState.SupportsRollback).ConfigureAwait(false);
            if (!await Run(ModuleState.ArtifactRollback).ConfigureAwait(false))
            {
                await Run(ModuleState.ArtifactFailure).ConfigureAwait(false);
                await Run(ModuleState.Cleanup).ConfigureAwait(false);
                stdout.WriteLine("result: the rollback failed");
                Log.Error($"simulate {file}: the rollback failed");
                return ExitCodes.Failed;
            }

            await Run(ModuleState.Cleanup).ConfigureAwait(false);
            stdout.WriteLine("result: rolled back");
            return ExitCodes.Success;
        }
        finally
        {
            if (Directory.Exists(tree))
            {
                Directory.Delete(tree, recursive: true);
            }
        }
    }
}
