using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using AppModule.Core.Images;
using AppModule.Core.SubModules;

namespace AppModule.Core.Install;

/// <summary>One image an artifact brings, as the planner sees it.</summary>
/// <param name="Kind">full, delta (whole-image VCDIFF), deep-delta (per layer), or pull (the engine pulls it from a registry; LoadBytes null)</param>
/// <param name="BaseId">for a delta: the image ID it was made against (sums-current)</param>
/// <param name="LoadBytes">the size of the archive LOAD hands to the engine (a full image's image.img; a delta's rebuilt image, null until rebuilt)</param>
/// <param name="Layers">the new image's layers; empty when not known (a whole-image delta before it is rebuilt)</param>
public sealed record PlanImage(string Url, string Id, string Kind, string? BaseUrl, string? BaseId, long? LoadBytes, IReadOnlyList<ImageLayer> Layers);

/// <summary>What runs now and will be stopped: the version, its composition in the store and its images.</summary>
public sealed record RunningVersion(string Version, string Composition, string Orchestrator, IReadOnlyList<string> Images)
{
    /// <summary>Its services and volumes by name, as the sub-module read its manifests; null when not known.</summary>
    public ManifestContents? Contents { get; init; }
}

/// <summary>A check the caller ran before planning (the artifact's claims, the sub-module's REQS), passed or not.</summary>
/// <param name="Name">artifact, requirements, delta-base, engine-disk, tmp-disk</param>
public sealed record PlanCheck(string Name, bool Passed, string Message);

/// <summary>Everything the planner needs; gathered by the caller (reading the artifact, asking the sub-module), so the planning itself is pure.</summary>
/// <param name="Engine">the sub-module's STORAGE answer; null when it gave none (<paramref name="EngineUnknown"/> says why)</param>
/// <param name="TmpFree">bytes free where the install's temporary files go (<paramref name="TmpPath"/>)</param>
/// <param name="TmpNeeded">what the install's temporary files need there</param>
/// <param name="EngineMarginBytes">what must stay free on the engine's data root after the images are in (engine_disk_margin_mib)</param>
/// <param name="EarlierChecks">the checks the caller ran before (artifact, requirements), in order</param>
/// <param name="Contents">the new version's services and volumes by name, as the sub-module read its manifests (REQS); null when not known</param>
public sealed record PlanInput(
    string Application,
    string Version,
    string Orchestrator,
    string Platform,
    IReadOnlyList<PlanImage> Images,
    IReadOnlyList<string> Manifests,
    RunningVersion? Running,
    EngineStorage? Engine,
    string? EngineUnknown,
    string TmpPath,
    long? TmpFree,
    long TmpNeeded,
    long EngineMarginBytes,
    IReadOnlyList<PlanCheck> EarlierChecks,
    ManifestContents? Contents = null);

/// <summary>One layer of a planned image: whether the engine (or an earlier image of the same artifact) already has it.</summary>
/// <param name="Source">carried, delta or from-base (<see cref="LayerSource"/>)</param>
public sealed record PlannedLayer(string DiffId, string ChainId, long? Size, string Source, bool Present);

/// <param name="BasePresent">for a delta: whether the engine holds the base image; null for a full image or when the engine is unknown</param>
/// <param name="NewBytes">bytes of the layers the engine does not have yet (null when a size is unknown)</param>
public sealed record PlannedImage(
    string Url,
    string Id,
    string Kind,
    string? BaseUrl,
    string? BaseId,
    bool? BasePresent,
    long? LoadBytes,
    IReadOnlyList<PlannedLayer> Layers,
    int PresentLayers,
    int NewLayers,
    long? NewBytes);

/// <summary>Disk space one place needs against what is free there.</summary>
/// <param name="Needed">bytes the install writes there (the margin not included); null when not known</param>
/// <param name="AtLeast">true when <paramref name="Needed"/> leaves out sizes not known before the deltas are rebuilt</param>
/// <param name="Fits">null when it cannot be told (free space or needs unknown)</param>
public sealed record DiskNeed(string Where, string Path, long? Needed, bool AtLeast, long MarginBytes, long? FreeBytes, bool? Fits, string Detail);

/// <summary>What starts: the new version, its images, manifest files, and (when the sub-module told them) its services
/// and volumes by name. Stopping keeps volumes (Compose down without -v; k8s STOP keeps claims and namespaces).</summary>
public sealed record StartStep(string Version, string Orchestrator, IReadOnlyList<string> Images, IReadOnlyList<string> Manifests,
    IReadOnlyList<string>? Services, IReadOnlyList<string>? Volumes);

/// <summary>The volumes across the switch, by name: the running version's, which STOP keeps (<paramref name="Kept"/>; empty when
/// nothing runs), those of them the new version names again (<paramref name="Reused"/>), and the new version's others
/// (<paramref name="New"/>: Compose or the cluster creates them unless an earlier install left them). A list is null when the
/// manifests it depends on were not read (a sub-module that does not report them).</summary>
public sealed record VolumeChanges(IReadOnlyList<string>? Kept, IReadOnlyList<string>? Reused, IReadOnlyList<string>? New);

/// <summary>
/// What installing an artifact will do and whether it would pass its pre-checks: the steps <c>app plan</c>
/// prints and ArtifactInstall executes (the install refuses with the same <see cref="Checks"/>).
/// </summary>
public sealed record InstallPlan(
    string Application,
    string Version,
    string Orchestrator,
    string Platform,
    string? Engine,
    IReadOnlyList<PlannedImage> Images,
    long? BytesToLoad,
    DiskNeed EngineDisk,
    DiskNeed TmpDisk,
    RunningVersion? Stops,
    StartStep Starts,
    bool VolumesKept,
    VolumeChanges Volumes,
    IReadOnlyList<PlanCheck> Checks)
{
    /// <summary>True when every pre-check passes (the install would go on to LOAD and STOP).</summary>
    public bool WouldInstall => Checks.All(c => c.Passed);

    public string ToJson() => JsonSerializer.Serialize(this, InstallPlanJson.Default.InstallPlan);

    /// <summary>The first failed check of <paramref name="names"/> as the install's refusal (step "pre-check"), or nothing.</summary>
    public void ThrowIfRefused(params string[] names)
    {
        if (Checks.FirstOrDefault(c => !c.Passed && names.Contains(c.Name)) is { } failed)
        {
            throw new InstallException("pre-check", failed.Name == "tmp-disk" ? $"the temporary files of {Version}" : $"the images of {Version}", failed.Message);
        }
    }
}

/// <summary>
/// Plans an install from what the artifact carries and what the engine holds. Pure: no processes, no
/// files; the same function answers <c>app plan</c> and gates ArtifactInstall.
/// </summary>
public static class InstallPlanner
{
    public const long MiB = 1L << 20;

    public static InstallPlan Plan(PlanInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var engine = input.Engine;
        var have = new HashSet<string>(engine?.Layers ?? [], StringComparer.Ordinal);
        var images = new HashSet<string>((engine?.Images ?? []).Select(Hex), StringComparer.Ordinal);
        var checks = new List<PlanCheck>(input.EarlierChecks);
        var planned = new List<PlannedImage>();
        long newBytes = 0;
        long staged = 0;
        var unknownNew = 0;
        var unknownStaged = false;
        var pulled = false; // sizes of pulled layers are compressed ones: the need is a lower bound
        foreach (var image in input.Images)
        {
            var chains = ImageLayers.ChainIds(image.Layers.Select(l => l.DiffId));
            var layers = new List<PlannedLayer>();
            long? imageNew = 0;
            long largestPulled = 0;
            for (var i = 0; i < image.Layers.Count; i++)
            {
                var l = image.Layers[i];
                var present = engine is not null && have.Contains(chains[i]);
                layers.Add(new PlannedLayer(l.DiffId, chains[i], l.Size, SourceName(l.Source), present));
                if (present || engine is null)
                {
                    continue;
                }

                have.Add(chains[i]); // a later image sharing it does not need it again
                if (l.Size is { } size)
                {
                    imageNew += size;
                    newBytes += size;
                    if (l.Source == LayerSource.Pulled)
                    {
                        pulled = true;
                        largestPulled = Math.Max(largestPulled, size);
                    }
                }
                else
                {
                    imageNew = null;
                    unknownNew++;
                }
            }

            if (image.Layers.Count == 0)
            {
                imageNew = null;
                unknownNew++;
            }

            bool? basePresent = null;
            if (image.BaseId is { } baseId && engine is not null)
            {
                basePresent = images.Contains(Hex(baseId));
                checks.Add(new PlanCheck("delta-base", basePresent.Value, basePresent.Value
                    ? $"the base {image.BaseUrl} (image {Short(baseId)}) of the {image.Kind} of {image.Url} is in the engine"
                    : $"the {image.Kind} of {image.Url} needs the base {image.BaseUrl} (image {Short(baseId)}), which the engine does not hold; nothing would be stopped. Install an artifact with the full image instead"));
            }

            if (image.LoadBytes is { } load)
            {
                staged = Math.Max(staged, load);
            }
            else if (image.Kind == "pull")
            {
                staged = Math.Max(staged, largestPulled); // a pull keeps a downloaded blob under the data root until it is unpacked
            }
            else
            {
                unknownStaged = true;
            }

            planned.Add(new PlannedImage(image.Url, image.Id, image.Kind, image.BaseUrl, image.BaseId, basePresent, image.LoadBytes, layers,
                layers.Count(l => l.Present), layers.Count(l => !l.Present), engine is null ? null : imageNew));
        }

        var engineDisk = EngineDisk(input, planned, newBytes, unknownNew, staged, unknownStaged, pulled);
        if (engineDisk.Fits is { } fits)
        {
            checks.Add(new PlanCheck("engine-disk", fits, engineDisk.Detail));
        }

        var tmpFits = input.TmpFree is { } tmpFree ? tmpFree >= input.TmpNeeded : (bool?)null;
        var tmpDisk = new DiskNeed("temporary files", input.TmpPath, input.TmpNeeded, false, 0, input.TmpFree, tmpFits,
            tmpFits == false
                ? $"needs {Mib(input.TmpNeeded)} in {input.TmpPath}, only {Mib(input.TmpFree!.Value)} free; free some space on that filesystem and retry"
                : $"needs {Mib(input.TmpNeeded)} in {input.TmpPath}, {(input.TmpFree is { } f ? Mib(f) : "an unknown amount")} free");
        if (tmpFits is { } t)
        {
            checks.Add(new PlanCheck("tmp-disk", t, tmpDisk.Detail));
        }

        long? bytesToLoad = unknownStaged ? null : input.Images.Sum(i => i.LoadBytes ?? 0);
        return new InstallPlan(input.Application, input.Version, input.Orchestrator, input.Platform, engine?.Engine, planned, bytesToLoad, engineDisk, tmpDisk,
            input.Running, new StartStep(input.Version, input.Orchestrator, input.Images.Select(i => i.Url).ToArray(), input.Manifests, input.Contents?.Services, input.Contents?.Volumes),
            true, Volumes(input.Running, input.Contents), checks);
    }

    /// <summary>What happens to the volumes, by name: STOP keeps the running version's; the new one reuses those it names again and creates the rest.</summary>
    public static VolumeChanges Volumes(RunningVersion? running, ManifestContents? next)
    {
        IReadOnlyList<string>? kept = running is null ? [] : running.Contents?.Volumes;
        var reused = kept is null || next is null ? null : next.Volumes.Where(v => kept.Contains(v, StringComparer.Ordinal)).ToArray();
        var created = kept is null || next is null ? null : next.Volumes.Where(v => !kept.Contains(v, StringComparer.Ordinal)).ToArray();
        return new VolumeChanges(kept, reused, created);
    }

    private static DiskNeed EngineDisk(PlanInput input, IReadOnlyList<PlannedImage> planned, long newBytes, int unknownNew, long staged, bool unknownStaged, bool pulled)
    {
        var margin = input.EngineMarginBytes;
        if (input.Engine is not { } engine)
        {
            return new DiskNeed("engine data root", "(unknown)", null, false, margin, null, null,
                $"not checked: {input.EngineUnknown ?? "the sub-module told nothing about the engine's storage"}");
        }

        var copies = Math.Max(1, engine.CopiesPerLayer);
        var needed = newBytes * copies + (engine.StagesArchive ? staged : 0);
        var atLeast = unknownNew > 0 || (engine.StagesArchive && unknownStaged) || pulled;
        var layers = planned.Sum(i => i.Layers.Count);
        var present = planned.Sum(i => i.PresentLayers);
        var pulledOnly = planned.Count > 0 && planned.All(i => i.Kind == "pull");
        var parts = $"{planned.Sum(i => i.NewLayers)} new layer(s) of {Mib(newBytes)}{(pulled ? " (compressed, as the registry lists them; they unpack larger)" : string.Empty)}{(copies > 1 ? $" stored {copies} times (content blob and unpacked snapshot)" : string.Empty)}"
                    + (engine.StagesArchive ? $", plus {Mib(staged)} for the largest {(pulledOnly ? "layer download" : "archive")} the engine unpacks while {(pulledOnly ? "pulling" : "loading")}" : string.Empty)
                    + $"; {present} of {layers} layer(s) already there";
        var what = $"{(atLeast ? "at least " : string.Empty)}{Mib(needed)} ({needed} bytes: {parts}) and a margin of {Mib(margin)} (engine_disk_margin_mib)";
        if (engine.FreeBytes is not { } free)
        {
            return new DiskNeed("engine data root", engine.DataRoot, needed, atLeast, margin, null, null,
                $"the images need {what} on the engine's data root {engine.DataRoot}; its free space is not known (not checked)");
        }

        bool? fits = needed + margin <= free ? (atLeast ? null : true) : false;
        var detail = fits == false
            ? $"the images of {input.Version} need {what} on the engine's data root {engine.DataRoot}, but only {Mib(free)} ({free} bytes) are free there; nothing was stopped. Free {Mib(needed + margin - free)} there (remove images, containers or volumes no longer needed: docker image prune / docker system df; for containerd: ctr images rm) or lower engine_disk_margin_mib in mender-app.conf, then retry"
            : $"the images of {input.Version} need {what} on the engine's data root {engine.DataRoot}; {Mib(free)} ({free} bytes) are free there"
              + (fits is null ? (pulled && unknownNew == 0 ? "; the layers unpack to more than that, so it may not fit (checked by the pull itself)" : "; the rest is known once the deltas are rebuilt") : string.Empty);
        return new DiskNeed("engine data root", engine.DataRoot, needed, atLeast, margin, free, fits, detail);
    }

    private static string SourceName(LayerSource s) => s switch
    {
        LayerSource.Delta => "delta",
        LayerSource.FromBase => "from-base",
        LayerSource.Pulled => "pulled",
        _ => "carried",
    };

    private static string Hex(string id) => id.StartsWith("sha256:", StringComparison.Ordinal) ? id[7..] : id;

    private static string Short(string id) => Hex(id)[..Math.Min(12, Hex(id).Length)];

    /// <summary>Bytes as MiB with one decimal ("12.5 MiB").</summary>
    public static string Mib(long bytes) => (bytes / (double)MiB).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(InstallPlan))]
internal sealed partial class InstallPlanJson : JsonSerializerContext;
