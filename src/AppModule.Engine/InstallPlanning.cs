using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace AppModule.Engine;

/// <summary>
/// The one place an install is planned against the engine, whichever trigger brings it: asks the sub-module's
/// STORAGE (where the engine keeps its data, what is free there, which layers and images it holds; not when
/// engine_disk_check = false) and hands that, with what the source brings, to the pure <see cref="InstallPlanner"/>.
/// The Mender install's disk pre-check (ArtifactSource), <c>app plan</c> and the fleet agent's pre-check
/// (ComposeSource) are this one call, so what a plan prints is what an install checks.
/// </summary>
public static class InstallPlanning
{
    /// <param name="images">what the source brings, as the planner sees it</param>
    /// <param name="running">what runs now and would be stopped (for the plan's report); null when not asked</param>
    /// <param name="manifests">the new version's manifest files (for the plan's report)</param>
    /// <param name="contents">the new version's services and volumes by name (for the plan's report); null when not read</param>
    /// <param name="earlier">checks the caller ran before (artifact claims, REQS), in order</param>
    /// <param name="tmpNeeded">what the install's temporary files need in the source's <see cref="IInstallSource.WorkDir"/></param>
    public static async Task<InstallPlan> PlanAsync(IInstallSource source, InstallStep step, AppConfig config, IReadOnlyList<PlanImage> images,
        RunningVersion? running, IReadOnlyList<string> manifests, ManifestContents? contents, IReadOnlyList<PlanCheck> earlier, long tmpNeeded, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(config);
        var (storage, unknown) = await StorageAsync(step, config, ct).ConfigureAwait(false);
        var tmp = source.WorkDir;
        return InstallPlanner.Plan(new PlanInput(source.Application, source.Version, source.Orchestrator, source.Platform, images, manifests, running, storage, unknown,
            tmp, FreeSpace.Of(tmp), tmpNeeded, config.EngineDiskMarginBytes, earlier, contents));
    }

    /// <summary>The sub-module's STORAGE answer, or why there is none (then the engine's disk is not checked, with a warning).</summary>
    private static async Task<(EngineStorage? Storage, string? Unknown)> StorageAsync(InstallStep step, AppConfig config, CancellationToken ct)
    {
        if (!config.EngineDiskCheck)
        {
            return (null, $"{AppConfig.Keys.EngineDiskCheck} = false in the config");
        }

        var r = await step.Runner.CallAsync(step.Executable, new SubModuleCall.Storage(), step.Environment, ct, logStdout: false).ConfigureAwait(false);
        string? unknown;
        EngineStorage? storage = null;
        try
        {
            storage = r.Succeeded ? EngineStorage.Parse(r.Stdout) : null;
            unknown = r.Succeeded ? null : $"the sub-module {Path.GetFileName(step.Executable)} did not answer STORAGE ({SubModuleRunner.Output(r).Split('\n').LastOrDefault()}); an older or reference sub-module has no such call";
        }
        catch (FormatException e)
        {
            unknown = $"the sub-module's STORAGE answer is not usable: {e.Message}";
        }

        if (unknown is not null)
        {
            Log.Warning($"the engine's disk space is not checked: {unknown}");
        }

        return (storage, unknown);
    }
}
