using System.Globalization;
using System.Text;
using AppModule.Artifacts;
using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Engine;
using AppModule.Runtime;

namespace AppModule;

/// <summary>
/// <c>app plan &lt;file.mender&gt; [--json]</c>: what ArtifactInstall of this artifact would do and whether
/// its pre-checks would pass, changing nothing on the device. It runs the install's own checks (the
/// artifact's claims, the sub-module's REQS with the new manifests, the sub-module's STORAGE) and the
/// same planner (<see cref="InstallPlanner"/>), but neither takes the store's lock nor writes to the
/// store, and calls no sub-module operation that changes the engine (no SAVE of delta bases: whether a
/// base is present comes from STORAGE). The artifact is unpacked into a temporary directory that is
/// removed afterwards. Exit 0: the install would pass its pre-checks; 1: it would be refused (the plan
/// says why); 4: the artifact cannot be read.
/// </summary>
public static class PlanCommand
{
    public const string Usage = "usage: app plan <file.mender> [--json]";

    public static async Task<int> RunAsync(string[] args, AppConfig config, TextWriter stdout, CancellationToken ct)
    {
        var json = args.Contains("--json");
        var files = args.Where(a => a != "--json").ToArray();
        if (files.Length != 1 || files[0].StartsWith("--", StringComparison.Ordinal))
        {
            throw new UsageException(Usage);
        }

        var dir = Directory.CreateTempSubdirectory("app-plan-").FullName;
        Directory.Delete(dir);
        try
        {
            await ManualCommands.UnpackAsync(files[0], dir, ct).ConfigureAwait(false);
            var plan = await PlanAsync(new ArtifactTree(dir), config, ct).ConfigureAwait(false);
            await stdout.WriteAsync(json ? plan.ToJson() + "\n" : Text(plan)).ConfigureAwait(false);
            return plan.WouldInstall ? ExitCodes.Success : ExitCodes.Failed;
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>The plan of the artifact in <paramref name="tree"/> against this device's store and engine.</summary>
    public static async Task<InstallPlan> PlanAsync(ArtifactTree tree, AppConfig config, CancellationToken ct)
    {
        var meta = tree.Metadata();
        var source = new ArtifactSource(tree, meta, config);
        source.Begin();
        var checks = new List<PlanCheck>();
        IReadOnlyList<ImageRef> images = [];
        try
        {
            images = await source.CheckAsync(ct).ConfigureAwait(false);
            checks.Add(new PlanCheck("artifact", true, "what the meta-data claims (images, platform, sums-new.txt) is what the payload carries"));
        }
        catch (ArtifactFormatException e)
        {
            checks.Add(new PlanCheck("artifact", false, e.Message));
        }

        // The device's limits on the artifact's own health settings (the install refuses first of all when they are exceeded).
        var gate = config.With(source.Health);
        checks.Add(config.Refusal(source.Health) is { } refusal
            ? new PlanCheck("health", false, refusal)
            : new PlanCheck("health", true, string.Create(CultureInfo.InvariantCulture,
                $"health gate: timeout {gate.HealthTimeout.TotalSeconds:0} s, soak {gate.Soak.TotalSeconds:0} s ({(source.Health is null ? "the device's settings" : "the artifact's meta-data within the device's limits")})")));

        var store = new AppStore(config.PersistentStore);
        var state = store.Load(source.Application);
        RunningVersion? running = null;
        Composition? runningComposition = null;
        if (state.Running is { } id)
        {
            runningComposition = store.ReadComposition(source.Application, id);
            running = new RunningVersion(runningComposition.ArtifactName, id, runningComposition.Orchestrator, runningComposition.Images.Select(i => i.Url).ToArray());
        }

        if (state.Pending is { } p)
        {
            checks.Add(new PlanCheck("pending", true, $"the install of {p.ArtifactName} is still pending (reached {p.Phase}); installing this artifact abandons it"));
        }

        var runner = new SubModuleRunner(config);
        string exe;
        try
        {
            exe = runner.Resolve(source.Orchestrator);
        }
        catch (InstallException e)
        {
            checks.Add(new PlanCheck("orchestrator", false, e.Message));
            return InstallPlanner.Plan(new PlanInput(source.Application, source.Version, source.Orchestrator, source.Platform, [], [], running, null,
                "no sub-module to ask", tree.TmpDir, FreeSpace.Of(tree.TmpDir), ArtifactSource.TmpFloorBytes, config.EngineDiskMarginBytes, checks));
        }

        var env = SubModuleRunner.EnvironmentFor(source.Platform, source.Env);
        var preview = Path.Combine(source.WorkDir, "manifests-check");
        Directory.CreateDirectory(preview);
        source.ExtractManifests(preview, ct);
        var manifests = Directory.EnumerateFiles(preview, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(preview, f)).Order(StringComparer.Ordinal).ToArray();
        var reqs = await runner.CallAsync(exe, new SubModuleCall.Reqs(), InstallEngine.RequirementsEnvironment(env, preview, images), ct).ConfigureAwait(false);
        var reqsOutput = SubModuleRunner.Output(reqs).Replace('\n', ';');
        checks.Add(new PlanCheck("requirements", reqs.Succeeded, reqs.Succeeded
            ? $"{source.Orchestrator} REQS with the new manifests: {reqsOutput}"
            : $"{source.Orchestrator} REQS with the new manifests failed (exit {reqs.ExitCode}): {reqsOutput}"));

        // The services and volumes by name, as the sub-module reads the manifests: the new version's (the REQS above) and,
        // when the same sub-module runs the current version, the current one's (REQS with its stored manifests; read-only).
        var contents = ManifestContents.FromRequirements(reqs.Stdout);
        if (running is not null && runningComposition is not null && runningComposition.Orchestrator == source.Orchestrator)
        {
            var current = await runner.CallAsync(exe, new SubModuleCall.Reqs(), InstallEngine.RequirementsEnvironment(SubModuleRunner.EnvironmentFor(runningComposition),
                store.ManifestsOf(source.Application, runningComposition.Id), runningComposition.Images), ct, logStdout: false).ConfigureAwait(false);
            running = running with { Contents = ManifestContents.FromRequirements(current.Stdout) };
        }

        return await source.PlanAsync(new InstallStep(runner, exe, env), running, manifests, contents, checks, ct).ConfigureAwait(false);
    }

    /// <summary>The plan for people: one fact per line.</summary>
    public static string Text(InstallPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var sb = new StringBuilder();
        void Line(string label, string value) => sb.Append(CultureInfo.InvariantCulture, $"{label,-15}{value}\n");
        Line("application:", $"{plan.Application} (orchestrator {plan.Orchestrator}, platform {plan.Platform})");
        Line("version:", plan.Version);
        Line("engine:", plan.Engine is null ? "unknown" : $"{plan.Engine}, data root {plan.EngineDisk.Path}");
        sb.Append("images:\n");
        foreach (var i in plan.Images)
        {
            var delta = i.BaseUrl is null ? string.Empty
                : $", against {i.BaseUrl} (image {Short(i.BaseId)}, {(i.BasePresent switch { true => "present", false => "MISSING", _ => "presence unknown" })})";
            var layers = i.Layers.Count == 0
                ? "layers known once rebuilt"
                : $"{i.Layers.Count} layer(s): {i.PresentLayers} present, {i.NewLayers} new ({(i.NewBytes is { } n ? InstallPlanner.Mib(n) : "size known once rebuilt")})";
            var load = i.LoadBytes is { } l ? $"{InstallPlanner.Mib(l)} to load" : "size to load known once rebuilt";
            sb.Append(CultureInfo.InvariantCulture, $"  {i.Url} ({i.Kind}, image {Short(i.Id)}{delta}): {layers}; {load}\n");
            foreach (var layer in i.Layers)
            {
                sb.Append(CultureInfo.InvariantCulture, $"    {(layer.Present ? "present" : "new    ")} {layer.DiffId} {(layer.Size is { } s ? InstallPlanner.Mib(s) : "?")} ({layer.Source})\n");
            }
        }

        Line("bytes to load:", plan.BytesToLoad is { } b ? $"{InstallPlanner.Mib(b)} ({b} bytes)" : "known once the deltas are rebuilt");
        Line("engine disk:", plan.EngineDisk.Detail);
        Line("tmp disk:", plan.TmpDisk.Detail);
        Line("stops:", plan.Stops is { } s2 ? $"{s2.Version} (composition {s2.Composition}, {s2.Orchestrator}; {Services(s2.Contents?.Services)}images {string.Join(", ", s2.Images)})" : "nothing (nothing of this application runs)");
        Line("starts:", $"{plan.Starts.Version} ({plan.Starts.Orchestrator}; {Services(plan.Starts.Services)}images {string.Join(", ", plan.Starts.Images)}; manifests {string.Join(", ", plan.Starts.Manifests)})");
        Line("volumes:", Volumes(plan));
        sb.Append("pre-checks:\n");
        foreach (var c in plan.Checks)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  {(c.Passed ? "ok  " : "FAIL")} {c.Name}: {c.Message}\n");
        }

        var failed = plan.Checks.Count(c => !c.Passed);
        Line("result:", failed == 0 ? "would install (every pre-check passes)" : $"would be refused before anything stops ({failed} pre-check(s) fail)");
        return sb.ToString();
    }

    private static string Services(IReadOnlyList<string>? services) => services is null ? string.Empty : $"services {Names(services)}; ";

    private static string Names(IReadOnlyList<string> names) => names.Count == 0 ? "none" : string.Join(", ", names);

    /// <summary>What happens to the volumes, by name when the sub-module told them.</summary>
    private static string Volumes(InstallPlan plan)
    {
        var how = plan.VolumesKept ? "STOP removes no volumes or claims" : "STOP removes the volumes";
        var v = plan.Volumes;
        if (v.Kept is null && plan.Starts.Volumes is null)
        {
            return $"kept ({how})";
        }

        var parts = new List<string>();
        if (v.Kept is { } kept)
        {
            parts.Add($"kept {Names(kept)}");
        }

        if (v.Reused is { } reused)
        {
            parts.Add($"used again {Names(reused)}");
        }

        if (v.New is { } added)
        {
            parts.Add($"new {Names(added)}");
        }
        else if (plan.Starts.Volumes is { } named)
        {
            parts.Add($"the new version's {Names(named)}");
        }

        return $"{string.Join("; ", parts)} ({how})";
    }

    /// <summary>The first 12 hex digits of an image ID (as docker prints it).</summary>
    private static string Short(string? id)
    {
        var hex = id is null ? "?" : id.StartsWith("sha256:", StringComparison.Ordinal) ? id[7..] : id;
        return hex[..Math.Min(12, hex.Length)];
    }
}
