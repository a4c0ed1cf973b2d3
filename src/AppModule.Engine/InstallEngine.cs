using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace AppModule.Engine;

/// <summary>
/// The one install engine of a device, whichever trigger asks (the Mender client through <c>app</c>,
/// or the fleet agent). Every step that changes something takes the store's lock, reads the
/// application's state, and advances it through atomic transitions, so that after a crash at any
/// instant the next call (rollback, failure, cleanup, or a new install) recovers:
/// <list type="bullet">
/// <item>Install: pre-checks (the source's, the sub-module's REQS with the new manifests, the
/// source's preparation), store the composition, LOAD images, STOP the running composition, ROLLOUT
/// the new one, health gate with soak.</item>
/// <item>Commit: the new composition becomes last-known-good (the old one is kept as the rollback
/// composition), then it must still be healthy.</item>
/// <item>Rollback: back to the last-known-good, whether the install is pending or was just committed
/// (the commit failed); waits until it is healthy again.</item>
/// <item>Cleanup: DELETEs images that no kept composition of any application uses.</item>
/// </list>
/// </summary>
/// <param name="config">the store, the sub-module directory, health timeout and soak.</param>
/// <param name="subModuleEnvironment">variables every sub-module call gets (see <see cref="SubModuleRunner"/>).</param>
/// <param name="observer">told of every step the journal records (application, event, detail), after it is recorded: the fleet agent publishes them.</param>
public sealed class InstallEngine(AppConfig config, IReadOnlyDictionary<string, string?>? subModuleEnvironment = null, Action<string, string, string>? observer = null)
{
    private readonly AppStore _store = new(config.PersistentStore);
    private readonly SubModuleRunner _runner = new(config, subModuleEnvironment);

    /// <summary>The health gate with the device's settings, or with those <paramref name="c"/>'s artifact asked for.</summary>
    private HealthGate GateFor(Composition c) => new(config.With(c.Health), _runner);

    public AppStore Store => _store;

    public SubModuleRunner Runner => _runner;

    private IDisposable Lock() => _store.Lock(TimeSpan.FromMinutes(5));

    /// <summary>One recorded step: the store's atomic transition, then the observer.</summary>
    private AppState Transition(AppState next, string @event, string detail = "")
    {
        var state = _store.Transition(next, @event, detail);
        observer?.Invoke(next.Application, @event, detail);
        return state;
    }

    // ---------------------------------------------------------------- Install

    /// <summary>Installs <paramref name="source"/> up to health-gated and pending; <see cref="CommitAsync"/> or <see cref="RollbackAsync"/> ends it.</summary>
    public Task InstallAsync(IInstallSource source, CancellationToken ct) => InstallAsync(source, inPlace: false, ct);

    /// <summary>
    /// Installs <paramref name="source"/>; with <paramref name="inPlace"/> the running composition is not STOPped first: the
    /// new one is rolled out over it, so the sub-module changes only what differs (Compose recreates only the services whose
    /// definition or image changed). Used for a per-service restart or update of the same application.
    /// </summary>
    public async Task InstallAsync(IInstallSource source, bool inPlace, CancellationToken ct)
    {
        var app = source.Application;
        var version = source.Version;
        Log.Info($"installing {version}: application {app}, orchestrator {source.Orchestrator}, platform {source.Platform}");
        var exe = _runner.Resolve(source.Orchestrator);
        source.Begin();
        if (config.Refusal(source.Health) is { } refusal)
        {
            throw new InstallException("pre-check", version, refusal);
        }

        var env = SubModuleRunner.EnvironmentFor(source.Platform, source.Env);
        var step = new InstallStep(_runner, exe, env);

        using var _ = Lock();
        _store.RemoveLeftovers(app);
        var state = RecoverForInstall(_store.Load(app), version);

        // ---- pre-checks: nothing on the device changes until all of these pass
        var images = await source.CheckAsync(ct).ConfigureAwait(false);

        // The sub-module's requirements, and the new manifests against its policy and the images the version uses.
        var preview = Path.Combine(source.WorkDir, "manifests-check");
        if (Directory.Exists(preview))
        {
            Directory.Delete(preview, recursive: true);
        }

        Directory.CreateDirectory(preview);
        source.ExtractManifests(preview, ct);
        await _runner.RequireAsync(exe, new SubModuleCall.Reqs(), RequirementsEnvironment(env, preview, images), "pre-check (REQS)", $"sub-module {source.Orchestrator} with the manifests of {version}", ct).ConfigureAwait(false);
        Directory.Delete(preview, recursive: true);

        await source.PrepareAsync(step, ct).ConfigureAwait(false);

        // ---- store the new composition (the last-known-good stays untouched)
        var draft = new Composition(string.Empty, app, version, source.Orchestrator, source.Platform, images.ToArray(), source.Env, DateTimeOffset.UtcNow) { Origin = source.Origin, Health = source.Health };
        var composition = _store.CreateComposition(state, draft, dir => source.ExtractManifests(dir, ct), out state);
        state = Transition(state with { Pending = new PendingInstall(composition.Id, version, InstallPhase.Prepared) { InPlace = inPlace } }, "prepared", $"{version} as {composition.Id}");
        var compositionEnv = SubModuleRunner.EnvironmentFor(composition);

        // ---- LOAD every image
        state = Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Loading } }, "loading", $"{images.Count} image(s)");
        await source.LoadAsync(step, ct).ConfigureAwait(false);

        // ---- switch: STOP what runs, ROLLOUT the new composition
        state = Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Switching } }, "switching", $"from {state.Running ?? "nothing"} to {composition.Id}");
        if (state.Running is { } running && !inPlace)
        {
            var old = _store.ReadComposition(app, running);
            var oldExe = _runner.Resolve(old.Orchestrator);
            // Recorded before the STOP: a crash right after the STOP must not leave a state that
            // claims the old composition still runs (the rollback would then only wait for it).
            state = Transition(state with { Running = null }, "stopping", running);
            await _runner.RequireAsync(oldExe, new SubModuleCall.Stop(app, _store.ManifestsOf(app, running)), SubModuleRunner.EnvironmentFor(old), "STOP", $"application {app} ({old.ArtifactName})", ct).ConfigureAwait(false);
            Transition(state, "stopped", running);
        }

        state = Transition(state with { Running = composition.Id, Stopping = null, RequestedBy = state.Restarting is null ? null : state.RequestedBy }, "rolling-out", composition.Id);
        await _runner.RequireAsync(exe, new SubModuleCall.Rollout(app, _store.ManifestsOf(app, composition.Id)), compositionEnv, "ROLLOUT", $"application {app} ({version})", ct).ConfigureAwait(false);
        state = Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.RolledOut } }, "rolled-out", composition.Id);

        // ---- health gate
        await GateFor(composition).WaitAsync(exe, app, compositionEnv, soak: true, ct).ConfigureAwait(false);
        Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Installed } }, "installed", $"{version} is healthy; waiting for commit");
        Log.Info($"{version} installed: {app} runs {composition.Id}; commit to keep it, roll back to return to {state.Committed ?? "nothing"}");
    }

    /// <summary>The environment of the pre-check REQS: the version's, plus its manifests (a preview directory) and images.</summary>
    public static IReadOnlyDictionary<string, string?> RequirementsEnvironment(IReadOnlyDictionary<string, string?> env, string manifests, IReadOnlyList<ImageRef> images) =>
        (SubModuleContext.FromEnvironment(env) with
        {
            PreCheckManifests = manifests,
            Images = images.Select(i => new ImagePin(i.Id, i.Url)).ToList(),
        }).ToEnvironment();

    /// <summary>
    /// Before a new install: a pending install still in the store was dropped by the client (3.4
    /// silently discards it when a second install arrives) or interrupted by a crash. It is abandoned:
    /// its composition becomes garbage; whatever runs is stopped by the switch step as usual. A commit
    /// whose Cleanup never ran is finalized.
    /// </summary>
    private AppState RecoverForInstall(AppState state, string version)
    {
        if (state.RecentCommit is { } rc)
        {
            state = Transition(state with { RecentCommit = null, Garbage = AddGarbage(state.Garbage, rc.DemotedPrevious) }, "commit-finalized", rc.ArtifactName);
        }

        if (state.Pending is { } p)
        {
            Log.Warning($"{state.Application}: the earlier install of {p.ArtifactName} was never committed or rolled back; abandoning it for {version} (last-known-good stays {state.Committed ?? "none"})");
            state = Transition(state with { Pending = null, Garbage = AddGarbage(state.Garbage, p.Composition) }, "abandoned", p.ArtifactName);
        }

        return state;
    }

    private static IReadOnlyList<string> AddGarbage(IReadOnlyList<string> garbage, string? id) =>
        id is null || garbage.Contains(id) ? garbage : [.. garbage, id];

    // ---------------------------------------------------------------- Commit

    /// <summary>Makes the pending install of <paramref name="version"/> the last-known-good, then checks it is still healthy.</summary>
    public Task CommitAsync(string app, string version, string step, CancellationToken ct) => CommitAsync(app, version, step, replacesCommitted: false, ct);

    /// <summary>
    /// As <see cref="CommitAsync(string, string, string, CancellationToken)"/>; with <paramref name="replacesCommitted"/> the
    /// pending install is a variant of the last-known-good (the same version restarted in part): once it is still healthy it
    /// takes its place, the rollback version stays what it was, and the replaced composition is collected (its images are
    /// the same, so they stay). When it is not healthy it stays pending (throws): <see cref="RollbackAsync"/> undoes it.
    /// </summary>
    public async Task CommitAsync(string app, string version, string step, bool replacesCommitted, CancellationToken ct)
    {
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.Pending is not { } p)
        {
            if (state.RecentCommit?.ArtifactName == version)
            {
                Log.Info($"{version} is already committed");
                return;
            }

            throw new InstallException(step, $"application {app}", $"no install of {version} is pending in the store {config.PersistentStore}; install it again");
        }

        if (p.Phase != InstallPhase.Installed)
        {
            throw new InstallException(step, $"application {app}", $"the install of {p.ArtifactName} did not finish (it stopped at {p.Phase}); it will be rolled back");
        }

        if (replacesCommitted)
        {
            // Checked BEFORE it replaces the last-known-good: after a replace there is nothing to roll back to (the
            // rollback version is another one), so a variant that is no longer healthy stays pending and the caller's
            // rollback rolls the last-known-good out over it.
            var variant = _store.ReadComposition(app, p.Composition);
            await GateFor(variant).WaitAsync(_runner.Resolve(variant.Orchestrator), app, SubModuleRunner.EnvironmentFor(variant), soak: false, ct).ConfigureAwait(false);
            Transition(state with { Committed = p.Composition, Pending = null, Garbage = AddGarbage(state.Garbage, state.Committed) }, "committed", $"{p.ArtifactName} as {p.Composition}, replacing {state.Committed ?? "nothing"}");
            return;
        }

        // The new composition becomes last-known-good; the old one stays as the rollback composition,
        // and the one before it is only released at Cleanup (so a rollback can still undo this).
        state = Transition(state with
        {
            Committed = p.Composition,
            Previous = state.Committed,
            Pending = null,
            RecentCommit = new RecentCommit(p.ArtifactName, p.Composition, state.Previous),
        }, "committed", $"{p.ArtifactName} as {p.Composition}");
        Log.Info($"committed {p.ArtifactName}; checking that {app} is still healthy");
        var c = _store.ReadComposition(app, p.Composition);
        await GateFor(c).WaitAsync(_runner.Resolve(c.Orchestrator), app, SubModuleRunner.EnvironmentFor(c), soak: false, ct).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- Rollback / Failure

    /// <summary>Back to the last-known-good: undoes a pending install, or a commit whose cleanup has not run yet.</summary>
    public async Task RollbackAsync(string app, string version, string step, CancellationToken ct)
    {
        using var _ = Lock();
        _store.RemoveLeftovers(app);
        var state = _store.Load(app);
        if (state.Pending is { } p)
        {
            Log.Info($"rolling back the install of {p.ArtifactName} ({p.Composition}, reached {p.Phase}) to {Describe(app, state.Committed)}{(p.InPlace ? " in place" : "")}");
            state = await SwitchToAsync(state, state.Committed, step, ct, inPlace: p.InPlace).ConfigureAwait(false);
            Transition(state with { Pending = null, Garbage = AddGarbage(state.Garbage, p.Composition) }, "rolled-back", p.ArtifactName);
            Log.Info($"rolled back: {app} runs {Describe(app, state.Committed)}");
            return;
        }

        if (state.RecentCommit is { } rc && rc.Composition == state.Committed)
        {
            // The commit failed after the switch of last-known-good: undo the commit.
            Log.Info($"rolling back the commit of {rc.ArtifactName} to {Describe(app, state.Previous)}");
            var failed = state.Committed;
            state = await SwitchToAsync(state, state.Previous, step, ct).ConfigureAwait(false);
            Transition(state with
            {
                Committed = state.Previous,
                Previous = rc.DemotedPrevious,
                RecentCommit = null,
                Garbage = AddGarbage(state.Garbage, failed),
            }, "commit-rolled-back", rc.ArtifactName);
            Log.Info($"rolled back: {app} runs {Describe(app, state.Previous)}");
            return;
        }

        Log.Info($"{step}: nothing of {version} is pending for {app}; nothing to roll back");
    }

    /// <summary>After a failed rollback: when an install is still pending, rolls back once more, so the device ends on its last-known-good.</summary>
    public async Task FailureAsync(string app, string version, string step, CancellationToken ct)
    {
        AppState state;
        using (Lock())
        {
            state = _store.Load(app);
        }

        if (state.Pending is not null)
        {
            Log.Warning($"{step}: the install of {state.Pending.ArtifactName} is still pending; rolling back again");
            await RollbackAsync(app, version, step, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Makes <paramref name="target"/> (null: nothing) the running composition and waits until it is healthy. With
    /// <paramref name="inPlace"/> (undoing an in-place install) the target is rolled out over what runs instead of
    /// ROLLBACK's STOP and ROLLOUT, so what the failed variant did not change keeps running.
    /// </summary>
    private async Task<AppState> SwitchToAsync(AppState state, string? target, string step, CancellationToken ct, bool inPlace = false)
    {
        var app = state.Application;
        var running = state.Running;
        if (running == target)
        {
            if (target is not null)
            {
                var same = _store.ReadComposition(app, target);
                await GateFor(same).WaitAsync(_runner.Resolve(same.Orchestrator), app, SubModuleRunner.EnvironmentFor(same), soak: false, ct).ConfigureAwait(false);
            }

            return state;
        }

        if (target is null)
        {
            var old = _store.ReadComposition(app, running!);
            await _runner.RequireAsync(_runner.Resolve(old.Orchestrator), new SubModuleCall.Stop(app, _store.ManifestsOf(app, running!)), SubModuleRunner.EnvironmentFor(old), $"{step} (STOP)", $"application {app} ({old.ArtifactName})", ct).ConfigureAwait(false);
            return Transition(state with { Running = null }, "stopped", running!);
        }

        var good = _store.ReadComposition(app, target);
        var exe = _runner.Resolve(good.Orchestrator);
        var env = SubModuleRunner.EnvironmentFor(good);
        SubModuleCall call = running is null || inPlace
            ? new SubModuleCall.Rollout(app, _store.ManifestsOf(app, target))
            : new SubModuleCall.Rollback(app, _store.ManifestsOf(app, target), _store.ManifestsOf(app, running));
        await _runner.RequireAsync(exe, call, env, $"{step} ({call.Name})", $"application {app} ({good.ArtifactName})", ct).ConfigureAwait(false);
        state = Transition(state with { Running = target, Stopping = null, RequestedBy = state.Restarting is null ? null : state.RequestedBy }, "restored", target);
        await GateFor(good).WaitAsync(exe, app, env, soak: false, ct).ConfigureAwait(false);
        return state;
    }

    private string Describe(string app, string? id)
    {
        if (id is null)
        {
            return "nothing (first install)";
        }

        try
        {
            return $"{_store.ReadComposition(app, id).ArtifactName} ({id})";
        }
        catch (StoreException)
        {
            return id;
        }
    }

    /// <summary>Removes what an interrupted store write left (a composition directory never renamed into place, one half deleted), under the store's lock.</summary>
    public void RemoveLeftovers(string app)
    {
        using var _ = Lock();
        _store.RemoveLeftovers(app);
    }

    // ---------------------------------------------------------------- Stop / Restart (fleet commands)

    /// <summary>Stops what runs of <paramref name="app"/> (STOP with its manifests); the store records that nothing runs. False when nothing ran.</summary>
    public async Task<bool> StopAsync(string app, string step, Origin? requestedBy, CancellationToken ct)
    {
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.Pending is { } p)
        {
            throw new InstallException(step, $"application {app}", $"the install of {p.ArtifactName} is pending; commit or roll it back first");
        }

        if (state.Running is not { } running)
        {
            return false;
        }

        // Recorded before the STOP (as a restart does): a crash during it leaves a store that says nothing runs and
        // names what was being stopped, so the agent's start finishes the stop (ResumeStopAsync).
        var c = _store.ReadComposition(app, running);
        state = Transition(state with { Running = null, Stopping = running, RequestedBy = requestedBy }, "stopping", running);
        await StopCompositionAsync(c, running, step, ct).ConfigureAwait(false);
        Transition(state with { Stopping = null, RequestedBy = null }, "stopped", running);
        return true;
    }

    private async Task StopCompositionAsync(Composition c, string id, string step, CancellationToken ct)
    {
        var app = c.Application;
        await _runner.RequireAsync(_runner.Resolve(c.Orchestrator), new SubModuleCall.Stop(app, _store.ManifestsOf(app, id)), SubModuleRunner.EnvironmentFor(c), $"{step} (STOP)", $"application {app} ({c.ArtifactName})", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// After a crash in the middle of a stop (<see cref="AppState.Stopping"/> is set): STOPs that composition again, as
    /// the interrupted command meant to. When the store moved on since (something was rolled out or an install is
    /// pending) the record is only dropped. True when it stopped.
    /// </summary>
    public async Task<bool> ResumeStopAsync(string app, CancellationToken ct)
    {
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.Stopping is not { } stopping)
        {
            return false;
        }

        if (state.Running is not null || state.Pending is not null)
        {
            Transition(state with { Stopping = null, RequestedBy = state.Restarting is null ? null : state.RequestedBy }, "stop-dropped", $"{Describe(app, stopping)}: the store moved on since the stop was interrupted");
            return false;
        }

        await StopCompositionAsync(_store.ReadComposition(app, stopping), stopping, "recovery", ct).ConfigureAwait(false);
        Transition(state with { Stopping = null, RequestedBy = null }, "stopped", stopping);
        return true;
    }

    /// <summary>
    /// Restarts the last-known-good of <paramref name="app"/>: STOP what runs, ROLLOUT the last-known-good, health gate
    /// (no soak). The store names the composition being restarted (<see cref="AppState.Restarting"/>) until it is rolled
    /// out, so that a crash (or a failed step) between STOP and ROLLOUT does not leave the app down for good:
    /// <see cref="ResumeRestartAsync"/> finishes it.
    /// </summary>
    /// <param name="requestedBy">who asked (recorded with <see cref="AppState.Restarting"/>, shown by <c>app status</c>).</param>
    public async Task RestartAsync(string app, string step, bool waitHealthy, Origin? requestedBy, CancellationToken ct)
    {
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.Pending is { } p)
        {
            throw new InstallException(step, $"application {app}", $"the install of {p.ArtifactName} is pending; commit or roll it back first");
        }

        var target = state.Committed ?? throw new InstallException(step, $"application {app}", $"nothing of {app} is in the store {config.PersistentStore}; install it first");
        var c = _store.ReadComposition(app, target);
        var exe = _runner.Resolve(c.Orchestrator);
        var env = SubModuleRunner.EnvironmentFor(c);
        if (state.Running is { } running)
        {
            var old = _store.ReadComposition(app, running);
            state = Transition(state with { Running = null, Restarting = target, RequestedBy = requestedBy }, "stopping", running);
            await _runner.RequireAsync(_runner.Resolve(old.Orchestrator), new SubModuleCall.Stop(app, _store.ManifestsOf(app, running)), SubModuleRunner.EnvironmentFor(old), $"{step} (STOP)", $"application {app} ({old.ArtifactName})", ct).ConfigureAwait(false);
            state = Transition(state, "stopped", running);
        }

        state = Transition(state with { Running = target, Restarting = target, Stopping = null, RequestedBy = requestedBy }, "rolling-out", target);
        await _runner.RequireAsync(exe, new SubModuleCall.Rollout(app, _store.ManifestsOf(app, target)), env, $"{step} (ROLLOUT)", $"application {app} ({c.ArtifactName})", ct).ConfigureAwait(false);
        Transition(state with { Restarting = null, RequestedBy = null }, "restored", target);
        if (waitHealthy)
        {
            await GateFor(c).WaitAsync(exe, app, env, soak: false, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// After a crash in the middle of a restart (<see cref="AppState.Restarting"/> is set): restarts the last-known-good
    /// again, as the interrupted command meant to. When the store moved on since (an install pending, or another
    /// version committed, whose ROLLOUT already ran it) the record is only dropped. True when it restarted.
    /// </summary>
    public async Task<bool> ResumeRestartAsync(string app, CancellationToken ct)
    {
        var state = _store.Load(app);
        if (state.Restarting is not { } restarting)
        {
            return false;
        }

        if (state.Pending is null && restarting == state.Committed)
        {
            await RestartAsync(app, "recovery", waitHealthy: true, state.RequestedBy, ct).ConfigureAwait(false);
            return true;
        }

        using var _ = Lock();
        state = _store.Load(app);
        Transition(state with { Restarting = null, RequestedBy = state.Stopping is null ? null : state.RequestedBy }, "restart-dropped", $"{Describe(app, restarting)}: the store moved on since the restart was interrupted");
        return false;
    }

    // ---------------------------------------------------------------- Cleanup

    /// <summary>Finalizes a recent commit and DELETEs the images of collectable compositions that no kept composition of any application uses.</summary>
    public async Task CleanupAsync(string app, CancellationToken ct)
    {
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.RecentCommit is { } rc)
        {
            state = Transition(state with { RecentCommit = null, Garbage = AddGarbage(state.Garbage, rc.DemotedPrevious) }, "commit-finalized", rc.ArtifactName);
        }

        var kept = state.Kept().ToHashSet(StringComparer.Ordinal);
        var collectable = state.Garbage.Where(g => !kept.Contains(g)).ToArray();
        if (collectable.Length == 0)
        {
            return;
        }

        // Images still used by any kept composition of any application stay. When a kept one uses the
        // same reference for another image (myapp:latest in two versions), this one goes by its ID,
        // which leaves the reference alone.
        var inUse = _store.ImagesInUse();
        var deleted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in collectable)
        {
            Composition c;
            try
            {
                c = _store.ReadComposition(app, id);
            }
            catch (StoreException e)
            {
                Log.Warning(e.Message);
                if (!Directory.Exists(Path.Combine(_store.ApplicationDir(app), id)))
                {
                    // Deleted by a cleanup killed before it recorded "collected": only the record is left to drop.
                    state = Transition(state with { Garbage = state.Garbage.Where(g => g != id).ToArray() }, "collected", $"{id} (already deleted)");
                }

                continue;
            }

            foreach (var image in c.Images.Where(i => !inUse.Contains(i)))
            {
                var urlKept = inUse.Any(u => u.Url == image.Url);
                if (urlKept && inUse.Any(u => u.Id == image.Id))
                {
                    continue; // its reference and its image both serve kept compositions
                }

                var reference = urlKept ? $"sha256:{image.Id}" : image.Url;
                if (!deleted.Add(reference))
                {
                    continue;
                }

                string exe;
                try
                {
                    exe = _runner.Resolve(c.Orchestrator);
                }
                catch (InstallException e)
                {
                    Log.Warning($"Cleanup: cannot delete {reference}: {e.Message}");
                    continue;
                }

                var r = await _runner.CallAsync(exe, new SubModuleCall.Delete(reference, app), SubModuleRunner.EnvironmentFor(c), ct).ConfigureAwait(false);
                if (!r.Succeeded)
                {
                    Log.Warning($"Cleanup: DELETE {reference} ({image.Url}) failed (it stays on the device): {SubModuleRunner.Output(r)}");
                }
            }

            _store.DeleteComposition(app, id);
            state = Transition(state with { Garbage = state.Garbage.Where(g => g != id).ToArray() }, "collected", $"{c.ArtifactName} ({id})");
        }
    }
}
