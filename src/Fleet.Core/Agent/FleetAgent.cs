using System.Collections.Concurrent;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Engine;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Registry;
using Fleet.Core.Security;
using Fleet.Core.State;
using Fleet.Core.Wire;

namespace Fleet.Core.Agent;

/// <summary>Seed 001's "docker compose RPC service" with seed 002's operations: serves <c>update_version</c>,
/// <c>down</c>, <c>restart</c> and <c>update</c> on its RPC name, and publishes each app's version (the image tag
/// of the version the store says runs) at start, after every change and periodically.
/// Every change goes through the device's one <see cref="InstallEngine"/> and its store, the same as a Mender
/// deployment: pre-checks (here the engine-disk check of what the pull brings, then the pull), STOP, ROLLOUT through the docker-compose sub-module, health gate with
/// soak, commit, rollback to the last-known-good, cleanup of images no kept composition uses.</summary>
public sealed class FleetAgent
{
    public const string BackupSuffix = ".fleet-backup";
    private readonly AgentConfig _cfg;
    private readonly IFleetBus _bus;
    private readonly InstallEngine _engine;
    private readonly ImagePuller _puller;
    private readonly CommandVerifier? _verifier;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new();
    private readonly IdempotencyCache _done = new();
    /// <summary>The updaters' report stream (null: reports go by pub/sub only).</summary>
    private readonly FleetState? _reports;
    /// <summary>The command being served in this async flow (its events carry it).</summary>
    private readonly AsyncLocal<(string Command, string? Id)?> _command = new();

    public FleetAgent(AgentConfig cfg, IFleetBus bus)
    {
        _cfg = cfg;
        _bus = bus;
        var env = cfg.SubModuleConfig is null ? null : new Dictionary<string, string?> { [SubModuleContext.ConfigPathVariable(ComposeSource.OrchestratorName)] = cfg.SubModuleConfig };
        _engine = new InstallEngine(cfg.Engine, env, (app, step, detail) => Event(app, step, detail));
        // The registry is read only to plan the pull (layers and sizes for the engine-disk pre-check); the engine pulls with its own settings.
        _puller = new ImagePuller(cfg.DockerCli, new RegistryClient(new RegistryOptions { MaxAttempts = 2, RequestTimeout = TimeSpan.FromSeconds(10) }, log: m => Log.Info(m)));
        _verifier = cfg.HmacKey is null ? null : new CommandVerifier(cfg.HmacKey, cfg.RpcName, cfg.MaxCommandTtl);
        _reports = cfg.ReportStream && bus is RedisFleetBus r ? new FleetState(r.Database, new FleetStateOptions { Prefix = cfg.StatePrefix }) : null;
    }

    public AppStore Store => _engine.Store;

    /// <summary>Publishes one step on the events channel; never throws (a lost event loses no state: the journal has it).</summary>
    private void Event(string app, string step, string detail)
    {
        if (_cfg.EventsChannel.Length == 0) return;
        var (command, id) = _command.Value ?? ("recovery", (string?)null);
        var e = new FleetEvent(_cfg.RpcName, app, command, id, step, detail, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        _ = PublishEventAsync(e);
    }

    private async Task PublishEventAsync(FleetEvent e)
    {
        try { await _bus.PublishAsync(_cfg.EventsChannel, WireCodec.EncodeEvent(e), CancellationToken.None); }
        catch (Exception ex) when (ex is not OutOfMemoryException) { Log.Warning($"cannot publish event {e.Event} of {e.App}: {ex.Message}"); }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var app in _cfg.Apps) await RecoverAsync(app, ct);
        foreach (var app in _cfg.Apps) await PublishVersionAsync(app, ct);
        var server = new CommlibRpcServer(_bus, _cfg.RpcName, HandleAsync, Log.Warning, _cfg.WireStyle);
        Log.Info($"serving RPC {_cfg.RpcName} for {string.Join(", ", _cfg.Apps.Select(a => $"{a.Name} ({a.Directory})"))}{(_verifier is null ? "" : "; signed commands only")}; store {_cfg.Engine.PersistentStore}");
        var serve = server.RunAsync(ct);
        if (_cfg.ReportInterval > TimeSpan.Zero)
        {
            try
            {
                using var timer = new PeriodicTimer(_cfg.ReportInterval);
                while (await timer.WaitForNextTickAsync(ct))
                    foreach (var app in _cfg.Apps) await PublishVersionAsync(app, ct);
            }
            catch (OperationCanceledException) { }
        }
        await serve;
    }

    /// <summary>After a crash (SIGKILL mid-command): an install left pending is rolled back to the last-known-good,
    /// as the Mender client's ArtifactRollback would; a commit whose cleanup never ran (or was killed) is finalized
    /// and the versions it demoted collected; what an interrupted store write left is removed; a restart (or restore)
    /// interrupted between its STOP and its ROLLOUT is finished, so the app runs again; a <c>down</c> interrupted in its
    /// STOP is finished, so the app is down as asked. The app's compose file is then
    /// written from the store (the store is the truth).</summary>
    public async Task RecoverAsync(AgentApp app, CancellationToken ct)
    {
        try
        {
            _engine.RemoveLeftovers(app.Name);
            var state = _engine.Store.Load(app.Name);
            if (state.Pending is { } p)
            {
                Log.Warning($"{app.Name}: the install of {p.ArtifactName} was interrupted at {p.Phase}; rolling back to the last-known-good");
                await _engine.RollbackAsync(app.Name, p.ArtifactName, "recovery", ct);
            }

            if (state.Pending is not null || state.RecentCommit is not null || state.Garbage.Count > 0)
            {
                await _engine.CleanupAsync(app.Name, ct);
            }

            if (state.Restarting is { } r)
            {
                Log.Warning($"{app.Name}: a restart of {r} was interrupted; bringing the last-known-good up again");
                await _engine.ResumeRestartAsync(app.Name, ct);
            }

            if (state.Stopping is { } s)
            {
                Log.Warning($"{app.Name}: a stop (down) of {s} was interrupted; stopping it again");
                await _engine.ResumeStopAsync(app.Name, ct);
            }

            WriteBackFromStore(app);
        }
        catch (Exception e) when (e is InstallException or StoreException or IOException or ComposeFileException)
        {
            Log.Error($"{app.Name}: recovery after a restart failed: {e.Message}");
        }
    }

    /// <summary>The version the store says runs (its committed composition's image tag); else the directory's file.</summary>
    public string? CurrentVersion(AgentApp app)
    {
        var state = _engine.Store.Load(app.Name);
        if (state.Committed is { } id)
        {
            var manifests = _engine.Store.ManifestsOf(app.Name, id);
            var file = ComposeFile.Find(manifests);
            return ComposeFile.FindImage(File.ReadAllText(file), app.Service, file).Tag;
        }

        var own = ComposeFile.Find(app.Directory);
        return ComposeFile.FindImage(File.ReadAllText(own), app.Service, own).Tag;
    }

    /// <summary>Reports the app's VersionMessage: PUBLISHed on the version channel (commlib peers listen there) and
    /// added to the updaters' report stream (durable: read when an updater runs), with the same dedupe as the
    /// updaters' bridge of the PUBLISH, so the report is one stream entry. Failures are logged, not thrown.</summary>
    public async Task PublishVersionAsync(AgentApp app, CancellationToken ct)
    {
        byte[] payload;
        try
        {
            var version = CurrentVersion(app);
            if (version is null) return;
            payload = WireCodec.EncodeVersion(new VersionMessage(app.Name, version, []), _cfg.WireStyle);
        }
        catch (Exception e) when (e is ComposeFileException or IOException or StoreException)
        {
            Log.Warning($"cannot report the version of {app.Name}: {e.Message}");
            return;
        }
        // Redis away for a moment (restarting) must not turn a command that succeeded into a failure: the report is
        // sent again at the next interval
        try { await _bus.PublishAsync(_cfg.Channel, payload, ct); }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            Log.Warning($"cannot publish the version report of {app.Name} on {_cfg.Channel}: {e.Message}; it is sent again at the next report");
        }
        if (_reports is null) return;
        try { await _reports.AddReportsAsync([payload], dedupe: true, ct); }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            Log.Warning($"cannot add the version report of {app.Name} to {_reports.Options.Stream}: {e.Message}; it was published on {_cfg.Channel} and is sent again at the next report");
        }
    }

    public async Task<DockerCommandResponse> HandleAsync(DockerCommandRequest req, CancellationToken ct)
    {
        if (_verifier?.Check(req) is { } refusal)
        {
            Log.Warning($"command {req.Command} for {req.Directory}: {refusal}");
            return new DockerCommandResponse(false, refusal);
        }
        var dir = req.Directory.Length > 0 ? Path.GetFullPath(req.Directory) : "";
        var app = _cfg.Apps.FirstOrDefault(a => a.Directory == dir);
        if (app is null)
            return new DockerCommandResponse(false, $"directory '{req.Directory}' is not managed by {_cfg.RpcName} (managed: {string.Join(", ", _cfg.Apps.Select(a => a.Directory))})");
        var gate = _locks.GetOrAdd(app.Name, _ => new SemaphoreSlim(1));
        await gate.WaitAsync(ct);
        try
        {
            if (req.IdempotencyKey is { } seen && _done.TryGet(seen, out var answer))
            {
                Log.Info($"command {req.Command} {app.Name}: idempotency key {seen} already run; answered again, not run twice");
                return answer;
            }
            var id = req.IdempotencyKey ?? req.Nonce ?? Guid.NewGuid().ToString("N")[..16];
            _command.Value = (req.Command, id);
            Log.Info($"command {req.Command} {app.Name}{(req.NewVersion is null ? "" : " " + req.NewVersion)}{(req.Service is null ? "" : " service " + req.Service)} (command id {id})");
            Event(app.Name, "started", req.NewVersion ?? "");
            var resp = req.Command switch
            {
                "update_version" => await UpdateVersionAsync(app, req.NewVersion, req.Digest, FleetOrigin(app), ct),
                "down" => await StepAsync(app, async () =>
                {
                    await AdoptAsync(app, ct);
                    await _engine.StopAsync(app.Name, "down", FleetOrigin(app), ct);
                }, $"Stopped services in {app.Directory}", ct),
                "restart" when req.Service is not null => await RestartServiceAsync(app, req.Service, ct),
                "restart" => await StepAsync(app, async () =>
                {
                    await AdoptAsync(app, ct);
                    await _engine.RestartAsync(app.Name, "restart", req.Wait ?? true, FleetOrigin(app), ct);
                }, $"Restarted all services in {app.Directory}", ct),
                "update" when req.Service is not null => WholeAppOnly(req),
                "update" => await UpdateAsync(app, FleetOrigin(app), ct),
                "restore" => await RestoreAsync(app, req.Wait ?? true, ct),
                _ => new DockerCommandResponse(false, $"unknown command '{req.Command}'; supported: update_version, down, restart, update, restore"),
            };
            Log.Write(resp.Success ? LogLevel.Info : LogLevel.Warning, $"command {req.Command} {app.Name}: {resp.Message}",
                ("app", app.Name), ("command", req.Command), ("command_id", id), ("outcome", resp.Success ? "success" : "failure"));
            if (req.IdempotencyKey is { } key) _done.Add(key, resp);
            Event(app.Name, resp.Success ? "succeeded" : "failed", resp.Message);
            return resp;
        }
        finally { gate.Release(); }
    }

    /// <summary>The origin a fleet command's version is stored with: the command's idempotency key, else its nonce when it is signed, else an id made here (logged).</summary>
    private Origin FleetOrigin(AgentApp app) => new("fleet", _command.Value?.Id, app.Directory);

    private static DockerCommandResponse WholeAppOnly(DockerCommandRequest req) =>
        new(false, $"{req.Command} of one service ('{req.Service}') is not supported yet: send {req.Command} without a service (the whole app), or restart the service");

    private async Task<DockerCommandResponse> StepAsync(AgentApp app, Func<Task> step, string success, CancellationToken ct)
    {
        try
        {
            await step();
            await PublishVersionAsync(app, ct);
            return new DockerCommandResponse(true, success);
        }
        catch (Exception e) when (e is InstallException or StoreException or ComposeFileException or IOException) { return new DockerCommandResponse(false, e.Message); }
    }

    /// <summary>An app the store does not know yet (deployed by hand before the agent ran): its directory's compose
    /// file is installed and committed as the first version (origin: the directory), so that a failed update has a
    /// last-known-good to roll back to.</summary>
    private async Task AdoptAsync(AgentApp app, CancellationToken ct)
    {
        if (_engine.Store.Load(app.Name).Committed is not null) return;
        var file = ComposeFile.Find(app.Directory);
        var text = await File.ReadAllTextAsync(file, ct);
        var version = ComposeFile.FindImage(text, app.Service, file).Tag;
        Log.Info($"{app.Name}: not in the store {_cfg.Engine.PersistentStore} yet; adopting {file} ({version}) as its last-known-good");
        await InstallAndCommitAsync(app, version, Path.GetFileName(file), text, new Origin("directory", null, app.Directory), ct);
    }

    private Task InstallAndCommitAsync(AgentApp app, string version, string fileName, string text, Origin origin, CancellationToken ct) =>
        InstallAndCommitAsync(app, new ComposeSource(app.Name, version, fileName, text, app.Directory, _puller, origin, _cfg.Engine), variant: false, ct);

    /// <summary>Install, commit and cleanup through the engine; on failure the engine rolls back to the last-known-good. A
    /// <paramref name="variant"/> (a per-service restart) is rolled out over what runs and replaces the last-known-good.</summary>
    private async Task InstallAndCommitAsync(AgentApp app, ComposeSource source, bool variant, CancellationToken ct)
    {
        var version = source.Version;
        try
        {
            await _engine.InstallAsync(source, inPlace: variant, ct);
            await _engine.CommitAsync(app.Name, version, "commit", replacesCommitted: variant, ct);
        }
        catch (Exception e) when (e is InstallException or StoreException or IOException)
        {
            Log.Warning($"{app.Name}: the install of {version} failed ({e.Message}); rolling back to the last-known-good");
            try
            {
                await _engine.RollbackAsync(app.Name, version, "rollback", CancellationToken.None);
            }
            catch (Exception e2) when (e2 is InstallException or StoreException or IOException)
            {
                throw new InstallException("rollback", $"application {app.Name}", $"the install of {version} failed ({e.Message}) and the rollback ALSO FAILED: {e2.Message}");
            }
            finally
            {
                await CleanupAsync(app);
            }
            throw;
        }
        await CleanupAsync(app);
    }

    private async Task CleanupAsync(AgentApp app)
    {
        try { await _engine.CleanupAsync(app.Name, CancellationToken.None); }
        catch (Exception e) when (e is InstallException or StoreException or IOException) { Log.Warning($"{app.Name}: cleanup failed (old images stay): {e.Message}"); }
    }

    /// <summary>Writes the app's compose file and <c>.env</c> from its committed composition (the store keeps both for
    /// every version), keeping a file that differs as <c>&lt;file&gt;.fleet-backup</c>; a <c>.env</c> the stored version
    /// does not have is moved aside the same way.</summary>
    private void WriteBackFromStore(AgentApp app)
    {
        var state = _engine.Store.Load(app.Name);
        if (state.Committed is not { } id) return;
        var manifests = _engine.Store.ManifestsOf(app.Name, id);
        var stored = ComposeFile.Find(manifests);
        WriteBack(File.ReadAllText(stored), Path.Combine(app.Directory, Path.GetFileName(stored)));
        var env = Path.Combine(app.Directory, ComposeSource.EnvFile);
        if (File.Exists(Path.Combine(manifests, ComposeSource.EnvFile)))
        {
            WriteBack(File.ReadAllText(Path.Combine(manifests, ComposeSource.EnvFile)), env);
        }
        else if (File.Exists(env))
        {
            File.Move(env, env + BackupSuffix, overwrite: true);
        }
    }

    private static void WriteBack(string text, string target)
    {
        if (File.Exists(target) && File.ReadAllText(target) == text) return;
        if (File.Exists(target)) File.Copy(target, target + BackupSuffix, overwrite: true);
        ComposeFile.WriteAtomic(target, text);
    }

    /// <summary>Seed 002's restore: back to the store's last-known-good, directory included: STOP what runs, ROLLOUT the
    /// last-known-good, health gate (unless <paramref name="wait"/> is false); then its compose file and <c>.env</c> are
    /// written back into the directory, the files found there kept as backups. The store's versions do not change.</summary>
    private async Task<DockerCommandResponse> RestoreAsync(AgentApp app, bool wait, CancellationToken ct)
    {
        string version;
        try
        {
            if (_engine.Store.Load(app.Name).Committed is not { } id)
                return new DockerCommandResponse(false, $"nothing to restore: the store {_cfg.Engine.PersistentStore} has no version of {app.Name} yet (update_version or update puts the first one there)");
            version = _engine.Store.ReadComposition(app.Name, id).ArtifactName;
        }
        catch (StoreException e) { return new DockerCommandResponse(false, e.Message); }
        return await StepAsync(app, async () =>
        {
            await _engine.RestartAsync(app.Name, "restore", wait, FleetOrigin(app), ct);
            WriteBackFromStore(app);
        }, $"Restored {version}, the last-known-good, in {app.Directory}", ct);
    }

    /// <summary>
    /// Seed 002's restart of ONE service. The sub-module API rolls out whole compositions, so the agent installs, through
    /// the engine, a variant of the last-known-good: the same compose file, <c>.env</c> and images (nothing pulled), plus
    /// an override file (<see cref="ComposeFile.OverrideName"/>) that labels the service with this command's id; it is
    /// rolled out over the running composition (no STOP), so Compose recreates that service only, then health-gated and
    /// committed in the last-known-good's place (the rollback version stays). Earlier markers are kept, so no other
    /// service changes. When the restarted service fails (its ROLLOUT, the health gate, or the check before the commit),
    /// the last-known-good is rolled out over the variant the same way: the service is recreated as it was, the others
    /// keep running, and the store is as before. Refused when the app does not run its last-known-good (restart or
    /// restore the whole app).
    /// </summary>
    private async Task<DockerCommandResponse> RestartServiceAsync(AgentApp app, string service, CancellationToken ct) =>
        await StepAsync(app, async () =>
        {
            await AdoptAsync(app, ct);
            var state = _engine.Store.Load(app.Name);
            var id = state.Committed!;
            var stored = _engine.Store.ReadComposition(app.Name, id);
            if (state.Running != id)
                throw new InstallException("restart", $"service {service} of {app.Name}", $"the app does not run its last-known-good {stored.ArtifactName} ({(state.Running is null ? "nothing runs" : "it runs " + state.Running)}); restart or restore the whole app");
            var manifests = _engine.Store.ManifestsOf(app.Name, id);
            var main = ComposeFile.Find(manifests);
            var text = await File.ReadAllTextAsync(main, ct);
            var services = ComposeFile.Images(text, main).Select(i => i.Service).ToArray();
            if (!services.Contains(service))
                throw new ComposeFileException($"service '{service}' is not in {app.Name}'s compose file (services with images: {string.Join(", ", services)}); nothing was restarted");
            var files = Directory.EnumerateFiles(manifests).Where(f => f != main).ToDictionary(f => Path.GetFileName(f)!, f => File.ReadAllText(f), StringComparer.Ordinal);
            var overrideName = ComposeFile.OverrideName(Path.GetFileName(main));
            var markers = files.TryGetValue(overrideName, out var previous) ? ComposeFile.RestartMarkers(previous) : new Dictionary<string, string>(StringComparer.Ordinal);
            markers[service] = _command.Value?.Id ?? Guid.NewGuid().ToString("N")[..16];
            files[overrideName] = ComposeFile.RestartOverride(markers);
            var source = new ComposeSource(app.Name, stored.ArtifactName, Path.GetFileName(main), text, app.Directory, _puller, FleetOrigin(app), _cfg.Engine, pinned: stored.Images, files: files);
            try
            {
                await InstallAndCommitAsync(app, source, variant: true, ct);
            }
            catch (InstallException e) when (e.Step != "rollback")
            {
                throw new InstallException("restart", $"service {service} of {app.Name}",
                    $"{e.Message}; rolled back: {app.Name} runs its last-known-good {stored.ArtifactName} as before the restart (the other services were not touched)");
            }
        }, $"Restarted service {service} in {app.Directory}", ct);

    /// <summary>Seed 002's "update": re-pulls the app's images and recreates it from its current compose file, health-gated.</summary>
    private async Task<DockerCommandResponse> UpdateAsync(AgentApp app, Origin origin, CancellationToken ct)
    {
        try
        {
            await AdoptAsync(app, ct);
            var file = ComposeFile.Find(app.Directory);
            var text = await File.ReadAllTextAsync(file, ct);
            var version = ComposeFile.FindImage(text, app.Service, file).Tag;
            await InstallAndCommitAsync(app, version, Path.GetFileName(file), text, origin, ct);
            await PublishVersionAsync(app, ct);
            return new DockerCommandResponse(true, $"Updated all services in {app.Directory}");
        }
        catch (Exception e) when (e is InstallException or StoreException or ComposeFileException or IOException)
        {
            await PublishVersionAsync(app, CancellationToken.None);
            return new DockerCommandResponse(false, e.Message);
        }
    }

    /// <summary>Installs the compose file with the new tag (only the tag changes, formatting kept) through the engine,
    /// commits it and cleans up; on failure the engine rolls back to the last-known-good and the file is untouched.
    /// With a <paramref name="digest"/> (the manifest the updater checked for this device's platform) the image is
    /// written <c>repo:tag@digest</c>: the engine pulls and runs exactly that, and the pull must record it.
    /// Publishes the resulting version either way.</summary>
    private async Task<DockerCommandResponse> UpdateVersionAsync(AgentApp app, string? newVersion, string? digest, Origin origin, CancellationToken ct)
    {
        if (newVersion is null || !ComposeFile.IsValidTag(newVersion))
            return new DockerCommandResponse(false, $"new_version '{newVersion}' is not a valid image tag (letters, digits, _ . -; at most 128)");
        if (digest is not null && !ComposeFile.IsValidDigest(digest))
            return new DockerCommandResponse(false, $"digest '{digest}' of {newVersion} is not a manifest digest (sha256: and 64 lower-case hex digits); nothing changed");
        string file, before;
        ComposeImage img;
        try
        {
            file = ComposeFile.Find(app.Directory);
            before = await File.ReadAllTextAsync(file, ct);
            img = ComposeFile.FindImage(before, app.Service, file);
        }
        catch (ComposeFileException e) { return new DockerCommandResponse(false, e.Message); }
        if (img.Tag == newVersion && _engine.Store.Load(app.Name).Committed is not null)
        {
            await PublishVersionAsync(app, ct);
            return new DockerCommandResponse(true, $"Already at version {newVersion}");
        }
        var after = ComposeFile.WithTag(before, img, newVersion, digest);
        try
        {
            await AdoptAsync(app, ct);
        }
        catch (Exception e) when (e is InstallException or StoreException or IOException)
        {
            return new DockerCommandResponse(false, $"update to {newVersion} refused: the running version {img.Tag} could not be taken into the store first: {e.Message}");
        }
        try
        {
            await InstallAndCommitAsync(app, newVersion, Path.GetFileName(file), after, origin, ct);
        }
        catch (InstallException e)
        {
            await PublishVersionAsync(app, CancellationToken.None);
            if (e.Step == "pull")
                return new DockerCommandResponse(false, $"pull of {e.Subject} failed, nothing changed: {e.Message}");
            if (e.Step == "pre-check")
                return new DockerCommandResponse(false, $"update to {newVersion} refused by the pre-check, nothing changed: {e.Message}");
            var rollback = e.Step == "rollback" ? "" : $"; rolled back to {CurrentVersion(app)}";
            return new DockerCommandResponse(false, $"update to {newVersion} failed: {e.Message}{rollback}");
        }
        catch (Exception e) when (e is StoreException or IOException)
        {
            await PublishVersionAsync(app, CancellationToken.None);
            return new DockerCommandResponse(false, $"update to {newVersion} failed: {e.Message}");
        }
        WriteBackFromStore(app);
        await PublishVersionAsync(app, ct);
        return new DockerCommandResponse(true, $"Successfully updated to version {newVersion}");
    }
}
