using AppModule.Core;
using AppModule.Core.Protocol;
using AppModule.Engine;
using AppModule.Runtime;

namespace AppModule;

/// <summary>
/// The `app` Update Module's states: the Mender client's trigger of the device's one
/// <see cref="InstallEngine"/>. ArtifactInstall installs the artifact (<see cref="ArtifactSource"/>),
/// ArtifactCommit commits it, ArtifactRollback and ArtifactFailure return to the last-known-good,
/// Cleanup collects what no kept composition uses. States after a failed install whose meta-data is
/// unusable have nothing to act on.
/// </summary>
public sealed class UpdateModule(AppConfig config, ArtifactTree tree)
{
    private readonly InstallEngine _engine = new(config);

    /// <summary>Runs one state; query answers go to <paramref name="stdout"/>. Throws on failure (mapped to exit codes in Program).</summary>
    public async Task RunAsync(ModuleState state, TextWriter stdout, CancellationToken ct)
    {
        if (Protocol.QueryAnswer(state) is { } answer)
        {
            stdout.Write(answer + "\n");
            return;
        }

        switch (state)
        {
            case ModuleState.Download:
            case ModuleState.DownloadWithFileSizes:
                // Never act on data in Download: the client verifies checksums only after it. We do
                // not read stream-next, so the client stores the payload in files/ for ArtifactInstall.
                return;
            case ModuleState.ArtifactInstall:
                await _engine.InstallAsync(new ArtifactSource(tree, tree.Metadata(), config), ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactCommit:
                if (tree.TryMetadata() is not { } meta)
                {
                    Log.Warning("ArtifactCommit: the artifact's meta-data is unusable, so nothing was installed; nothing to commit");
                    return;
                }

                await _engine.CommitAsync(meta.ApplicationName, tree.ArtifactName, "ArtifactCommit", ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactRollback:
                if (tree.TryMetadata() is not { } rollback)
                {
                    Log.Info("ArtifactRollback: the artifact's meta-data is unusable, so the install changed nothing; nothing to roll back");
                    return;
                }

                await _engine.RollbackAsync(rollback.ApplicationName, tree.ArtifactName, "ArtifactRollback", ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactFailure:
                if (tree.TryMetadata() is { } failed)
                {
                    await _engine.FailureAsync(failed.ApplicationName, tree.ArtifactName, "ArtifactFailure", ct).ConfigureAwait(false);
                }

                return;
            case ModuleState.Cleanup:
                if (tree.TryMetadata() is { } cleanup)
                {
                    await _engine.CleanupAsync(cleanup.ApplicationName, ct).ConfigureAwait(false);
                }

                return;
            default:
                return; // reboot-related and unknown states: nothing to do
        }
    }
}
