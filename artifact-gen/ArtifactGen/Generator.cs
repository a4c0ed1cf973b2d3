using System.Text;
using System.Text.Json;
using AppModule.Artifacts;

namespace ArtifactGen;

/// <summary>One image of the artifact. <paramref name="Requested"/>: what --image asked for (full, delta, deep-delta);
/// <paramref name="DeltaBytes"/> and <paramref name="WholeBytes"/>: the sizes compared when a delta was asked for
/// (a delta not smaller than what it replaces is shipped whole); <paramref name="Layers"/>: per layer, for deep deltas.</summary>
public sealed record GeneratedImage(ImageEntry Entry, long ImageBytes, string? DeepDeltaStats, string Requested = "full",
    long? DeltaBytes = null, long? WholeBytes = null, IReadOnlyList<DeepDeltaEncoder.LayerChoice>? Layers = null);

public sealed record GenerationResult(string OutputPath, ArtifactWriteResult Artifact, AppMetadata MetaData, IReadOnlyList<GeneratedImage> Images, string? SignedWith);

/// <summary>Builds the payloads and writes the artifact. Everything temporary lives in one work
/// directory next to the output, removed at the end whatever happens.</summary>
public sealed class Generator(GenOptions o)
{
    private void Say(string s)
    {
        if (!o.Quiet) Console.Error.WriteLine("app-gen: " + s);
    }

    public async Task<GenerationResult> RunAsync(CancellationToken ct)
    {
        // 1. Inputs that need no heavy work, checked first.
        if (!MetadataValidator.IsValidApplicationName(o.ApplicationName))
            throw new InputException($"application name \"{o.ApplicationName}\" is invalid: use only letters, digits, '_' and '-' (--application-name)");
        if (!MetadataValidator.IsValidOrchestrator(o.Orchestrator))
            throw new InputException($"orchestrator \"{o.Orchestrator}\" is not a plain sub-module name: use e.g. docker-compose or k8s (letters, digits, '.', '_', '-')");
        if (!MetadataValidator.IsValidPlatform(o.Platform))
            throw new InputException($"platform \"{o.Platform}\" is invalid: use OS/ARCH[/VARIANT], e.g. linux/amd64, linux/arm64, linux/arm/v7");
        if (o.DeepDelta && o.Orchestrator is "k8s" or "podman")
            throw new InputException($"deep deltas are not supported with the {o.Orchestrator} orchestrator: drop --deep-delta");
        if (!Directory.Exists(o.ManifestsDir))
            throw new InputException($"manifests directory {o.ManifestsDir} does not exist: give --manifests-dir the directory holding your compose file or k8s manifests");
        if (!Directory.EnumerateFiles(o.ManifestsDir, "*", SearchOption.AllDirectories).Any())
            throw new InputException($"manifests directory {o.ManifestsDir} is empty: put your docker-compose.yml (or k8s manifests) in it");
        var output = Path.GetFullPath(o.OutputPath);
        var outDir = Path.GetDirectoryName(output)!;
        if (!Directory.Exists(outDir))
            throw new GenException(ExitCodes.OutputFailed, $"output directory {outDir} does not exist: create it or change --output-path");
        if (Directory.Exists(output))
            throw new GenException(ExitCodes.OutputFailed, $"output path {output} is a directory: give a file name with --output-path");
        ArtifactSigner? signer = null;
        if (o.KeyPath is not null)
        {
            string pem;
            try { pem = await File.ReadAllTextAsync(o.KeyPath, ct).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InputException($"signing key {o.KeyPath} cannot be read ({e.Message.ReplaceLineEndings(" ")}): check the path and its permissions (--key)");
            }
            try { signer = ArtifactSigner.FromPem(pem, o.KeyPath); }
            catch (ArtifactException e) { throw new InputException(e.Message); }
        }
        Dictionary<string, string>? env = null;
        if (o.K8sCtrAddress is not null || o.K8sNamespace is not null)
            env = new() { ["K8S_CTR_ADDRESS"] = o.K8sCtrAddress ?? "", ["K8S_NAMESPACE"] = o.K8sNamespace ?? "" };

        using var _ = signer;
        var mtime = SourceDateEpoch();
        var work = Path.Combine(outDir, $".app-gen.{Environment.ProcessId}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            // 2. Images.
            var requests = o.Images.ToList();
            ImageFileSource files = await ImageFileSource.LoadAsync(o.ImageFiles, ct).ConfigureAwait(false);
            if (requests.Count == 0 && !o.SkipImages)
            {
                IReadOnlyList<string> refs;
                if (o.Orchestrator is "k8s" or "podman") refs = ManifestImages.FromKubernetes(o.ManifestsDir);
                else if (o.Orchestrator == "docker-compose") refs = ManifestImages.FromCompose(o.ManifestsDir);
                else if (files.AllReferences.Count > 0) refs = files.AllReferences;
                else throw new InputException($"no images specified: pass --image (the image list is only read from manifests for docker-compose, k8s and podman, not {o.Orchestrator})");
                Say($"images from the manifests in {o.ManifestsDir}: {string.Join(", ", refs)}");
                requests.AddRange(refs.Select(r => new ImageRequest(r, r)));
            }
            using var engine = new EngineSource();
            var generated = new List<GeneratedImage>();
            var toWrite = new List<ImageToWrite>();
            var ids = new SortedSet<string>(StringComparer.Ordinal);
            int n = 0;
            foreach (var req in requests)
            {
                var dir = Path.Combine(work, $"image-{n++}");
                Directory.CreateDirectory(dir);
                var (newImg, newSrc) = await ResolveAsync(req.New, files, engine, ct).ConfigureAwait(false);
                var (curImg, curSrc) = req.IsDelta ? await ResolveAsync(req.Current, files, engine, ct).ConfigureAwait(false) : (newImg, newSrc);
                if (generated.Any(g => g.Entry.Id == newImg.Id))
                    throw new InputException($"image {req.New} (ID {newImg.Id[..12]}) is given twice: list each image once");
                string imagePath;
                string? stats = null;
                string? baseSum = null;
                bool deep = false;
                bool whole = !req.IsDelta;
                long? deltaBytes = null, wholeBytes = null;
                IReadOnlyList<DeepDeltaEncoder.LayerChoice>? layers = null;
                if (!req.IsDelta)
                {
                    imagePath = Path.Combine(dir, AppPayloadNames.ImageFile);
                    await SaveAsync(newSrc, newImg, imagePath, ct).ConfigureAwait(false);
                }
                else
                {
                    var newPath = Path.Combine(dir, "image-new.img");
                    var curPath = Path.Combine(dir, "image-current.img");
                    var newFormat = await SaveAsync(newSrc, newImg, newPath, ct).ConfigureAwait(false);
                    var curFormat = await SaveAsync(curSrc, curImg, curPath, ct).ConfigureAwait(false);
                    imagePath = Path.Combine(dir, AppPayloadNames.ImageFile);
                    wholeBytes = new FileInfo(newPath).Length;
                    if (o.DeepDelta)
                    {
                        Say($"deep delta {req.Current} -> {req.New}");
                        var s = await DeepDeltaEncoder.CreateAsync(curPath, curFormat, newPath, newFormat, dir, imagePath, ct, o.DeltaMaxRatio).ConfigureAwait(false);
                        stats = $"{s.Layers} layers: {s.Unchanged} unchanged, {s.Encoded} delta-encoded, {s.Shipped} shipped whole";
                        Say($"deep delta {req.New}: {stats}");
                        layers = s.Choices;
                        deltaBytes = new FileInfo(imagePath).Length;
                        deep = true;
                        // Every layer shipped whole: the full image carries the same bytes and needs no base on the device.
                        whole = s.AllWhole;
                    }
                    else
                    {
                        Say($"delta {req.Current} -> {req.New} (xdelta3)");
                        baseSum = await DeepDeltaEncoder.Sha256FileAsync(curPath, ct).ConfigureAwait(false);
                        await Xdelta.EncodeAsync(dir, "image-current.img", "image-new.img", AppPayloadNames.ImageFile, ct).ConfigureAwait(false);
                        deltaBytes = new FileInfo(imagePath).Length;
                        whole = !DeepDeltaEncoder.WorthIt(deltaBytes.Value, wholeBytes.Value, o.DeltaMaxRatio);
                    }
                    if (whole)
                    {
                        Say($"image {req.New}: the delta ({StepProgress.Human(deltaBytes!.Value)}) is not smaller than {o.DeltaMaxRatio:0.##} x the image ({StepProgress.Human(wholeBytes.Value)}): shipping the full image");
                        File.Move(newPath, imagePath, overwrite: true);
                        deep = false;
                        baseSum = null;
                    }
                    else
                    {
                        File.Delete(newPath);
                    }
                    File.Delete(curPath);
                }
                // A full image (asked for, or a delta that did not pay) names only itself: url-current = url-new, sums-current = sums-new.
                var entry = whole
                    ? new ImageEntry(newImg.Id, req.New, req.New, newImg.Id, newImg.Id, false, new FileInfo(imagePath).Length)
                    : new ImageEntry(newImg.Id, req.New, req.Current, newImg.Id, curImg.Id, deep, new FileInfo(imagePath).Length, baseSum);
                ids.Add(newImg.Id);
                ids.Add(entry.SumsCurrent);
                toWrite.Add(new ImageToWrite(entry, imagePath));
                generated.Add(new GeneratedImage(entry, entry.ImageSize, stats, !req.IsDelta ? "full" : o.DeepDelta ? "deep-delta" : "delta", deltaBytes, wholeBytes, layers));
                Say($"image {req.New}: {entry.Kind}, {StepProgress.Human(entry.ImageSize)}");
            }

            // 3. Payload files.
            var payloads = new List<PayloadFile>();
            if (!o.SkipImages)
            {
                var imagesPath = Path.Combine(work, AppPayloadNames.ImagesArchive);
                var p = new StepProgress("compressing images.tar.gz", o.Quiet);
                await using (var fs = new FileStream(imagesPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                    await ImagesPayloadWriter.WriteAsync(toWrite, fs, mtime, p, ct).ConfigureAwait(false);
                p.Done();
                payloads.Add(new PayloadFile(AppPayloadNames.ImagesArchive, imagesPath));
            }
            var manifestsPath = Path.Combine(work, AppPayloadNames.ManifestsArchive);
            await using (var fs = new FileStream(manifestsPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                try { await PayloadArchive.WriteManifestsAsync(o.ManifestsDir, fs, mtime, ct).ConfigureAwait(false); }
                catch (ArtifactException e) { throw new InputException(e.Message); }
            }
            payloads.Add(new PayloadFile(AppPayloadNames.ManifestsArchive, manifestsPath));

            // 4. Headers.
            var meta = new AppMetadata(o.ApplicationName, o.Orchestrator, o.Platform, AppMetadata.CurrentVersion,
                o.SkipImages ? [] : ids.ToList(), env);
            MetadataValidator.EnsureValid(meta);
            var header = new HeaderInfo(["app"], o.ArtifactName, o.ArtifactGroup, o.DeviceTypes);
            var provides = new Dictionary<string, string>(StringComparer.Ordinal);
            var clears = new List<string>();
            var swName = o.SoftwareName ?? o.ApplicationName;
            if (!o.NoDefaultSoftwareVersion) provides[$"rootfs-image.{swName}.version"] = o.SoftwareVersion ?? o.ArtifactName;
            foreach (var (k, v) in o.Provides) provides[k] = v;
            if (!o.NoDefaultClearsProvides) clears.Add($"rootfs-image.{swName}.*");
            clears.AddRange(o.ClearsProvides.Where(c => !clears.Contains(c)));
            var depends = o.Depends.Select(d => new KeyValuePair<string, JsonValue>(d.Key, new JsonString(d.Value))).ToList();
            var typeInfo = new TypeInfo("app", provides, clears, depends);
            JsonValue metaJson = meta.ToJson();
            if (o.SkipImages) metaJson = new JsonObject(((JsonObject)metaJson).Members.Where(m => m.Key != "images").ToArray());
            var spec = new ArtifactSpec(header, typeInfo, metaJson, payloads, o.Compression, mtime);

            // 5. The artifact, atomically.
            var wp = new StepProgress($"writing {Path.GetFileName(output)} ({Compression.Name(o.Compression)})", o.Quiet);
            ArtifactWriteResult written;
            try { written = await ArtifactWriter.WriteFileAsync(spec, output, signer, wp, ct).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new GenException(ExitCodes.OutputFailed, $"cannot write {output}: {e.Message.ReplaceLineEndings(" ")}");
            }
            wp.Done();
            Say($"artifact {output} written: {StepProgress.Human(written.Size)}, sha256 {written.Sha256}{(signer is null ? "" : $", signed ({signer.Algorithm})")}");
            return new GenerationResult(output, written, meta, generated, signer?.Algorithm);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private async Task<(ResolvedImage, IImageSource)> ResolveAsync(string reference, ImageFileSource files, EngineSource engine, CancellationToken ct)
    {
        ResolvedImage? r = await files.TryResolveAsync(reference, ct).ConfigureAwait(false);
        IImageSource src = files;
        if (r is null)
        {
            r = await engine.TryResolveAsync(reference, ct).ConfigureAwait(false);
            src = engine;
        }
        if (r is null)
            throw new ImageException($"image {reference} is not in the local Docker engine{(o.ImageFiles.Count > 0 ? " nor in --image-file " + string.Join(", ", o.ImageFiles) : "")}: pull or build it first (no registry is contacted), or give it with --image-file");
        var want = o.Platform.Split('/');
        bool ok = r.Os == want[0] && r.Architecture == want[1] && (want.Length < 3 || r.Variant is null || r.Variant == want[2]);
        if (!ok)
            throw new ImageException($"image {reference} is for platform {r.PlatformText}, but --platform is {o.Platform}: get the {o.Platform} variant of the image (docker pull --platform {o.Platform} ...) or fix --platform");
        return (r, src);
    }

    private async Task<SavedFormat> SaveAsync(IImageSource src, ResolvedImage img, string path, CancellationToken ct)
    {
        var p = new StepProgress($"saving {img.Reference} from {img.Origin}", o.Quiet);
        var f = await src.SaveAsync(img, path, p, ct).ConfigureAwait(false);
        p.Done();
        return f;
    }

    /// <summary>mtime of every entry: $SOURCE_DATE_EPOCH when set, else 0 (1970-01-01), for reproducible output.</summary>
    private static DateTimeOffset SourceDateEpoch()
    {
        var s = Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH");
        if (s is { Length: > 0 })
        {
            if (!long.TryParse(s, out var secs) || secs < 0)
                throw new InputException($"SOURCE_DATE_EPOCH=\"{s}\" is not a number of seconds since 1970");
            return DateTimeOffset.FromUnixTimeSeconds(secs);
        }
        return DateTimeOffset.UnixEpoch;
    }

    public static string SummaryJson(GenerationResult r, GenOptions o)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("output", r.OutputPath);
            w.WriteString("artifact_name", o.ArtifactName);
            w.WriteNumber("size", r.Artifact.Size);
            w.WriteString("sha256", r.Artifact.Sha256);
            w.WriteString("compression", Compression.Name(o.Compression));
            if (r.SignedWith is null) w.WriteNull("signed"); else w.WriteString("signed", r.SignedWith);
            w.WriteStartArray("device_types");
            foreach (var d in o.DeviceTypes) w.WriteStringValue(d);
            w.WriteEndArray();
            w.WritePropertyName("meta_data");
            w.WriteRawValue(r.MetaData.ToArtifactJson());
            w.WriteStartArray("images");
            foreach (var g in r.Images)
            {
                w.WriteStartObject();
                w.WriteString("id", g.Entry.Id);
                w.WriteString("url_new", g.Entry.UrlNew);
                w.WriteString("url_current", g.Entry.UrlCurrent);
                w.WriteString("sums_current", g.Entry.SumsCurrent);
                w.WriteString("kind", g.Entry.Kind switch { ImageKind.Full => "full", ImageKind.Delta => "delta", _ => "deep-delta" });
                w.WriteString("requested", g.Requested);
                w.WriteNumber("image_bytes", g.ImageBytes);
                if (g.WholeBytes is { } wb) w.WriteNumber("whole_bytes", wb);
                if (g.DeltaBytes is { } db) w.WriteNumber("delta_bytes", db);
                if (g.Layers is { } ls)
                {
                    w.WriteStartArray("layers");
                    foreach (var l in ls)
                    {
                        w.WriteStartObject();
                        w.WriteString("path", l.Path);
                        w.WriteString("sha256", l.Sha256);
                        w.WriteNumber("bytes", l.Bytes);
                        w.WriteString("chosen", l.Choice);
                        if (l.DeltaBytes is { } d) w.WriteNumber("delta_bytes", d); else w.WriteNull("delta_bytes");
                        if (l.Against is { } a) w.WriteString("against", a); else w.WriteNull("against");
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("payload_files");
            foreach (var f in r.Artifact.Files)
            {
                w.WriteStartObject();
                w.WriteString("name", f.Name);
                w.WriteNumber("size", f.Size);
                w.WriteString("sha256", f.Sha256);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
