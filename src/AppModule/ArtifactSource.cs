using AppModule.Artifacts;
using AppModule.Core;
using AppModule.Core.Images;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Engine;
using AppModule.Runtime;

namespace AppModule;

/// <summary>
/// An app artifact (the File API tree the Mender client hands over) as an install input of the
/// <see cref="InstallEngine"/>: its pre-checks (every claim of the artifact against its payload,
/// <see cref="ArtifactClaims"/>; delta bases present and right; disk space), and LOAD of its images, streamed from the payload through a FIFO into the sub-module.
/// </summary>
/// <param name="config">the engine-disk check's settings (engine_disk_check, engine_disk_margin_mib)</param>
public sealed class ArtifactSource(ArtifactTree tree, AppMetadata meta, AppConfig config) : IInstallSource
{
    /// <summary>Free space the install's temporary files need in tmp/ besides delta rebuilds (checked there).</summary>
    public const long TmpFloorBytes = 16L << 20;

    private IReadOnlyList<ImageEntry> _images = [];
    private IReadOnlyDictionary<string, SavedImage?> _carried = new Dictionary<string, SavedImage?>();
    private readonly Dictionary<string, PreparedDelta> _prepared = new(StringComparer.Ordinal); // image dir -> delta ready to decode into LOAD

    public string Application => meta.ApplicationName;

    public string Version => tree.ArtifactName;

    public string Orchestrator => meta.Orchestrator;

    public string Platform => meta.Platform;

    public IReadOnlyDictionary<string, string> Env { get; } = meta.Env ?? new Dictionary<string, string>();

    public Origin Origin => Origin.Mender;

    public HealthOverrides? Health => meta.HealthTimeoutSeconds is null && meta.SoakSeconds is null ? null : new(meta.HealthTimeoutSeconds, meta.SoakSeconds);

    public string WorkDir => tree.TmpDir;

    private string ImagesPath => tree.ImagesArchive();

    public void Begin()
    {
        tree.RequireFiles();
        tree.EnsureTmp();
    }

    public async Task<IReadOnlyList<ImageRef>> CheckAsync(CancellationToken ct)
    {
        var imagesPath = ImagesPath;
        _ = tree.ManifestsArchive(); // both payload files must be there before anything else is read
        var (images, carriedIds) = await ImagesArchive.ScanAsync(imagesPath, ct).ConfigureAwait(false);
        _images = images; // known to the plan even when a claim below fails (app plan reports it)
        _carried = carriedIds;

        // Every claim of the artifact (meta-data's image list and platform, sums-new.txt) against what the payload carries.
        ArtifactClaims.Check(meta, images, carriedIds, imagesPath);
        return images.Select(i => new ImageRef(i.UrlNew, i.SumsNew)).ToArray();
    }

    public void ExtractManifests(string directory, CancellationToken ct) => ImagesArchive.ExtractManifests(tree.ManifestsArchive(), directory, ct);

    public async Task PrepareAsync(InstallStep step, CancellationToken ct)
    {
        foreach (var image in _images.Where(i => i.Kind != ImageKind.Full))
        {
            _prepared[image.Id] = await PrepareDeltaAsync(step, image, ct).ConfigureAwait(false);
        }

        // The disk checks of the plan `app plan` prints: tmp/, and the engine's data root for the layers it does not have.
        var plan = await PlanAsync(step, null, [], null, [], ct).ConfigureAwait(false);
        plan.ThrowIfRefused("tmp-disk", "engine-disk");
        var fullBytes = _images.Where(i => i.Kind == ImageKind.Full).Sum(i => i.ImageSize);
        Log.Info($"pre-checks passed: {_images.Count} image(s) ({_images.Count(i => i.Kind == ImageKind.Full)} full, {fullBytes} bytes streamed), delta bases present; engine disk: {plan.EngineDisk.Detail}");
    }

    /// <summary>
    /// The install plan of this artifact (<see cref="InstallPlanner"/>) from what it carries (after
    /// <see cref="CheckAsync"/>; delta images as sized by <see cref="PrepareAsync"/> when it ran) and what
    /// the engine holds (the sub-module's STORAGE). Read-only.
    /// </summary>
    public Task<InstallPlan> PlanAsync(InstallStep step, RunningVersion? running, IReadOnlyList<string> manifests, ManifestContents? contents, IReadOnlyList<PlanCheck> earlier, CancellationToken ct) =>
        InstallPlanning.PlanAsync(this, step, config, _images.Select(PlanImageOf).ToArray(), running, manifests, contents, earlier, TmpFloorBytes, ct);

    private PlanImage PlanImageOf(ImageEntry i)
    {
        var kind = i.Kind switch
        {
            ImageKind.Delta => "delta",
            ImageKind.DeepDelta => "deep-delta",
            _ => "full",
        };
        var prepared = _prepared.GetValueOrDefault(i.Id);
        long? load = i.Kind == ImageKind.Full ? i.ImageSize : prepared?.LoadBytes;
        var layers = prepared?.Layers ?? (i.Kind == ImageKind.Delta ? null : _carried.GetValueOrDefault(i.Id)?.Layers) ?? [];
        return new PlanImage(i.UrlNew, i.SumsNew, kind, i.Kind == ImageKind.Full ? null : i.UrlCurrent, i.Kind == ImageKind.Full ? null : i.SumsCurrent, load, layers);
    }

    /// <summary>
    /// For a delta image: SAVEs the base (url-current) and checks it is the image the delta was made
    /// against; extracts the (small) delta; for a deep delta also checks, from the payload's own manifest
    /// and config, that it describes the new image (ID and platform) and that the base holds every layer it
    /// reads. All before anything is stopped; a missing or different base refuses the install. The new image
    /// itself is never written to disk: LOAD decodes it straight into the sub-module (<see cref="LoadDeltaAsync"/>).
    /// </summary>
    private async Task<PreparedDelta> PrepareDeltaAsync(InstallStep step, ImageEntry image, CancellationToken ct)
    {
        var basePath = Path.Combine(tree.TmpDir, $"base-{image.Id[..12]}.tar");
        File.Delete(basePath);
        DiskCheck(tree.TmpDir, Math.Max(image.ImageSize * 4, 64L << 20), $"saving the delta base {image.UrlCurrent}");
        var save = new SubModuleCall.Save(Application, image.UrlCurrent, basePath);
        var r = await step.Runner.CallAsync(step.Executable, save, step.Environment, ct).ConfigureAwait(false);
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
        await ImagesArchive.ForEachPayloadAsync(ImagesPath, _images, async (entry, stream) =>
        {
            if (entry.Id == image.Id)
            {
                await using var fs = new FileStream(payloadPath, FileMode.Create, FileAccess.Write);
                await stream.CopyToAsync(fs, ct).ConfigureAwait(false);
            }
        }, ct).ConfigureAwait(false);

        try
        {
            var prepared = PreparedDelta.Check(image, basePath, payloadPath, config => ArtifactClaims.CheckPlatform(Platform, ImageConfig.Platform(image.SumsNew, config), image.UrlNew), ct);
            if (image.Kind == ImageKind.DeepDelta)
            {
                // The payload carries the new image's manifest and config: its ID and platform are checked before anything is loaded.
                var described = ImagesArchive.SavedImageOfFile(payloadPath, ct);
                if (described?.Id != image.SumsNew)
                {
                    throw new InstallException("pre-check", image.UrlNew, $"the deep delta describes image {described?.Id ?? "(unknown)"}, but sums-new.txt says {image.SumsNew}; nothing was stopped. Install an artifact with the full image instead");
                }

                ArtifactClaims.CheckPlatform(Platform, described, image.UrlNew);
            }

            Log.Info($"{image.UrlNew}: {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} (image {image.SumsCurrent[..12]}) checked; {prepared.Describe()}");
            return prepared;
        }
        catch (Exception e) when (e is not OperationCanceledException and not InstallException and not ArtifactException)
        {
            throw new InstallException("pre-check", image.UrlNew, $"cannot apply the {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} ({RuntimeMessages.For(e)}); nothing was stopped. Install an artifact with the full image instead");
        }
    }

    public async Task LoadAsync(InstallStep step, CancellationToken ct)
    {
        // Deltas: decoded against the saved base straight into the sub-module's LOAD, checked on the way.
        foreach (var image in _images.Where(i => i.Kind != ImageKind.Full))
        {
            await LoadDeltaAsync(step, image, _prepared[image.Id], ct).ConfigureAwait(false);
        }

        // Full images stream from the archive through a FIFO straight into the sub-module.
        await ImagesArchive.ForEachPayloadAsync(ImagesPath, _images, async (image, stream) =>
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
                var call = new SubModuleCall.Load(Application, Pinned(image), fifo, Pinned(image));
                var (r, written, writeError) = await Fifo.FeedAsync(fifo, stream, () => step.Runner.CallAsync(step.Executable, call, step.Environment, ct), ct).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                if (!r.Succeeded)
                {
                    throw SubModuleRunner.Failure(step.Executable, call, r, "LOAD", $"image {image.UrlNew}");
                }

                if (written != image.ImageSize)
                {
                    throw new InstallException("LOAD", $"image {image.UrlNew}",
                        $"the sub-module read {written} of {image.ImageSize} bytes of the image and still reported success ({(writeError is null ? "pipe closed early" : RuntimeMessages.For(writeError))}); its LOAD must read the whole file",
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
    /// LOAD of a delta image: the new saved image is decoded from the base and the delta as the sub-module
    /// reads it through a FIFO (deep deltas leave out the unchanged layers whose chain the engine holds
    /// already). On the way, every layer is checked against its digest and, before the archive's last
    /// entries, the image ID against sums-new.txt and the platform; a failure cuts the stream, so the engine
    /// registers nothing, and fails the install before anything is stopped.
    /// </summary>
    private async Task LoadDeltaAsync(InstallStep step, ImageEntry image, PreparedDelta prepared, CancellationToken ct)
    {
        var fifo = Path.Combine(tree.TmpDir, $"load-{image.Id[..12]}.fifo");
        File.Delete(fifo);
        Fifo.Create(fifo);
        try
        {
            var call = new SubModuleCall.Load(Application, Pinned(image), fifo, Pinned(image));
            var (r, written, error) = await Fifo.ProduceAsync(fifo,
                output => prepared.Write(output, config => ArtifactClaims.CheckPlatform(Platform, ImageConfig.Platform(image.SumsNew, config), image.UrlNew), ct),
                () => step.Runner.CallAsync(step.Executable, call, step.Environment, ct), ct).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            if (error is not null and not IOException and not UnauthorizedAccessException)
            {
                var what = error is ArtifactException ? error.Message : $"cannot apply the {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} ({RuntimeMessages.For(error)})";
                throw new InstallException("LOAD", $"image {image.UrlNew}", $"{what}; the stream into the engine was cut, nothing was stopped. Install an artifact with the full image instead", SubModuleRunner.Output(r));
            }

            if (!r.Succeeded)
            {
                throw SubModuleRunner.Failure(step.Executable, call, r, "LOAD", $"image {image.UrlNew}");
            }

            if (error is not null)
            {
                throw new InstallException("LOAD", $"image {image.UrlNew}",
                    $"the sub-module stopped reading the image rebuilt from the delta after {written} bytes and still reported success ({RuntimeMessages.For(error)}); its LOAD must read the whole file",
                    SubModuleRunner.Output(r));
            }

            Log.Info($"rebuilt {image.UrlNew} from its {image.Kind.ToString().ToLowerInvariant()} against {image.UrlCurrent} and loaded it ({written} bytes streamed, image {image.SumsNew[..12]})");
        }
        finally
        {
            File.Delete(fifo);
            prepared.Delete();
        }
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
}
