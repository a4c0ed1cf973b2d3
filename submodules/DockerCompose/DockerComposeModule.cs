using AppModule.Core.Images;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using DockerApi;
using SubModule.Hosting;

namespace DockerCompose;

/// <summary>The docker-compose orchestrator sub-module: engine operations over the API, compositions over the Compose CLI.</summary>
public sealed class DockerComposeModule(Settings settings, IEngine engine, SubModuleContext context) : ISubModule, IDisposable
{
    // Per Compose project under state_dir: the snapshot "manifests" (the last rolled-out manifests directory,
    // for EXPORT_MANIFEST, STOP/START without a directory, PURGE) and the record "services" (ServiceDefinition.ToRecord).
    private const string ManifestsSnapshot = "manifests";
    private const string ServicesRecord = "services";
    private const string StartedRecord = "started";
    private readonly ManifestStore _state = new(settings.StateDir);
    private ComposeCli? _compose;

    private ReadinessOptions Readiness => new(settings.RolloutTimeout, settings.Soak, settings.LogTailLines, $"rollout_timeout in {settings.Source}");

    private async Task<ComposeCli> ComposeAsync(CancellationToken ct, bool exactVersion = false) =>
        _compose ??= await ComposeCli.DiscoverAsync(settings, exactVersion, ct).ConfigureAwait(false);

    // ------------------------------------------------------------------ images

    public async Task LoadAsync(SubModuleCall.Load call, CancellationToken ct)
    {
        var url = ImageUrl.Parse(call.UrlNew);
        if (context.Options.Contains(SubModuleContext.DeepDeltaOption))
        {
            await DeepDeltaLoad.LoadAsync(engine, this, call, url, context.ScratchDirectory, ct).ConfigureAwait(false);
        }
        else
        {
            await using var file = OpenForLoad(call.File);
            await LoadStreamAsync(file, call.File, url, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Streams an image archive into the engine and checks that <paramref name="url"/> names the loaded image (and its digest, when given).</summary>
    internal async Task LoadStreamAsync(Stream archive, string source, ImageUrl url, CancellationToken ct)
    {
        IReadOnlyList<string> loaded;
        try
        {
            loaded = await engine.LoadImageAsync(archive, ct).ConfigureAwait(false);
        }
        catch (EngineException e)
        {
            throw new SubModuleFailure($"cannot load {source} as an image for {url}: {e.Message}");
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in loaded)
        {
            var info = await engine.InspectImageAsync(item, ct).ConfigureAwait(false);
            if (info is not null)
            {
                ids.Add(info.Id);
            }
        }

        if (ids.Count == 0)
        {
            throw new SubModuleFailure($"the engine loaded no image from {source} (expected {url}); is it a `docker save` archive?");
        }

        var current = await engine.InspectImageAsync(url.Reference, ct).ConfigureAwait(false);
        if (current is null || !ids.Contains(current.Id))
        {
            if (ids.Count != 1 || url.IsId)
            {
                throw new SubModuleFailure($"{source} does not hold {url.Reference}; it holds {string.Join(", ", loaded)}");
            }

            var (repo, tag) = url.RepositoryAndTag();
            await engine.TagImageAsync(ids.First(), repo, tag, ct).ConfigureAwait(false);
            Log.Info($"tagged the loaded image {Short(ids.First())} as {url.Reference}");
            current = await engine.InspectImageAsync(url.Reference, ct).ConfigureAwait(false)
                      ?? throw new SubModuleFailure($"tagging the loaded image as {url.Reference} did not take effect");
        }

        if (url.Digest is not null && !url.Matches(current.Id, current.RepoDigests))
        {
            if (!url.IsId)
            {
                await engine.RemoveImageAsync(url.Reference, force: false, ct).ConfigureAwait(false);
            }

            throw new SubModuleFailure(
                $"{source} loaded image {current.Id} for {url.Reference}, but the url demands {url.Digest}; the reference was removed so that nothing runs unverified content. Rebuild the artifact or fix the url");
        }

        Log.Info($"loaded {url.Reference} ({Short(current.Id)}) from {source}");
    }

    private static FileStream OpenForLoad(string path)
    {
        try
        {
            // Forward-only, read once: the file may be a FIFO fed by the caller.
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan | FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot read image file {path}: {e.Message}");
        }
    }

    public async Task SaveAsync(SubModuleCall.Save call, CancellationToken ct)
    {
        var url = ImageUrl.Parse(call.Url);
        var image = await engine.InspectImageAsync(url.Reference, ct).ConfigureAwait(false)
                    ?? throw new SubModuleFailure($"image {url.Reference} is not in the engine; nothing to save (LOAD or pull it first)");
        if (url.Digest is not null && !url.Matches(image.Id, image.RepoDigests))
        {
            throw new SubModuleFailure($"image {url.Reference} is {image.Id}, not {url.Digest} as the url demands");
        }

        var output = call.OutputFile;
        try
        {
            if (File.Exists(output))
            {
                // A FIFO or device (not seekable) is written as it is; a regular file is replaced atomically.
                var existing = new FileStream(output, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16, FileOptions.Asynchronous);
                await using (existing.ConfigureAwait(false))
                {
                    if (!existing.CanSeek)
                    {
                        await engine.SaveImageAsync(url.Reference, existing, ct).ConfigureAwait(false);
                        Log.Info($"saved {url.Reference} ({Short(image.Id)}) to {output}");
                        return;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot write {output}: {e.Message}");
        }

        var target = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, $".{Path.GetFileName(output)}.partial");
        try
        {
            var file = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await using (file.ConfigureAwait(false))
            {
                await engine.SaveImageAsync(url.Reference, file, ct).ConfigureAwait(false);
            }

            File.Move(target, output, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(target);
            throw new SubModuleFailure($"cannot write {output}: {e.Message}");
        }
        catch
        {
            TryDelete(target);
            throw;
        }

        Log.Info($"saved {url.Reference} ({Short(image.Id)}) to {output}");
    }

    public async Task DeleteAsync(SubModuleCall.Delete call, CancellationToken ct)
    {
        var url = ImageUrl.Parse(call.Url);
        var image = await engine.InspectImageAsync(url.Reference, ct).ConfigureAwait(false);
        if (image is null)
        {
            Log.Warning($"image {url.Reference} is not in the engine; nothing to delete");
            return;
        }

        if (url.Digest is not null && !url.Matches(image.Id, image.RepoDigests))
        {
            throw new SubModuleFailure($"image {url.Reference} is {image.Id}, not {url.Digest} as the url says; not deleting it");
        }

        // Untagging one of several references never affects a container; removing the last one
        // (or the image by ID) would. Refuse then, naming the users.
        var users = (await engine.ListContainersAsync(null, ct).ConfigureAwait(false))
            .Where(c => c.ImageId == image.Id && (url.IsId || image.RepoTags.Count <= 1 || SameReference(c.Image, url.Reference)))
            .ToList();
        if (users.Count > 0)
        {
            var who = string.Join(", ", users.Select(c => c.Project is null ? c.Name : $"{c.Name} (application {c.Project}, service {c.Service})"));
            throw new SubModuleFailure($"image {url.Reference} ({Short(image.Id)}) is in use by container(s) {who}; stop or purge the application first");
        }

        var removed = await engine.RemoveImageAsync(url.IsId ? image.Id : url.Reference, force: url.IsId && image.RepoTags.Count > 1, ct).ConfigureAwait(false);
        Log.Info(removed ? $"deleted {url.Reference}" : $"image {url.Reference} was already gone");
    }

    // ------------------------------------------------------------------ compositions

    public async Task RolloutAsync(SubModuleCall.Rollout call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        var compose = await ComposeAsync(ct).ConfigureAwait(false);
        var services = await compose.ServicesAsync(project, call.ManifestsDirectory, ct).ConfigureAwait(false);
        CheckPolicy(services, call.ManifestsDirectory);
        await PinImagesAsync(ct).ConfigureAwait(false);
        await RequireImagesAsync(services, call.ManifestsDirectory, ct).ConfigureAwait(false);
        Log.Info($"rolling out {call.Application} from {call.ManifestsDirectory} with {compose.Display} {compose.Version}");
        await compose.UpAsync(project, call.ManifestsDirectory, noRecreate: false, ct).ConfigureAwait(false);
        SaveState(project, call.ManifestsDirectory, services);
        SaveStarted(project, await WaitReadyAsync(project, services, ct).ConfigureAwait(false));
        Log.Info($"{call.Application} is up: {string.Join(", ", services.Select(s => s.Name))}");
    }

    /// <summary>
    /// The device's host-access policy (<c>allow_host_access</c>), checked before anything starts: at REQS
    /// (before the running version stops) and again at ROLLOUT and START.
    /// </summary>
    private void CheckPolicy(IReadOnlyList<ServiceDefinition> services, string directory)
    {
        var policy = settings.HostAccess;
        foreach (var s in services)
        {
            var subject = $"service {s.Name} in {directory}";
            foreach (var source in s.BindSources)
            {
                if (HostAccessPolicy.ClassifyHostPath(source) is { } kind
                    && policy.Refusal(subject, kind, kind == HostAccessPolicy.RootMount ? $"mounts the host's root directory ({source})" : $"mounts the engine socket or its directory {source}, which gives control of the host") is { } refusal)
                {
                    throw new SubModuleFailure(refusal);
                }
            }

            var refused = (s.Privileged ? policy.Refusal(subject, HostAccessPolicy.Privileged, "is privileged (privileged: true)") : null)
                ?? (string.Equals(s.Pid, "host", StringComparison.OrdinalIgnoreCase) ? policy.Refusal(subject, HostAccessPolicy.HostPid, "shares the host's PID namespace (pid: host)") : null)
                ?? (string.Equals(s.NetworkMode, "host", StringComparison.OrdinalIgnoreCase) ? policy.Refusal(subject, HostAccessPolicy.HostNetwork, "shares the host's network namespace (network_mode: host)") : null);
            if (refused is not null)
            {
                throw new SubModuleFailure(refused);
            }
        }
    }

    /// <summary>
    /// Points every reference of the composition being started back at the image it was installed
    /// with, from <c>MENDER_APP_IMAGES</c> ("&lt;image id&gt; &lt;url&gt;" per line, set by `app`): when two
    /// versions use one reference (myapp:latest), loading the newer moved it, and a rollback must not
    /// start the newer image under the older composition. Without the variable nothing changes.
    /// </summary>
    private async Task PinImagesAsync(CancellationToken ct)
    {
        foreach (var (id, url) in AppImages())
        {
            if (url.IsId)
            {
                continue;
            }

            var current = await engine.InspectImageAsync(url.Reference, ct).ConfigureAwait(false);
            if (current is not null && string.Equals(current.Id, id.Reference, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var wanted = await engine.InspectImageAsync(id.Reference, ct).ConfigureAwait(false);
            if (wanted is null)
            {
                if (current is null)
                {
                    continue; // RequireImagesAsync names what is missing
                }

                throw new SubModuleFailure(
                    $"image {url.Reference} of this version is {Short(id.Reference)}, but {url.Reference} now names {Short(current.Id)} and {Short(id.Reference)} is no longer in the engine: " +
                    "a later artifact reused the reference. Install this version's artifact again; give each version its own tag to keep rollbacks possible");
            }

            var (repo, tag) = url.RepositoryAndTag();
            await engine.TagImageAsync(wanted.Id, repo, tag, ct).ConfigureAwait(false);
            Log.Info(current is null
                ? $"tagged {Short(wanted.Id)} as {url.Reference} again (this version's image)"
                : $"pointed {url.Reference} back at {Short(wanted.Id)}, this version's image (it named {Short(current.Id)}, another version's)");
        }
    }

    /// <summary>The (image ID, url) pairs of MENDER_APP_IMAGES ("&lt;image id&gt; &lt;url&gt;" per line, set by `app`); empty without it.</summary>
    private List<(ImageUrl Id, ImageUrl Url)> AppImages()
    {
        try
        {
            return context.Images.Select(p => (ImageUrl.Parse(p.ImageId), ImageUrl.Parse(p.Url))).ToList();
        }
        catch (FormatException e)
        {
            throw new SubModuleFailure(e.Message);
        }
    }

    /// <summary>
    /// Every service names an image that is in the engine, or (REQS before LOAD) among
    /// <paramref name="carried"/>, the normalized references the artifact brings.
    /// </summary>
    private async Task RequireImagesAsync(IReadOnlyList<ServiceDefinition> services, string directory, CancellationToken ct, IReadOnlySet<string>? carried = null)
    {
        foreach (var s in services)
        {
            if (s.Image is null)
            {
                throw new SubModuleFailure($"service {s.Name} in {directory} has no image; building on the device is not supported, name a loaded image");
            }

            var reference = ImageUrl.Parse(s.Image).Reference;
            if (carried?.Contains(ImageUrl.Normalize(reference)) != true && await engine.InspectImageAsync(reference, ct).ConfigureAwait(false) is null)
            {
                throw new SubModuleFailure(carried is null
                    ? $"image {s.Image} of service {s.Name} is not in the engine; ROLLOUT never pulls: LOAD it first (is it in the artifact?)"
                    : $"image {s.Image} of service {s.Name} is neither in the artifact nor in the engine; ROLLOUT never pulls: add it to the artifact");
            }
        }
    }

    public async Task StopAsync(SubModuleCall.Stop call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        var dir = call.ManifestsDirectory is { } d && Directory.Exists(d) ? d : _state.HasSnapshot(project, ManifestsSnapshot) ? _state.Snapshot(project, ManifestsSnapshot) : null;
        if (dir is null)
        {
            Log.Warning($"no manifests for {call.Application} (none given, none kept in {_state.AppDirectory(project)}); removing its containers and networks by label");
            await RemoveContainersAsync(project, ct).ConfigureAwait(false);
            return;
        }

        var compose = await ComposeAsync(ct).ConfigureAwait(false);
        await compose.DownAsync(project, dir, ct).ConfigureAwait(false);
        Log.Info($"stopped {call.Application} (volumes kept)");
    }

    public async Task StartAsync(SubModuleCall.Start call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        var dir = call.ManifestsDirectory is { } d ? d : _state.HasSnapshot(project, ManifestsSnapshot) ? _state.Snapshot(project, ManifestsSnapshot)
            : throw new SubModuleFailure($"no manifests for {call.Application}: none given and none kept in {_state.AppDirectory(project)}; ROLLOUT it first");
        var compose = await ComposeAsync(ct).ConfigureAwait(false);
        var services = await compose.ServicesAsync(project, dir, ct).ConfigureAwait(false);
        CheckPolicy(services, dir);
        await PinImagesAsync(ct).ConfigureAwait(false);
        await RequireImagesAsync(services, dir, ct).ConfigureAwait(false);
        await compose.UpAsync(project, dir, noRecreate: true, ct).ConfigureAwait(false);
        if (call.ManifestsDirectory is not null)
        {
            SaveState(project, dir, services);
        }

        SaveStarted(project, await WaitReadyAsync(project, services, ct).ConfigureAwait(false));
        Log.Info($"started {call.Application}");
    }

    public async Task RollbackAsync(SubModuleCall.Rollback call, CancellationToken ct)
    {
        await StopAsync(new SubModuleCall.Stop(call.Application, call.FailedDirectory), ct).ConfigureAwait(false);
        await RolloutAsync(new SubModuleCall.Rollout(call.Application, call.RollbackDirectory), ct).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ queries

    public async Task AliveAsync(SubModuleCall.Alive call, CancellationToken ct)
    {
        var (project, containers, expected) = await ObserveAsync(call.Application, ct).ConfigureAwait(false);
        foreach (var s in expected)
        {
            var mine = containers.Where(c => c.Service == s.Name).ToList();
            if (mine.Count < s.Replicas)
            {
                throw new SubModuleFailure($"{call.Application} is not alive: service {s.Name} has {mine.Count} of {s.Replicas} container(s)");
            }

            if (mine.FirstOrDefault(c => c.Status != "running") is { } down)
            {
                throw new SubModuleFailure($"{call.Application} is not alive: service {s.Name} container {down.Name} is {down.Status}");
            }
        }

        Log.Info($"{call.Application} ({project}) is alive");
    }

    public async Task HealthyAsync(SubModuleCall.Healthy call, CancellationToken ct)
    {
        var (project, containers, expected) = await ObserveAsync(call.Application, ct).ConfigureAwait(false);
        var started = Started(project);
        foreach (var s in expected)
        {
            var mine = containers.Where(c => c.Service == s.Name).ToList();
            if (mine.Count < s.Replicas)
            {
                throw new SubModuleFailure($"{call.Application} is not healthy: service {s.Name} has {mine.Count} of {s.Replicas} container(s)");
            }

            foreach (var c in mine)
            {
                // A restart is named first: a container caught between two runs of its restart policy is
                // "restarting" (the engine counts the restart as it enters that state), and its restart count
                // says more than the state does.
                if (ContainerReadiness.Restarted(c, started) is { } restarted)
                {
                    throw new SubModuleFailure($"{call.Application} is not healthy: service {s.Name} container {c.Name} {restarted}");
                }

                if (c.Status != "running" || c.Health is "unhealthy" or "starting")
                {
                    throw new SubModuleFailure($"{call.Application} is not healthy: service {s.Name} container {c.Name} is {c.Status}{(c.Health is null ? string.Empty : ", " + c.Health)}");
                }
            }
        }

        Log.Info($"{call.Application} ({project}) is healthy");
    }

    /// <summary>Waits until every service is ready; returns the containers then (the baseline HEALTHY holds them to).</summary>
    private Task<IReadOnlyList<ContainerInfo>> WaitReadyAsync(string project, IReadOnlyList<ServiceDefinition> services, CancellationToken ct) =>
        new ContainerReadiness(engine, Readiness).WaitAsync(project, services.Select(s => new ExpectedService(s.Name, s.Replicas)).ToList(), ct);

    /// <summary>Records the containers as a ROLLOUT or START left them running (record <c>started</c>: "id restart-count started-at" lines, HEALTHY's baseline).</summary>
    private void SaveStarted(string project, IReadOnlyList<ContainerInfo> containers) =>
        _state.WriteRecord(project, StartedRecord, containers.Select(c =>
            $"{c.Id} {c.RestartCount.ToString(System.Globalization.CultureInfo.InvariantCulture)} {c.StartedAt?.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture) ?? "-"}"));

    /// <summary>The containers as the last ROLLOUT/START left them, by ID; empty when none was recorded.</summary>
    private Dictionary<string, ContainerStart> Started(string project)
    {
        var result = new Dictionary<string, ContainerStart>(StringComparer.Ordinal);
        foreach (var p in (_state.ReadRecord(project, StartedRecord) ?? []).Select(l => l.Split(' ')).Where(p => p.Length == 3))
        {
            var started = DateTimeOffset.TryParse(p[2], System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var t) ? t : (DateTimeOffset?)null;
            result[p[0]] = new ContainerStart(p[0], long.TryParse(p[1], System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0, started);
        }

        return result;
    }

    /// <summary>Keeps a copy of <paramref name="source"/> (unless it is the kept copy) and the resolved services as the project's current state.</summary>
    private void SaveState(string project, string source, IReadOnlyList<ServiceDefinition> services)
    {
        if (!SamePath(source, _state.Snapshot(project, ManifestsSnapshot)))
        {
            _state.Keep(project, ManifestsSnapshot, source);
        }

        _state.WriteRecord(project, ServicesRecord, services.Select(s => s.ToRecord()));
    }

    /// <summary>The services recorded at the last ROLLOUT, or null when the project is unknown.</summary>
    private IReadOnlyList<ServiceDefinition>? Services(string project) =>
        _state.ReadRecord(project, ServicesRecord)?.Select(ServiceDefinition.FromRecord).OfType<ServiceDefinition>().ToArray();

    /// <summary>Image references (normalised) that other applications known here name in their manifests.</summary>
    private HashSet<string> ImagesOfOtherApps(string project)
    {
        var images = new HashSet<string>(StringComparer.Ordinal);
        foreach (var other in _state.Applications().Where(a => a != project))
        {
            foreach (var s in Services(other) ?? [])
            {
                if (s.Image is not null)
                {
                    images.Add(ImageUrl.Normalize(ImageUrl.Parse(s.Image).Reference));
                }
            }
        }

        return images;
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd('/'), Path.GetFullPath(b).TrimEnd('/'), StringComparison.Ordinal);

    /// <summary>The project's containers and the services it should have (recorded at ROLLOUT, else those seen).</summary>
    private async Task<(string Project, IReadOnlyList<ContainerInfo> Containers, IReadOnlyList<ServiceDefinition> Expected)> ObserveAsync(string application, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(application);
        var containers = await engine.ListContainersAsync(project, ct).ConfigureAwait(false);
        var expected = Services(project)?.Where(s => s.Replicas > 0).ToList()
                       ?? containers.Where(c => c.Service is not null).Select(c => c.Service!).Distinct().Select(n => new ServiceDefinition(n, null, 1)).ToList();
        if (expected.Count == 0)
        {
            throw new SubModuleFailure($"application {application} has no containers (Compose project {project})");
        }

        return (project, containers, expected);
    }

    public async Task<IReadOnlyList<Component>> ListComponentsAsync(SubModuleCall.LsComponents call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        var containers = await engine.ListContainersAsync(project, ct).ConfigureAwait(false);
        var byImage = new SortedDictionary<string, (string? Id, SortedSet<string> Services)>(StringComparer.Ordinal);
        foreach (var c in containers.Where(c => c.Service is not null))
        {
            if (!byImage.TryGetValue(c.Image, out var entry))
            {
                entry = (c.ImageId, new SortedSet<string>(StringComparer.Ordinal));
                byImage[c.Image] = entry;
            }

            entry.Services.Add(c.Service!);
        }

        foreach (var s in Services(project) ?? [])
        {
            if (s.Image is null)
            {
                continue;
            }

            if (!byImage.TryGetValue(s.Image, out var entry))
            {
                var info = await engine.InspectImageAsync(ImageUrl.Parse(s.Image).Reference, ct).ConfigureAwait(false);
                entry = (info?.Id, new SortedSet<string>(StringComparer.Ordinal));
                byImage[s.Image] = entry;
            }

            entry.Services.Add(s.Name);
        }

        return byImage.Select(p =>
        {
            var extra = new Dictionary<string, string> { ["services"] = string.Join(',', p.Value.Services) };
            if (p.Value.Id is not null)
            {
                extra["image_id"] = p.Value.Id;
            }

            return new Component("image", p.Key, extra);
        }).ToList();
    }

    public Task ExportManifestAsync(SubModuleCall.ExportManifest call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        if (!_state.HasSnapshot(project, ManifestsSnapshot))
        {
            throw new SubModuleFailure($"no manifests kept for {call.Application} in {_state.AppDirectory(project)}: it was not rolled out by this sub-module (or was purged)");
        }

        try
        {
            ManifestStore.CopyFiles(_state.Snapshot(project, ManifestsSnapshot), call.OutputDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot write the manifests of {call.Application} to {call.OutputDirectory}: {e.Message}");
        }

        Log.Info($"exported the manifests of {call.Application} to {call.OutputDirectory}");
        return Task.CompletedTask;
    }

    public async Task PurgeAsync(SubModuleCall.Purge call, CancellationToken ct)
    {
        var project = ComposeCli.ProjectName(call.Application);
        var containers = await engine.ListContainersAsync(project, ct).ConfigureAwait(false);
        var images = new SortedSet<string>(containers.Select(c => c.Image), StringComparer.Ordinal);
        foreach (var s in Services(project) ?? [])
        {
            if (s.Image is not null)
            {
                images.Add(s.Image);
            }
        }

        await RemoveContainersAsync(project, ct).ConfigureAwait(false);
        if (settings.PurgeVolumes)
        {
            foreach (var v in await engine.ProjectVolumesAsync(project, ct).ConfigureAwait(false))
            {
                await engine.RemoveVolumeAsync(v, ct).ConfigureAwait(false);
                Log.Info($"removed volume {v}");
            }
        }
        else if ((await engine.ProjectVolumesAsync(project, ct).ConfigureAwait(false)) is { Count: > 0 } kept)
        {
            Log.Info($"kept volume(s) {string.Join(", ", kept)} (set purge_volumes = true in {settings.Source} to remove them)");
        }

        var others = await engine.ListContainersAsync(null, ct).ConfigureAwait(false);
        var sharedWith = ImagesOfOtherApps(project);
        foreach (var image in images)
        {
            var reference = ImageUrl.Parse(image).Reference;
            if (others.FirstOrDefault(c => SameReference(c.Image, reference)) is { } user)
            {
                Log.Warning($"kept image {reference}: container {user.Name} of another application uses it");
                continue;
            }

            if (sharedWith.Contains(ImageUrl.Normalize(reference)))
            {
                Log.Warning($"kept image {reference}: another application's manifests (in {settings.StateDir}) name it");
                continue;
            }

            try
            {
                if (await engine.RemoveImageAsync(reference, force: false, ct).ConfigureAwait(false))
                {
                    Log.Info($"removed image {reference}");
                }
            }
            catch (EngineConflictException e)
            {
                Log.Warning($"kept image {reference}: {e.Message}");
            }
        }

        _state.Forget(project);
        Log.Info($"purged {call.Application}");
    }

    private async Task RemoveContainersAsync(string project, CancellationToken ct)
    {
        foreach (var c in await engine.ListContainersAsync(project, ct).ConfigureAwait(false))
        {
            await engine.RemoveContainerAsync(c.Id, ct).ConfigureAwait(false);
            Log.Info($"removed container {c.Name}");
        }

        foreach (var n in await engine.RemoveProjectNetworksAsync(project, ct).ConfigureAwait(false))
        {
            Log.Info($"removed network {n}");
        }
    }

    // ------------------------------------------------------------------ requirements

    /// <summary>
    /// STORAGE: the engine's data root (asked of the engine), the space free there as this process sees
    /// it, and the chain IDs of every layer of every image. <c>docker load</c> unpacks the whole archive
    /// under the data root (its tmp/) before it stores the layers it lacks, once each.
    /// </summary>
    public async Task<EngineStorage> StorageAsync(CancellationToken ct)
    {
        var version = await engine.VersionAsync(ct).ConfigureAwait(false);
        var root = await engine.DataRootAsync(ct).ConfigureAwait(false);
        var images = await engine.ImageLayersAsync(ct).ConfigureAwait(false);
        var layers = images.SelectMany(i => ImageLayers.ChainIds(i.DiffIds)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        return new EngineStorage($"docker {version.Version}", root, FreeSpace.Of(root), layers, images.Select(i => i.Id).Order(StringComparer.Ordinal).ToArray(), StagesArchive: true, CopiesPerLayer: 1);
    }

    public async Task<IReadOnlyList<Requirement>> RequirementsAsync(CancellationToken ct)
    {
        var reqs = new List<Requirement>();
        try
        {
            var v = await engine.VersionAsync(ct).ConfigureAwait(false);
            reqs.Add(new Requirement("docker-engine", true, "error", $"{settings.DockerHost} {v}"));

            // The artifact's platform (set by `app` from its meta-data) must be one this engine runs.
            if (context.Platform is { } platform)
            {
                reqs.Add(Requirement.PlatformOnEngine(platform, v.Os, v.Architecture, settings.DockerHost));
            }
        }
        catch (EngineException e)
        {
            reqs.Add(new Requirement("docker-engine", false, "error", e.Message));
        }

        ComposeCli? found = null;
        try
        {
            found = await ComposeAsync(ct, exactVersion: true).ConfigureAwait(false);
            reqs.Add(new Requirement("compose", true, "error", $"{found.Display} {found.Version}"));
            reqs.Add(new Requirement("compose-v2", found.IsV2, "warning", found.IsV2 ? string.Empty : "Compose v1 is end-of-life; install the Compose v2 plugin"));
        }
        catch (SubModuleFailure e)
        {
            reqs.Add(new Requirement("compose", false, "error", e.Message));
        }

        // With MENDER_APP_MANIFESTS_DIR (set by `app` for the version it is about to install): the
        // manifests must be a valid composition that the device's policy allows, whose images are in
        // the artifact (MENDER_APP_IMAGES) or already in the engine: checked before anything stops.
        if (found is not null && context.PreCheckManifests is { } manifests)
        {
            try
            {
                var (services, volumes) = await found.CompositionAsync("mender-app-reqs", manifests, ct).ConfigureAwait(false);
                reqs.AddRange(Requirement.Describing(new ManifestContents(services.Select(x => x.Name).ToArray(), volumes)));
                CheckPolicy(services, manifests);
                var carried = AppImages().Select(p => ImageUrl.Normalize(p.Url.Reference)).ToHashSet(StringComparer.Ordinal);
                await RequireImagesAsync(services, manifests, ct, carried).ConfigureAwait(false);
                reqs.Add(new Requirement("manifests", true, "error", $"{services.Count} service(s): {string.Join(", ", services.Select(x => x.Name))}"));
            }
            catch (SubModuleFailure e)
            {
                reqs.Add(new Requirement("manifests", false, "error", e.Message));
            }
        }

        var writable = false;
        try
        {
            Directory.CreateDirectory(settings.StateDir);
            var probe = Path.Combine(settings.StateDir, $".probe-{Environment.ProcessId}");
            await File.WriteAllTextAsync(probe, string.Empty, ct).ConfigureAwait(false);
            File.Delete(probe);
            writable = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        reqs.Add(new Requirement("state-dir", writable, "error", writable ? settings.StateDir : $"{settings.StateDir} is not writable (state_dir in {settings.Source})"));
        return reqs;
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>"web:1.0" and "docker.io/library/web:1.0" are the same reference to the engine.</summary>
    private static bool SameReference(string a, string b) => AppModule.Core.Images.ImageReference.SameImage(a, b);

    private static string Short(string id) => id.StartsWith("sha256:", StringComparison.Ordinal) && id.Length > 19 ? id[..19] : id;

    private static void TryDelete(string? path)
    {
        if (path is null)
        {
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The module owns the engine client it was built with.</summary>
    public void Dispose() => engine.Dispose();
}
