using AppModule.Artifacts;
using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.Protocol;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace AppModule;

/// <summary>
/// The `app` Update Module's states. Every state that changes something takes the store's lock,
/// reads the application's state, and advances it through atomic transitions, so that after a crash
/// at any instant the next state call (rollback, failure, cleanup, or a new install) recovers:
/// <list type="bullet">
/// <item>ArtifactInstall: pre-checks (meta-data, sub-module REQS, payload IDs, delta bases, disk),
/// store the composition, LOAD images, STOP the running composition, ROLLOUT the new one, health gate.</item>
/// <item>ArtifactCommit: the new composition becomes last-known-good (the old one is kept as the
/// rollback composition), then it must still be healthy.</item>
/// <item>ArtifactRollback: back to the last-known-good, whether the install is pending or was just
/// committed (ArtifactCommit failed); waits until it is healthy again.</item>
/// <item>Cleanup: DELETEs images that no kept composition of any application uses.</item>
/// </list>
/// </summary>
public sealed class UpdateModule(AppConfig config, ArtifactTree tree)
{
    private readonly AppStore _store = new(config.PersistentStore);
    private readonly SubModuleRunner _runner = new(config);
    private HealthGate Gate => new(config, _runner);

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
                await InstallAsync(ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactCommit:
                await CommitAsync(ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactRollback:
                await RollbackAsync("ArtifactRollback", ct).ConfigureAwait(false);
                return;
            case ModuleState.ArtifactFailure:
                await FailureAsync(ct).ConfigureAwait(false);
                return;
            case ModuleState.Cleanup:
                await CleanupAsync(ct).ConfigureAwait(false);
                return;
            default:
                return; // reboot-related and unknown states: nothing to do
        }
    }

    private IDisposable Lock() => _store.Lock(TimeSpan.FromMinutes(5));

    // ---------------------------------------------------------------- ArtifactInstall

    private async Task InstallAsync(CancellationToken ct)
    {
        var meta = tree.Metadata();
        var app = meta.ApplicationName;
        var artifact = tree.ArtifactName;
        Log.Info($"installing {artifact}: application {app}, orchestrator {meta.Orchestrator}, platform {meta.Platform}");
        var exe = _runner.Resolve(meta.Orchestrator);
        tree.RequireFiles();
        tree.EnsureTmp();
        var env = SubModuleRunner.EnvironmentFor(meta.Platform, meta.Env ?? new Dictionary<string, string>());

        using var _ = Lock();
        _store.RemoveLeftovers(app);
        var state = RecoverForInstall(_store.Load(app), artifact);

        // ---- pre-checks: nothing on the device changes until all of these pass
        var imagesPath = tree.ImagesArchive();
        var manifestsPath = tree.ManifestsArchive();
        var (images, carriedIds) = await ImagesArchive.ScanAsync(imagesPath, ct).ConfigureAwait(false);
        // Every claim of the artifact (meta-data's image list and platform, sums-new.txt) against what the payload carries.
        ArtifactClaims.Check(meta, images, carriedIds, imagesPath);

        // The sub-module's requirements, and the new manifests against its policy and the images the artifact carries.
        var preview = Path.Combine(tree.TmpDir, "manifests-check");
        if (Directory.Exists(preview))
        {
            Directory.Delete(preview, recursive: true);
        }

        Directory.CreateDirectory(preview);
        ImagesArchive.ExtractManifests(manifestsPath, preview, ct);
        var reqsEnv = new Dictionary<string, string?>(env, StringComparer.Ordinal)
        {
            [SubModuleRunner.ManifestsVariable] = preview,
            [SubModuleRunner.ImagesVariable] = string.Join('\n', images.Select(i => $"{i.SumsNew} {i.UrlNew}")),
        };
        await _runner.RequireAsync(exe, new SubModuleCall.Reqs(), reqsEnv, "pre-check (REQS)", $"sub-module {meta.Orchestrator} with the manifests of {artifact}", ct).ConfigureAwait(false);
        Directory.Delete(preview, recursive: true);

        var prepared = new Dictionary<string, string>(StringComparer.Ordinal); // image dir -> file to LOAD (deltas)
        foreach (var image in images.Where(i => i.Kind != ImageKind.Full))
        {
            prepared[image.Id] = await PrepareDeltaAsync(exe, app, meta.Platform, image, images, imagesPath, env, ct).ConfigureAwait(false);
        }

        var fullBytes = images.Where(i => i.Kind == ImageKind.Full).Sum(i => i.ImageSize);
        DiskCheck(tree.TmpDir, 16L << 20, "the temporary files of the install");
        Log.Info($"pre-checks passed: {images.Count} image(s) ({images.Count(i => i.Kind == ImageKind.Full)} full, {fullBytes} bytes streamed), delta bases present");

        // ---- store the new composition (the last-known-good stays untouched)
        var draft = new Composition(string.Empty, app, artifact, meta.Orchestrator, meta.Platform,
            images.Select(i => new ImageRef(i.UrlNew, i.SumsNew)).ToArray(), meta.Env ?? new Dictionary<string, string>(), DateTimeOffset.UtcNow);
        var composition = _store.CreateComposition(state, draft, dir => ImagesArchive.ExtractManifests(manifestsPath, dir, ct), out state);
        state = _store.Transition(state with { Pending = new PendingInstall(composition.Id, artifact, InstallPhase.Prepared) }, "prepared", $"{artifact} as {composition.Id}");
        var compositionEnv = SubModuleRunner.EnvironmentFor(composition);

        // ---- LOAD every image
        state = _store.Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Loading } }, "loading", $"{images.Count} image(s)");
        await LoadImagesAsync(exe, app, images, imagesPath, prepared, env, ct).ConfigureAwait(false);

        // ---- switch: STOP what runs, ROLLOUT the new composition
        state = _store.Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Switching } }, "switching", $"from {state.Running ?? "nothing"} to {composition.Id}");
        if (state.Running is { } running)
        {
            var old = _store.ReadComposition(app, running);
            var oldExe = _runner.Resolve(old.Orchestrator);
            // Recorded before the STOP: a crash right after the STOP must not leave a state that
            // claims the old composition still runs (the rollback would then only wait for it).
            state = _store.Transition(state with { Running = null }, "stopping", running);
            await _runner.RequireAsync(oldExe, new SubModuleCall.Stop(app, _store.ManifestsOf(app, running)), SubModuleRunner.EnvironmentFor(old), "STOP", $"application {app} ({old.ArtifactName})", ct).ConfigureAwait(false);
            _store.Transition(state, "stopped", running);
        }

        state = _store.Transition(state with { Running = composition.Id }, "rolling-out", composition.Id);
        await _runner.RequireAsync(exe, new SubModuleCall.Rollout(app, _store.ManifestsOf(app, composition.Id)), compositionEnv, "ROLLOUT", $"application {app} ({artifact})", ct).ConfigureAwait(false);
        state = _store.Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.RolledOut } }, "rolled-out", composition.Id);

        // ---- health gate
        await Gate.WaitAsync(exe, app, compositionEnv, soak: true, ct).ConfigureAwait(false);
        _store.Transition(state with { Pending = state.Pending! with { Phase = InstallPhase.Installed } }, "installed", $"{artifact} is healthy; waiting for commit");
        Log.Info($"{artifact} installed: {app} runs {composition.Id}; commit to keep it, roll back to return to {state.Committed ?? "nothing"}");
    }

    /// <summary>
    /// Before a new install: a pending install still in the store was dropped by the client (3.4
    /// silently discards it when a second install arrives) or interrupted by a crash. It is abandoned:
    /// its composition becomes garbage; whatever runs is stopped by the switch step as usual. A commit
    /// whose Cleanup never ran is finalized.
    /// </summary>
    private AppState RecoverForInstall(AppState state, string artifact)
    {
        if (state.RecentCommit is { } rc)
        {
            state = _store.Transition(state with { RecentCommit = null, Garbage = AddGarbage(state.Garbage, rc.DemotedPrevious) }, "commit-finalized", rc.ArtifactName);
        }

        if (state.Pending is { } p)
        {
            Log.Warning($"{state.Application}: the earlier install of {p.ArtifactName} was never committed or rolled back; abandoning it for {artifact} (last-known-good stays {state.Committed ?? "none"})");
            state = _store.Transition(state with { Pending = null, Garbage = AddGarbage(state.Garbage, p.Composition) }, "abandoned", p.ArtifactName);
        }

        return state;
    }

    private static IReadOnlyList<string> AddGarbage(IReadOnlyList<string> garbage, string? id) =>
        id is null || garbage.Contains(id) ? garbage : [.. garbage, id];

    /// <summary>
    /// For a delta image: SAVEs the base (url-current) and checks it is the image the delta was made
    /// against, then rebuilds the new saved image in tmp/ and checks its ID. All before anything is
    /// stopped; a missing or different base refuses the install. Returns the file to LOAD.
    /// </summary>
    private async Task<string> PrepareDeltaAsync(string exe, string app, string platform, ImageEntry image, IReadOnlyList<ImageEntry> all, string imagesPath, IReadOnlyDictionary<string, string?> env, CancellationToken ct)
    {
        var basePath = Path.Combine(tree.TmpDir, $"base-{image.Id[..12]}.tar");
        File.Delete(basePath);
        DiskCheck(tree.TmpDir, Math.Max(image.ImageSize * 4, 64L << 20), $"saving the delta base {image.UrlCurrent}");
        var save = new SubModuleCall.Save(app, image.UrlCurrent, basePath);
        var r = await _runner.CallAsync(exe, save, env, ct).ConfigureAwait(false);
        if (!r.Succeeded || !File.Exists(basePath))
        {
            throw new InstallException("pre-check", image.UrlNew,
                $"the delta base {image.UrlCurrent} (image {image.SumsCurrent}) is not on the device (SAVE failed); nothing was stopped. Install an artifact with the full image instead",
                SubModuleRunner.Output(r));
        }

        var baseId = ImagesArchive.SavedImageIdOfFile(basePath, ct);
        if (baseId != image.SumsCurrent)
        {
            throw new InstallException("pre-check", image.UrlNew,
                $"the delta base {image.UrlCurrent} on the device is image {baseId ?? "(unknown)"}, but the delta needs {image.SumsCurrent}; nothing was stopped. Install an artifact with the full image instead");
        }

        if (image.Kind == ImageKind.Delta && image.BaseTarSha256 is { } expectedTar)
        {
            await using var baseStream = File.OpenRead(basePath);
            var actualTar = await AppModule.Delta.Digests.Sha256HexAsync(baseStream, ct).ConfigureAwait(false);
            if (actualTar != expectedTar)
            {
                throw new InstallException("pre-check", image.UrlNew,
                    $"this device saves the base {image.UrlCurrent} as a different tar (sha256 {actualTar[..12]}, the delta was made against {expectedTar[..12]}), so the whole-image delta cannot apply; nothing was stopped. Install an artifact with the full image or a deep delta instead");
            }
        }

        // The payload is extracted (deltas are small) for the decoder.
        var payloadPath = Path.Combine(tree.TmpDir, $"payload-{image.Id[..12]}.img");
        await ImagesArchive.ForEachPayloadAsync(imagesPath, all, async (entry, stream) =>
        {
            if (entry.Id == image.Id)
            {
                await using var fs = new FileStream(payloadPath, FileMode.Create, FileAccess.Write);
                await stream.CopyToAsync(fs, ct).ConfigureAwait(false);
            }
        }, ct).ConfigureAwait(false);

        var newPath = Path.Combine(tree.TmpDir, $"new-{image.Id[..12]}.tar");
        DiskCheck(tree.TmpDir, new FileInfo(basePath).Length + image.ImageSize + (16L << 20), $"rebuilding {image.UrlNew} from its delta");
        try
        {
            DeltaApplier.Apply(image.Kind, basePath, payloadPath, newPath, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException and not InstallException)
        {
            throw new InstallException("pre-check", image.UrlNew, $"cannot apply the {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} ({e.Message}); nothing was stopped. Install an artifact with the full image instead");
        }

        var rebuilt = ImagesArchive.SavedImageOfFile(newPath, ct);
        if (rebuilt?.Id != image.SumsNew)
        {
            throw new InstallException("pre-check", image.UrlNew, $"the image rebuilt from the delta is {rebuilt?.Id ?? "(unknown)"}, but sums-new.txt says {image.SumsNew}; nothing was stopped. Install an artifact with the full image instead");
        }

        ArtifactClaims.CheckPlatform(platform, rebuilt, image.UrlNew);

        File.Delete(basePath);
        File.Delete(payloadPath);
        Log.Info($"rebuilt {image.UrlNew} from its {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} (image {image.SumsNew[..12]})");
        return newPath;
    }

    private async Task LoadImagesAsync(string exe, string app, IReadOnlyList<ImageEntry> images, string imagesPath,
        IReadOnlyDictionary<string, string> prepared, IReadOnlyDictionary<string, string?> env, CancellationToken ct)
    {
        // Deltas were already rebuilt into whole saved images by the pre-checks: any sub-module can load those.
        foreach (var image in images.Where(i => i.Kind != ImageKind.Full))
        {
            var call = new SubModuleCall.Load(app, Pinned(image), prepared[image.Id], Pinned(image));
            await _runner.RequireAsync(exe, call, env, "LOAD", $"image {image.UrlNew}", ct).ConfigureAwait(false);
            File.Delete(prepared[image.Id]);
        }

        // Full images stream from the archive through a FIFO straight into the sub-module.
        await ImagesArchive.ForEachPayloadAsync(imagesPath, images, async (image, stream) =>
        {
            if (image.Kind != ImageKind.Full)
            {
                return;
            }

            var fifo = Path.Combine(tree.TmpDir, $"load-{image.Id[..12]}.fifo");
            File.Delete(fifo);
            Fifo.Create(fifo);
            try
            {
                var call = new SubModuleCall.Load(app, Pinned(image), fifo, Pinned(image));
                var (r, written, writeError) = await Fifo.FeedAsync(fifo, stream, () => _runner.CallAsync(exe, call, env, ct), ct).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                if (!r.Succeeded)
                {
                    throw SubModuleRunner.Failure(exe, call, r, "LOAD", $"image {image.UrlNew}");
                }

                if (written != image.ImageSize)
                {
                    throw new InstallException("LOAD", $"image {image.UrlNew}",
                        $"the sub-module read {written} of {image.ImageSize} bytes of the image and still reported success ({writeError?.Message ?? "pipe closed early"}); its LOAD must read the whole file",
                        SubModuleRunner.Output(r));
                }

                Log.Info($"loaded {image.UrlNew} ({written} bytes streamed, image {image.SumsNew[..12]})");
            }
            finally
            {
                File.Delete(fifo);
            }
        }, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The url LOAD gets: url-new pinned to the image ID (<c>url@sha256:&lt;sums-new&gt;</c>, seed 004), so
    /// the sub-module checks that what it loaded is that image; sub-modules that ignore the url still work.
    /// </summary>
    private static string Pinned(ImageEntry image) => $"{image.UrlNew}@sha256:{image.SumsNew}";

    private static void DiskCheck(string dir, long needed, string what)
    {
        var free = new DriveInfo(Path.GetFullPath(dir)).AvailableFreeSpace;
        if (free < needed)
        {
            throw new InstallException("pre-check", what, $"needs {needed / (1 << 20)} MiB in {dir}, only {free / (1 << 20)} MiB free; free some space on that filesystem and retry");
        }
    }

    // ---------------------------------------------------------------- ArtifactCommit

    private async Task CommitAsync(CancellationToken ct)
    {
        var meta = tree.TryMetadata();
        if (meta is null)
        {
            Log.Warning("ArtifactCommit: the artifact's meta-data is unusable, so nothing was installed; nothing to commit");
            return;
        }

        var app = meta.ApplicationName;
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.Pending is not { } p)
        {
            if (state.RecentCommit?.ArtifactName == tree.ArtifactName)
            {
                Log.Info($"{tree.ArtifactName} is already committed");
                return;
            }

            throw new InstallException("ArtifactCommit", $"application {app}", $"no install of {tree.ArtifactName} is pending in the store {config.PersistentStore}; install it again");
        }

        if (p.Phase != InstallPhase.Installed)
        {
            throw new InstallException("ArtifactCommit", $"application {app}", $"the install of {p.ArtifactName} did not finish (it stopped at {p.Phase}); it will be rolled back");
        }

        // The new composition becomes last-known-good; the old one stays as the rollback composition,
        // and the one before it is only released at Cleanup (so ArtifactRollback can still undo this).
        state = _store.Transition(state with
        {
            Committed = p.Composition,
            Previous = state.Committed,
            Pending = null,
            RecentCommit = new RecentCommit(p.ArtifactName, p.Composition, state.Previous),
        }, "committed", $"{p.ArtifactName} as {p.Composition}");
        Log.Info($"committed {p.ArtifactName}; checking that {app} is still healthy");
        var c = _store.ReadComposition(app, p.Composition);
        await Gate.WaitAsync(_runner.Resolve(c.Orchestrator), app, SubModuleRunner.EnvironmentFor(c), soak: false, ct).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- ArtifactRollback / ArtifactFailure

    private async Task RollbackAsync(string step, CancellationToken ct)
    {
        var meta = tree.TryMetadata();
        if (meta is null)
        {
            Log.Info($"{step}: the artifact's meta-data is unusable, so the install changed nothing; nothing to roll back");
            return;
        }

        var app = meta.ApplicationName;
        using var _ = Lock();
        _store.RemoveLeftovers(app);
        var state = _store.Load(app);
        if (state.Pending is { } p)
        {
            Log.Info($"rolling back the install of {p.ArtifactName} ({p.Composition}, reached {p.Phase}) to {Describe(app, state.Committed)}");
            state = await SwitchToAsync(state, state.Committed, step, ct).ConfigureAwait(false);
            _store.Transition(state with { Pending = null, Garbage = AddGarbage(state.Garbage, p.Composition) }, "rolled-back", p.ArtifactName);
            Log.Info($"rolled back: {app} runs {Describe(app, state.Committed)}");
            return;
        }

        if (state.RecentCommit is { } rc && rc.Composition == state.Committed)
        {
            // ArtifactCommit failed after the switch of last-known-good: undo the commit.
            Log.Info($"rolling back the commit of {rc.ArtifactName} to {Describe(app, state.Previous)}");
            var failed = state.Committed;
            state = await SwitchToAsync(state, state.Previous, step, ct).ConfigureAwait(false);
            _store.Transition(state with
            {
                Committed = state.Previous,
                Previous = rc.DemotedPrevious,
                RecentCommit = null,
                Garbage = AddGarbage(state.Garbage, failed),
            }, "commit-rolled-back", rc.ArtifactName);
            Log.Info($"rolled back: {app} runs {Describe(app, state.Previous)}");
            return;
        }

        Log.Info($"{step}: nothing of {tree.ArtifactName} is pending for {app}; nothing to roll back");
    }

    /// <summary>Makes <paramref name="target"/> (null: nothing) the running composition and waits until it is healthy.</summary>
    private async Task<AppState> SwitchToAsync(AppState state, string? target, string step, CancellationToken ct)
    {
        var app = state.Application;
        var running = state.Running;
        if (running == target)
        {
            if (target is not null)
            {
                var same = _store.ReadComposition(app, target);
                await Gate.WaitAsync(_runner.Resolve(same.Orchestrator), app, SubModuleRunner.EnvironmentFor(same), soak: false, ct).ConfigureAwait(false);
            }

            return state;
        }

        if (target is null)
        {
            var old = _store.ReadComposition(app, running!);
            await _runner.RequireAsync(_runner.Resolve(old.Orchestrator), new SubModuleCall.Stop(app, _store.ManifestsOf(app, running!)), SubModuleRunner.EnvironmentFor(old), $"{step} (STOP)", $"application {app} ({old.ArtifactName})", ct).ConfigureAwait(false);
            return _store.Transition(state with { Running = null }, "stopped", running!);
        }

        var good = _store.ReadComposition(app, target);
        var exe = _runner.Resolve(good.Orchestrator);
        var env = SubModuleRunner.EnvironmentFor(good);
        SubModuleCall call = running is null
            ? new SubModuleCall.Rollout(app, _store.ManifestsOf(app, target))
            : new SubModuleCall.Rollback(app, _store.ManifestsOf(app, target), _store.ManifestsOf(app, running));
        await _runner.RequireAsync(exe, call, env, $"{step} ({call.Name})", $"application {app} ({good.ArtifactName})", ct).ConfigureAwait(false);
        state = _store.Transition(state with { Running = target }, "restored", target);
        await Gate.WaitAsync(exe, app, env, soak: false, ct).ConfigureAwait(false);
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

    private async Task FailureAsync(CancellationToken ct)
    {
        var meta = tree.TryMetadata();
        if (meta is null)
        {
            return;
        }

        AppState state;
        using (Lock())
        {
            state = _store.Load(meta.ApplicationName);
        }

        if (state.Pending is not null)
        {
            // ArtifactRollback did not finish: try once more, so the device ends on its last-known-good.
            Log.Warning($"ArtifactFailure: the install of {state.Pending.ArtifactName} is still pending; rolling back again");
            await RollbackAsync("ArtifactFailure", ct).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- Cleanup

    private async Task CleanupAsync(CancellationToken ct)
    {
        var meta = tree.TryMetadata();
        if (meta is null)
        {
            return;
        }

        var app = meta.ApplicationName;
        using var _ = Lock();
        var state = _store.Load(app);
        if (state.RecentCommit is { } rc)
        {
            state = _store.Transition(state with { RecentCommit = null, Garbage = AddGarbage(state.Garbage, rc.DemotedPrevious) }, "commit-finalized", rc.ArtifactName);
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
            state = _store.Transition(state with { Garbage = state.Garbage.Where(g => g != id).ToArray() }, "collected", $"{c.ArtifactName} ({id})");
        }
    }
}
