using AppModule.Core.Policy;
using AppModule.Core.SubModules;

namespace SubModule.Hosting;

/// <summary>
/// An orchestrator sub-module: one method per call of the sub-module API. A method returns normally
/// on success and throws <see cref="SubModuleFailure"/> (the call failed; its message is the one-line
/// reason printed on stderr) on failure. Queries write their answer to <paramref name="stdout"/> only.
/// </summary>
public interface ISubModule
{
    Task LoadAsync(SubModuleCall.Load call, CancellationToken ct);

    Task SaveAsync(SubModuleCall.Save call, CancellationToken ct);

    Task DeleteAsync(SubModuleCall.Delete call, CancellationToken ct);

    Task RolloutAsync(SubModuleCall.Rollout call, CancellationToken ct);

    Task RollbackAsync(SubModuleCall.Rollback call, CancellationToken ct);

    Task StopAsync(SubModuleCall.Stop call, CancellationToken ct);

    Task StartAsync(SubModuleCall.Start call, CancellationToken ct);

    /// <summary>Returns normally when every part of the application runs; throws <see cref="SubModuleFailure"/> naming what does not.</summary>
    Task AliveAsync(SubModuleCall.Alive call, CancellationToken ct);

    /// <summary>Returns normally when every part is healthy (or running without a health check).</summary>
    Task HealthyAsync(SubModuleCall.Healthy call, CancellationToken ct);

    Task<IReadOnlyList<Component>> ListComponentsAsync(SubModuleCall.LsComponents call, CancellationToken ct);

    Task ExportManifestAsync(SubModuleCall.ExportManifest call, CancellationToken ct);

    Task PurgeAsync(SubModuleCall.Purge call, CancellationToken ct);

    /// <summary>Checks the requirements; one entry per requirement.</summary>
    Task<IReadOnlyList<Requirement>> RequirementsAsync(CancellationToken ct);

    /// <summary>STORAGE (read-only): where the engine keeps images, how much is free there, which layers and images it holds.</summary>
    Task<EngineStorage> StorageAsync(CancellationToken ct);
}

/// <summary>A requirement of the sub-module. <c>Severity</c> is <c>error</c> (the module cannot work) or <c>warning</c>.</summary>
public sealed record Requirement(string Name, bool Met, string Severity, string Detail)
{
    /// <summary>The two REQS lines that name what manifests define (<see cref="ManifestContents"/>: services, volumes); never unmet.</summary>
    public static IEnumerable<Requirement> Describing(ManifestContents contents)
    {
        ArgumentNullException.ThrowIfNull(contents);
        yield return new Requirement(ManifestContents.ServicesLine, true, "info", string.Join(' ', contents.Services));
        yield return new Requirement(ManifestContents.VolumesLine, true, "info", string.Join(' ', contents.Volumes));
    }

    /// <summary>
    /// The <c>platform</c> line when this machine runs the images (containerd, podman): the artifact's platform
    /// (from its meta-data, <see cref="SubModuleContext.Platform"/>) must be <see cref="Platforms.Machine"/>'s os/arch.
    /// </summary>
    public static Requirement PlatformOnMachine(string platform)
    {
        var machine = Platforms.Machine();
        var parts = machine.Split('/');
        return Platform(platform, parts[0], parts[1], $"a {machine} machine", $"this machine is {machine}", machine);
    }

    /// <summary>
    /// The <c>platform</c> line when an engine runs the images: the artifact's platform must be the
    /// <paramref name="os"/>/<paramref name="architecture"/> the engine at <paramref name="engine"/> reports.
    /// </summary>
    public static Requirement PlatformOnEngine(string platform, string os, string architecture, string engine) =>
        Platform(platform, os, architecture, $"an engine for {os}/{architecture}", $"the engine at {engine} runs {os}/{architecture} containers", $"{os}/{architecture}");

    private static Requirement Platform(string platform, string os, string architecture, string runsOn, string instead, string wanted)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var same = Platforms.Matches(platform, os, architecture, null);
        return new Requirement("platform", same, "error", same
            ? $"{platform} on {runsOn}"
            : $"the artifact is for {platform}, but {instead}: install the artifact built for {wanted}");
    }
}

/// <summary>The call failed; the message is a one-line, actionable reason.</summary>
public class SubModuleFailure(string message) : Exception(message);
