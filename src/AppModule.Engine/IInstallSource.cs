using AppModule.Core.Store;

namespace AppModule.Engine;

/// <summary>
/// What one install brings to the <see cref="InstallEngine"/>: the version (application, name,
/// orchestrator, platform, env), its manifests, and how its images get onto the device. The Mender
/// trigger's source is an artifact's File API tree; the fleet agent's is a compose file and images
/// pulled by digest. Everything else (store, journal, STOP, ROLLOUT, health gate, commit, rollback,
/// cleanup) is the engine's, the same for both.
/// </summary>
public interface IInstallSource
{
    string Application { get; }

    /// <summary>The version's name as the store and the journal record it (the artifact name).</summary>
    string Version { get; }

    string Orchestrator { get; }

    string Platform { get; }

    IReadOnlyDictionary<string, string> Env { get; }

    /// <summary>Which trigger brings this version (recorded with the composition, shown by <c>app status</c>).</summary>
    Origin Origin { get; }

    /// <summary>The application's own health timeout and soak, or null to use the device's settings.</summary>
    HealthOverrides? Health => null;

    /// <summary>Checks that need neither the store nor the device (the input is complete); runs before the store's lock is taken.</summary>
    void Begin();

    /// <summary>Pre-checks of the input itself (nothing on the device changes); returns the images the version uses.</summary>
    Task<IReadOnlyList<ImageRef>> CheckAsync(CancellationToken ct);

    /// <summary>Writes the version's manifests into <paramref name="directory"/> (an empty directory).</summary>
    void ExtractManifests(string directory, CancellationToken ct);

    /// <summary>A scratch directory for the install (the pre-check's manifests preview, temporary files).</summary>
    string WorkDir { get; }

    /// <summary>The rest of the pre-checks, after the sub-module's REQS passed (e.g. rebuilding delta images); nothing is stopped yet.</summary>
    Task PrepareAsync(InstallStep step, CancellationToken ct);

    /// <summary>Puts every image onto the device (LOAD through the sub-module, or a pull); the running version is untouched.</summary>
    Task LoadAsync(InstallStep step, CancellationToken ct);
}

/// <summary>What a source's steps get from the engine: the sub-module runner, the resolved sub-module and its environment.</summary>
public sealed record InstallStep(SubModuleRunner Runner, string Executable, IReadOnlyDictionary<string, string?> Environment);
