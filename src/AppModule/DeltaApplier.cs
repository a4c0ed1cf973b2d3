using System.Text.Json;
using AppModule.Artifacts;
using AppModule.Core.Images;
using AppModule.Delta;

namespace AppModule;

/// <summary>
/// A delta image ready to be decoded on the device with the native decoders of AppModule.Delta: the
/// saved base (the current image, SAVEd by the sub-module) and the extracted payload (a whole-image
/// VCDIFF of xdelta3, or a deep delta of per-layer deltas). <see cref="Write"/> decodes the new saved
/// image into a stream (the FIFO the sub-module's LOAD reads) through a <see cref="VerifiedImageWriter"/>;
/// nothing of the new image is written to disk.
/// </summary>
public sealed class PreparedDelta
{
    private readonly ImageEntry _image;
    private readonly string _basePath;
    private readonly string _payloadPath;
    private readonly IReadOnlySet<string> _omit; // deep: manifest layer paths the engine holds (shared chain with the base)
    private readonly DeepDeltaPlan? _plan;
    private readonly BaseImageArchive? _baseArchive; // deep: the base's layers, hashed once at the check

    private PreparedDelta(ImageEntry image, string basePath, string payloadPath, IReadOnlySet<string> omit, DeepDeltaPlan? plan, BaseImageArchive? baseArchive,
        IReadOnlyList<ImageLayer>? layers, long? loadBytes)
    {
        _image = image;
        _basePath = basePath;
        _payloadPath = payloadPath;
        _omit = omit;
        _plan = plan;
        _baseArchive = baseArchive;
        Layers = layers;
        LoadBytes = loadBytes;
    }

    /// <summary>
    /// The new image's layers in config order, each with its size in the archive LOAD reads (for the engine-disk
    /// check of <see cref="AppModule.Core.Install.InstallPlanner"/>); null when the payload does not tell them.
    /// </summary>
    public IReadOnlyList<ImageLayer>? Layers { get; }

    /// <summary>Bytes LOAD will stream into the engine: exact for a whole-image delta, an upper bound for a deep one
    /// (the payload plus every decoded and copied layer); null when not known.</summary>
    public long? LoadBytes { get; }

    /// <summary>What LOAD will send, in words, for the log.</summary>
    public string Describe() => _plan is null
        ? "the new image is decoded into LOAD"
        : $"{_plan.Layers.Count(l => l.Origin == LayerOrigin.Decoded)} layer(s) decoded, {_plan.Layers.Count(l => l.Origin == LayerOrigin.Shipped)} shipped, " +
          $"{_plan.Layers.Count(l => l.Origin == LayerOrigin.FromBase && !_omit.Contains(l.Path))} copied from the base, {_omit.Count} left to the engine (same layer chain as the base)";

    /// <summary>
    /// Checks that the delta can apply before anything is loaded. A whole-image VCDIFF is decoded once without
    /// writing anything (its tar headers and small JSON files are read as they pass): the image ID, the layer list
    /// and the platform (<paramref name="checkConfig"/>) are checked and the layer sizes learnt for the disk checks;
    /// the layer digests are checked during LOAD. A deep delta's plan is read and the base must hold every layer it
    /// reads (layers whose chain the engine holds are not read); its layer sizes come from the VCDIFF headers, the
    /// base and the payload, without decoding.
    /// </summary>
    public static PreparedDelta Check(ImageEntry image, string basePath, string payloadPath, Action<byte[]> checkConfig, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Kind != ImageKind.DeepDelta)
        {
            using (var header = File.OpenRead(payloadPath))
            {
                VcdiffDecoder.ReadTargetSize(header, null, ct);
            }

            using var survey = new VerifiedImageWriter(Stream.Null, image.SumsNew, hashLayers: false, omitted: _ => false, checkConfig);
            using (var src = new FileStream(basePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess))
            using (var delta = new FileStream(payloadPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            {
                VcdiffDecoder.Decode(src, delta, survey, null, ct);
            }

            if (!survey.Verified)
            {
                throw new DeltaFormatException(-1, "the image rebuilt from the delta ends before its end-of-archive blocks");
            }

            var layers = survey.ManifestLayers.Select(l => new ImageLayer(l.DiffId, l.Size, LayerSource.Delta)).ToArray();
            return new PreparedDelta(image, basePath, payloadPath, new HashSet<string>(), null, null, layers, survey.Written);
        }

        DeepDeltaPlan plan;
        SavedLayout? layout;
        IReadOnlyDictionary<string, long> writtenSizes;
        IReadOnlySet<string> omit = new HashSet<string>();
        using (var payload = new FileStream(payloadPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess))
        {
            plan = DeepDelta.Inspect(payload, ct);
            layout = SavedLayout.Read(payload, "deep delta payload", ct);
            if (plan.Layout == DeepDeltaLayout.DockerArchive && layout is not null)
            {
                using var baseFile = new FileStream(basePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
                var baseLayout = SavedLayout.Read(baseFile, $"saved base {image.UrlCurrent}", ct);
                if (baseLayout is not null)
                {
                    var shared = layout.SharedChainWith(baseLayout);
                    omit = plan.Layers.Where(l => l.Origin == LayerOrigin.FromBase && shared.Contains(l.Path)).Select(l => l.Path).ToHashSet(StringComparer.Ordinal);
                }
            }

            writtenSizes = DeepDelta.PayloadFileSizes(payload, ct);
        }

        var baseArchive = BaseImageArchive.Open(basePath, ct);
        var needed = plan.Layers.Where(l => l.BaseSha256 is not null && !omit.Contains(l.Path)).Select(l => l.BaseSha256!).Distinct(StringComparer.Ordinal);
        var missing = needed.Where(d => !baseArchive.Contains(d)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            baseArchive.Dispose();
            throw new MissingBaseLayerException(missing);
        }

        // Layer sizes without decoding: a decoded layer's from its VCDIFF header, an unchanged one's from the base, a shipped one's from the payload.
        IReadOnlyList<ImageLayer>? sized = null;
        long? loadBytes = null;
        if (layout is not null)
        {
            var byPath = plan.Layers.ToDictionary(l => l.Path, StringComparer.Ordinal);
            var list = new List<ImageLayer>();
            long load = new FileInfo(payloadPath).Length;
            for (var i = 0; i < layout.LayerPaths.Count; i++)
            {
                var path = layout.LayerPaths[i];
                var l = byPath.GetValueOrDefault(path);
                long? size = l?.Origin switch
                {
                    LayerOrigin.FromBase => baseArchive.SizeOf(l.BaseSha256 ?? l.Sha256),
                    _ => writtenSizes.TryGetValue(path, out var s) ? s : null,
                };
                var source = l?.Origin switch
                {
                    LayerOrigin.Decoded => LayerSource.Delta,
                    LayerOrigin.FromBase => LayerSource.FromBase,
                    _ => LayerSource.Carried,
                };
                list.Add(new ImageLayer($"sha256:{layout.DiffIds[i]}", size, source));
                if (l?.Origin is LayerOrigin.Decoded or LayerOrigin.FromBase && !omit.Contains(path))
                {
                    load += size ?? 0;
                }
            }

            sized = list;
            loadBytes = list.Any(x => x.Size is null) ? null : load;
        }

        return new PreparedDelta(image, basePath, payloadPath, omit, plan, baseArchive, sized, loadBytes);
    }

    /// <summary>Decodes the new saved image into <paramref name="output"/>, verified on the way; on a failure the output is cut (see <see cref="VerifiedImageWriter.Abort"/>) and the failure thrown.</summary>
    public void Write(Stream output, Action<byte[]> checkConfig, CancellationToken ct)
    {
        using var verified = new VerifiedImageWriter(output, _image.SumsNew, hashLayers: _plan is null, omitted: _omit.Contains, checkConfig);
        try
        {
            if (_plan is null)
            {
                using var src = new FileStream(_basePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
                using var delta = new FileStream(_payloadPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                VcdiffDecoder.Decode(src, delta, verified, null, ct);
            }
            else
            {
                using var payload = new FileStream(_payloadPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
                DeepDelta.Reconstruct(payload, _baseArchive!.OpenLayer, verified, null, l => _omit.Contains(l.Path), ct);
            }

            verified.Flush();
            if (!verified.Verified)
            {
                throw new DeltaFormatException(-1, "the image rebuilt from the delta ends before its end-of-archive blocks");
            }
        }
        catch
        {
            verified.Abort();
            throw;
        }
    }

    /// <summary>Removes the saved base and the extracted payload.</summary>
    public void Delete()
    {
        _baseArchive?.Dispose();
        File.Delete(_basePath);
        File.Delete(_payloadPath);
    }
}

/// <summary>What an image config says about the image's platform.</summary>
public static class ImageConfig
{
    public static SavedImage Platform(string id, byte[] config)
    {
        try
        {
            using var doc = JsonDocument.Parse(config);
            static string? S(JsonElement o, string k) => o.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;
            var root = doc.RootElement;
            return root.ValueKind == JsonValueKind.Object ? new SavedImage(id, S(root, "os"), S(root, "architecture"), S(root, "variant")) : new SavedImage(id, null, null, null);
        }
        catch (JsonException)
        {
            return new SavedImage(id, null, null, null);
        }
    }
}
