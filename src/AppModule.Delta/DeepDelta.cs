using System.Text;
using System.Text.Json;
using AppModule.Delta.Tar;

namespace AppModule.Delta;

/// <summary>Layout of a deep-delta payload.</summary>
public enum DeepDeltaLayout
{
    /// <summary><c>docker save</c> layout: <c>&lt;id&gt;/layer.tar</c> per layer.</summary>
    DockerArchive,

    /// <summary>OCI image layout: <c>blobs/sha256/&lt;digest&gt;</c>.</summary>
    Oci,
}

/// <summary>Where a layer of the reconstructed image comes from.</summary>
public enum LayerOrigin
{
    /// <summary>Decoded from a VCDIFF against a base layer.</summary>
    Decoded,

    /// <summary>Unchanged: copied from the base image.</summary>
    FromBase,

    /// <summary>Shipped whole in the payload.</summary>
    Shipped,
}

/// <summary>One layer file of the new image.</summary>
/// <param name="Path">Path inside the image tar, e.g. <c>abc.../layer.tar</c> or <c>blobs/sha256/abc...</c>.</param>
/// <param name="Sha256">Expected SHA-256 (hex) of the layer file; empty for shipped layers without a known digest.</param>
/// <param name="Origin">Where it comes from.</param>
/// <param name="BaseSha256">SHA-256 of the base layer file it needs, or null.</param>
public sealed record DeepDeltaLayer(string Path, string Sha256, LayerOrigin Origin, string? BaseSha256);

/// <summary>What a deep delta contains and needs from the base image.</summary>
public sealed record DeepDeltaPlan(DeepDeltaLayout Layout, IReadOnlyList<DeepDeltaLayer> Layers)
{
    /// <summary>SHA-256 digests of the base layer files the reconstruction reads.</summary>
    public IReadOnlySet<string> RequiredBaseDigests { get; } =
        Layers.Where(l => l.BaseSha256 is not null).Select(l => l.BaseSha256!).ToHashSet(StringComparer.Ordinal);

    /// <summary>The required base digests for which <paramref name="has"/> answers false.</summary>
    public IReadOnlyList<string> MissingBaseDigests(Func<string, bool> has)
    {
        ArgumentNullException.ThrowIfNull(has);
        return RequiredBaseDigests.Where(d => !has(d)).Order(StringComparer.Ordinal).ToList();
    }
}

/// <summary>Raised when a deep delta needs a base layer that the current image does not have.</summary>
public sealed class MissingBaseLayerException : DeltaFormatException
{
    public MissingBaseLayerException(IReadOnlyList<string> digests)
        : base(-1, $"the current image lacks {digests.Count} base layer(s) the deep delta needs: {string.Join(", ", digests)}; " +
                   "install a full image instead, or restore the image the delta was generated from")
    {
        Digests = digests;
    }

    public IReadOnlyList<string> Digests { get; }
}

/// <summary>
/// Deep-delta reconstruction. A deep delta is a tar (entries usually prefixed <c>./</c>) of the new
/// image's saved layout in which layers are replaced (see sub-module-api.md "Deep delta payloads"):
/// <list type="bullet">
/// <item>docker-archive: <c>&lt;id&gt;/layer.tar.vcdiff</c> + <c>layer.tar.current.sha256sum</c> +
/// <c>layer.tar.new.sha256sum</c> for a changed layer; <c>&lt;id&gt;/layer.tar.sha256sum</c> (and no
/// <c>layer.tar</c>) for an unchanged one;</item>
/// <item>OCI: <c>blobs/sha256/&lt;d&gt;.vcdiff</c> + <c>&lt;d&gt;.source</c> naming the base blob; a layer
/// blob referenced by the manifests but absent from the payload is taken from the base.</item>
/// </list>
/// <para>
/// Usage: <c>var plan = DeepDelta.Inspect(payload, ct)</c> then
/// <c>plan.MissingBaseDigests(baseArchive.Contains)</c> for the install pre-check (before anything is
/// stopped); <c>DeepDelta.Reconstruct(payload, baseArchive.OpenLayer, output, limits, ct)</c> writes a
/// complete image tar that <c>docker image load</c> accepts, including the unchanged layers taken from
/// the base (so the load does not depend on the engine still holding them). For an OCI payload without
/// <c>manifest.json</c>, one is added so that Docker 20.10 can load it. The payload stream must be
/// seekable; the output is written forward only (it may be a pipe into <c>docker load</c>).
/// </para>
/// <para>
/// Every layer written is checked against its expected SHA-256; a mismatch raises
/// <see cref="DeltaFormatException"/> naming the layer, and the output must then be discarded.
/// A base layer that is missing raises <see cref="MissingBaseLayerException"/> before any output.
/// </para>
/// </summary>
public static class DeepDelta
{
    private const int MaxSmallFile = 16 << 20;

    /// <summary>Reads the payload's structure and what it needs from the base image.</summary>
    /// <exception cref="DeltaFormatException">The payload is not a valid deep delta.</exception>
    public static DeepDeltaPlan Inspect(Stream deltaTar, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(deltaTar);
        var items = TarIndex.Read(deltaTar, "deep delta payload", ct);
        return BuildPlan(deltaTar, items, out _).Plan;
    }

    /// <summary>
    /// The size each file of the payload has in the reconstructed image, without decoding: a <c>.vcdiff</c> entry's
    /// target size (from its header) under the layer path it decodes to, every other file's own size.
    /// </summary>
    /// <exception cref="DeltaFormatException">The payload is not a readable tar or a VCDIFF header is bad.</exception>
    public static IReadOnlyDictionary<string, long> PayloadFileSizes(Stream deltaTar, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(deltaTar);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var it in TarIndex.Read(deltaTar, "deep delta payload", ct).Where(i => i.IsFile))
        {
            if (it.Path.EndsWith(".vcdiff", StringComparison.Ordinal))
            {
                using var vcdiff = new SubStream(deltaTar, it.DataStart, it.Size);
                sizes[it.Path[..^7]] = VcdiffDecoder.ReadTargetSize(vcdiff, null, ct);
            }
            else
            {
                sizes.TryAdd(it.Path, it.Size);
            }
        }

        return sizes;
    }

    /// <summary>Reconstructs the new image tar from a payload and the base image's layers.</summary>
    /// <param name="deltaTar">The deep-delta payload (seekable).</param>
    /// <param name="openBaseLayer">Opens a base layer file by SHA-256 (hex), seekable; null when absent. Streams are disposed here.</param>
    /// <param name="output">Receives the image tar.</param>
    /// <param name="limits">VCDIFF limits, or null for defaults.</param>
    /// <param name="ct">Cancellation.</param>
    /// <returns>The plan that was executed.</returns>
    public static DeepDeltaPlan Reconstruct(Stream deltaTar, Func<string, Stream?> openBaseLayer, Stream output, DeltaLimits? limits, CancellationToken ct) =>
        Reconstruct(deltaTar, openBaseLayer, output, limits, null, ct);

    /// <summary>As <see cref="Reconstruct(Stream, Func{string, Stream?}, Stream, DeltaLimits?, CancellationToken)"/>, but an
    /// unchanged layer for which <paramref name="omit"/> answers true is not written at all: the manifest still lists it,
    /// and <c>docker load</c> takes it from the engine, which must hold the same layer chain (the base image does when the
    /// layers below it are the base's too). Nothing of such a layer is read.</summary>
    public static DeepDeltaPlan Reconstruct(Stream deltaTar, Func<string, Stream?> openBaseLayer, Stream output, DeltaLimits? limits,
        Func<DeepDeltaLayer, bool>? omit, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(deltaTar);
        ArgumentNullException.ThrowIfNull(openBaseLayer);
        ArgumentNullException.ThrowIfNull(output);
        var items = TarIndex.Read(deltaTar, "deep delta payload", ct);
        var built = BuildPlan(deltaTar, items, out var byPath);
        var plan = built.Plan;

        // Pre-check: every base layer must be there before a single byte is written.
        var needed = plan.Layers.Where(l => l.BaseSha256 is not null && !(l.Origin == LayerOrigin.FromBase && omit?.Invoke(l) == true))
            .Select(l => l.BaseSha256!).ToHashSet(StringComparer.Ordinal);
        var missing = plan.MissingBaseDigests(d =>
        {
            if (!needed.Contains(d))
            {
                return true;
            }

            using var s = openBaseLayer(d);
            return s is not null;
        });
        if (missing.Count > 0)
        {
            throw new MissingBaseLayerException(missing);
        }

        var layersByPath = plan.Layers.ToDictionary(l => l.Path, StringComparer.Ordinal);
        string prefix = items.Count > 0 && items[0].Name.StartsWith("./", StringComparison.Ordinal) ? "./" : "";
        var tar = new TarOut(output);
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var it in items)
        {
            ct.ThrowIfCancellationRequested();
            string p = it.Path;
            if (built.Skip.Contains(p))
            {
                continue;
            }
            if (p.EndsWith(".vcdiff", StringComparison.Ordinal) && layersByPath.TryGetValue(p[..^7], out var dl) && dl.Origin == LayerOrigin.Decoded)
            {
                WriteDecoded(tar, deltaTar, it, it.Name[..^7], dl, openBaseLayer, limits, ct);
                written.Add(dl.Path);
                continue;
            }
            if (plan.Layout == DeepDeltaLayout.DockerArchive && p.EndsWith("/layer.tar.sha256sum", StringComparison.Ordinal)
                && layersByPath.TryGetValue(p[..^10], out var bl) && bl.Origin == LayerOrigin.FromBase)
            {
                if (omit?.Invoke(bl) == true)
                {
                    written.Add(bl.Path);
                    continue;
                }

                WriteFromBase(tar, it.Name[..^10], bl, openBaseLayer, ct);
                written.Add(bl.Path);
                continue;
            }
            tar.CopyRaw(deltaTar, it, ct);
            written.Add(p);
        }
        foreach (var l in plan.Layers)
        {
            if (l.Origin == LayerOrigin.FromBase && !written.Contains(l.Path) && omit?.Invoke(l) != true)
            {
                WriteFromBase(tar, prefix + l.Path, l, openBaseLayer, ct);
                written.Add(l.Path);
            }
        }
        if (built.SynthesizedManifest is not null && !byPath.ContainsKey("manifest.json"))
        {
            tar.WriteFileHeader(prefix + "manifest.json", built.SynthesizedManifest.Length);
            tar.Stream.Write(built.SynthesizedManifest);
            tar.Pad(built.SynthesizedManifest.Length);
        }
        tar.Finish();
        return plan;
    }

    /// <summary>Convenience: reconstructs from files (payload, <c>docker save</c> of the current image) into a file.</summary>
    public static DeepDeltaPlan ReconstructFile(string deltaTarPath, string baseImageTarPath, string outputPath, DeltaLimits? limits, CancellationToken ct)
    {
        using var baseArchive = BaseImageArchive.Open(baseImageTarPath, ct);
        using var payload = new FileStream(deltaTarPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
        using var output = new FileStream(outputPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        return Reconstruct(payload, baseArchive.OpenLayer, output, limits, ct);
    }

    private static void WriteDecoded(TarOut tar, Stream deltaTar, TarItem vcdiff, string outName, DeepDeltaLayer layer,
        Func<string, Stream?> openBaseLayer, DeltaLimits? limits, CancellationToken ct)
    {
        long size;
        using (var probe = new SubStream(deltaTar, vcdiff.DataStart, vcdiff.Size))
        {
            try
            {
                size = VcdiffDecoder.ReadTargetSize(probe, limits, ct);
            }
            catch (DeltaFormatException e)
            {
                throw new DeltaFormatException(e.Offset, $"layer {layer.Path}: {e.Reason}", e);
            }
        }
        using var baseLayer = openBaseLayer(layer.BaseSha256!) ?? throw new MissingBaseLayerException([layer.BaseSha256!]);
        tar.WriteFileHeader(outName, size);
        using var hashing = new HashingWriteStream(tar.Stream);
        using (var delta = new SubStream(deltaTar, vcdiff.DataStart, vcdiff.Size))
        {
            try
            {
                VcdiffDecoder.Decode(baseLayer, delta, hashing, limits, ct);
            }
            catch (DeltaFormatException e)
            {
                throw new DeltaFormatException(e.Offset, $"layer {layer.Path} (delta against base layer {layer.BaseSha256}): {e.Reason}", e);
            }
        }
        hashing.Flush();
        if (hashing.Count != size)
        {
            throw new DeltaFormatException(-1, $"layer {layer.Path}: decoded {hashing.Count} bytes, the delta declares {size}");
        }
        string actual = hashing.HexDigest();
        if (actual != layer.Sha256)
        {
            throw new DeltaFormatException(-1, $"layer {layer.Path}: reconstructed sha256 {actual} differs from the expected {layer.Sha256} (wrong base layer or corrupted delta)");
        }
        tar.Pad(size);
    }

    private static void WriteFromBase(TarOut tar, string outName, DeepDeltaLayer layer, Func<string, Stream?> openBaseLayer, CancellationToken ct)
    {
        using var baseLayer = openBaseLayer(layer.BaseSha256!) ?? throw new MissingBaseLayerException([layer.BaseSha256!]);
        long size = baseLayer.Length;
        tar.WriteFileHeader(outName, size);
        using var hashing = new HashingWriteStream(tar.Stream);
        byte[] buf = new byte[1 << 16];
        long left = size;
        while (left > 0)
        {
            ct.ThrowIfCancellationRequested();
            int n = baseLayer.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0)
            {
                throw new DeltaFormatException(-1, $"base layer {layer.BaseSha256} ended early");
            }
            hashing.Write(buf, 0, n);
            left -= n;
        }
        string actual = hashing.HexDigest();
        if (actual != layer.Sha256)
        {
            throw new DeltaFormatException(-1, $"layer {layer.Path}: base layer content has sha256 {actual}, expected {layer.Sha256}");
        }
        tar.Pad(size);
    }

    private sealed record Built(DeepDeltaPlan Plan, HashSet<string> Skip, byte[]? SynthesizedManifest);

    private static Built BuildPlan(Stream tarStream, List<TarItem> items, out Dictionary<string, TarItem> byPath)
    {
        byPath = new Dictionary<string, TarItem>(StringComparer.Ordinal);
        foreach (var it in items)
        {
            if (!byPath.TryAdd(it.Path, it) && it.Type != '5')
            {
                throw new DeltaFormatException(it.HeaderStart, $"deep delta payload: duplicate member {it.Path}");
            }
        }
        bool oci = items.Any(i => i.Path.StartsWith("blobs/sha256/", StringComparison.Ordinal))
            && !items.Any(i => i.Path.EndsWith("/layer.tar.vcdiff", StringComparison.Ordinal) || i.Path.EndsWith("/layer.tar.sha256sum", StringComparison.Ordinal));
        return oci ? BuildOci(tarStream, byPath) : BuildDockerArchive(tarStream, byPath);
    }

    private static string ReadSum(Stream tarStream, Dictionary<string, TarItem> byPath, string path, string forWhat)
    {
        if (!byPath.TryGetValue(path, out var it) || !it.IsFile)
        {
            throw new DeltaFormatException(-1, $"deep delta payload: {forWhat} needs {path}, which is missing");
        }
        if (it.Size > 4096)
        {
            throw new DeltaFormatException(it.DataStart, $"deep delta payload: {path} is too large for a checksum file");
        }
        string text = Encoding.UTF8.GetString(BaseImageArchive.ReadAll(tarStream, it));
        return Digests.ParseSha256(text)
            ?? throw new DeltaFormatException(it.DataStart, $"deep delta payload: {path} does not hold a sha256 digest");
    }

    private static Built BuildDockerArchive(Stream tarStream, Dictionary<string, TarItem> byPath)
    {
        var layers = new List<DeepDeltaLayer>();
        var skip = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (p, it) in byPath)
        {
            if (p.EndsWith("/layer.tar.vcdiff", StringComparison.Ordinal) || p == "layer.tar.vcdiff")
            {
                string layer = p[..^7];
                if (byPath.ContainsKey(layer))
                {
                    throw new DeltaFormatException(it.HeaderStart, $"deep delta payload: {layer} is both shipped and delta-encoded");
                }
                string cur = ReadSum(tarStream, byPath, layer + ".current.sha256sum", p);
                string nw = ReadSum(tarStream, byPath, layer + ".new.sha256sum", p);
                skip.Add(layer + ".current.sha256sum");
                skip.Add(layer + ".new.sha256sum");
                layers.Add(new DeepDeltaLayer(layer, nw, LayerOrigin.Decoded, cur));
            }
            else if (p.EndsWith("/layer.tar.sha256sum", StringComparison.Ordinal) || p == "layer.tar.sha256sum")
            {
                string layer = p[..^10];
                if (byPath.ContainsKey(layer) || byPath.ContainsKey(layer + ".vcdiff"))
                {
                    // A shipped or delta-encoded layer wins; the marker is redundant.
                    skip.Add(p);
                    continue;
                }
                string sum = ReadSum(tarStream, byPath, p, p);
                layers.Add(new DeepDeltaLayer(layer, sum, LayerOrigin.FromBase, sum));
            }
            else if ((p.EndsWith("/layer.tar", StringComparison.Ordinal) || p == "layer.tar") && it.IsFile)
            {
                layers.Add(new DeepDeltaLayer(p, "", LayerOrigin.Shipped, null));
            }
        }
        if (!byPath.TryGetValue("manifest.json", out var mf) || !mf.IsFile)
        {
            throw new DeltaFormatException(-1, "deep delta payload: manifest.json is missing (not a docker-archive image layout)");
        }
        var known = layers.Select(l => l.Path).ToHashSet(StringComparer.Ordinal);
        foreach (string l in ManifestJsonLayers(tarStream, mf))
        {
            if (known.Contains(l))
            {
                continue;
            }
            if (byPath.TryGetValue(l, out var li) && (li.Type == '2' || li.Type == '1'))
            {
                continue; // duplicate layer written as a link to another layer.tar
            }
            throw new DeltaFormatException(-1, $"deep delta payload: manifest.json lists layer {l}, but the payload neither ships it nor references a base layer for it");
        }
        layers.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return new Built(new DeepDeltaPlan(DeepDeltaLayout.DockerArchive, layers), skip, null);
    }

    private static List<string> ManifestJsonLayers(Stream tarStream, TarItem mf)
    {
        if (mf.Size > MaxSmallFile)
        {
            throw new DeltaFormatException(mf.DataStart, "deep delta payload: manifest.json is too large");
        }
        var result = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(BaseImageArchive.ReadAll(tarStream, mf));
            foreach (var img in doc.RootElement.EnumerateArray())
            {
                if (img.TryGetProperty("Layers", out var ls))
                {
                    foreach (var l in ls.EnumerateArray())
                    {
                        result.Add(TarIndex.Normalize(l.GetString() ?? ""));
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new DeltaFormatException(mf.DataStart, $"deep delta payload: manifest.json is not valid: {e.Message}");
        }
        return result;
    }

    private static Built BuildOci(Stream tarStream, Dictionary<string, TarItem> byPath)
    {
        var layers = new List<DeepDeltaLayer>();
        var skip = new HashSet<string>(StringComparer.Ordinal);
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (p, it) in byPath)
        {
            if (!p.StartsWith("blobs/sha256/", StringComparison.Ordinal) || !it.IsFile)
            {
                continue;
            }
            string name = p[13..];
            if (name.EndsWith(".vcdiff", StringComparison.Ordinal) && Digests.IsSha256Hex(name[..^7]))
            {
                string d = name[..^7].ToLowerInvariant();
                if (byPath.ContainsKey("blobs/sha256/" + d))
                {
                    throw new DeltaFormatException(it.HeaderStart, $"deep delta payload: blob {d} is both shipped and delta-encoded");
                }
                string srcPath = "blobs/sha256/" + d + ".source";
                if (!byPath.TryGetValue(srcPath, out var si) || !si.IsFile || si.Size > 4096)
                {
                    throw new DeltaFormatException(it.HeaderStart, $"deep delta payload: {p} needs {srcPath}, which is missing");
                }
                string text = Encoding.UTF8.GetString(BaseImageArchive.ReadAll(tarStream, si)).Trim();
                string last = text.Split('/', ':').Last().Trim();
                string src = Digests.ParseSha256(last)
                    ?? throw new DeltaFormatException(si.DataStart, $"deep delta payload: {srcPath} does not name a base blob (\"{text}\")");
                skip.Add(srcPath);
                layers.Add(new DeepDeltaLayer("blobs/sha256/" + d, d, LayerOrigin.Decoded, src));
                present.Add(d);
            }
            else if (Digests.IsSha256Hex(name))
            {
                present.Add(name.ToLowerInvariant());
            }
        }

        // Layers the manifests reference but the payload does not carry come from the base.
        var (layerDigests, synthesized) = OciLayers(tarStream, byPath);
        foreach (string d in layerDigests)
        {
            if (!present.Contains(d))
            {
                layers.Add(new DeepDeltaLayer("blobs/sha256/" + d, d, LayerOrigin.FromBase, d));
                present.Add(d);
            }
            else if (byPath.ContainsKey("blobs/sha256/" + d))
            {
                layers.Add(new DeepDeltaLayer("blobs/sha256/" + d, d, LayerOrigin.Shipped, null));
            }
        }
        layers.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return new Built(new DeepDeltaPlan(DeepDeltaLayout.Oci, layers), skip, synthesized);
    }

    /// <summary>Layer digests in manifest order, and a Docker-style manifest.json if the payload has none.</summary>
    private static (List<string> Layers, byte[]? Synthesized) OciLayers(Stream tarStream, Dictionary<string, TarItem> byPath)
    {
        var layers = new List<string>();
        if (byPath.TryGetValue("manifest.json", out var mf) && mf.IsFile)
        {
            foreach (string l in ManifestJsonLayers(tarStream, mf))
            {
                string name = l.StartsWith("blobs/sha256/", StringComparison.Ordinal) ? l[13..] : l;
                layers.Add(Digests.ParseSha256(name)
                    ?? throw new DeltaFormatException(mf.DataStart, $"deep delta payload: manifest.json layer {l} is not a blobs/sha256 path"));
            }
            return (layers, null);
        }
        if (!byPath.TryGetValue("index.json", out var ix) || !ix.IsFile || ix.Size > MaxSmallFile)
        {
            throw new DeltaFormatException(-1, "deep delta payload: neither manifest.json nor index.json found (not an OCI image layout)");
        }
        var images = new List<(string Config, List<string> Layers, string? Name)>();
        try
        {
            using var index = JsonDocument.Parse(BaseImageArchive.ReadAll(tarStream, ix));
            WalkIndex(tarStream, byPath, index.RootElement, images, 0);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DeltaFormatException(ix.DataStart, $"deep delta payload: index.json or a manifest is not valid: {e.Message}");
        }
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartArray();
            foreach (var (config, ls, name) in images)
            {
                w.WriteStartObject();
                w.WriteString("Config", "blobs/sha256/" + config);
                w.WritePropertyName("RepoTags");
                if (name is not null)
                {
                    w.WriteStartArray();
                    w.WriteStringValue(name);
                    w.WriteEndArray();
                }
                else
                {
                    w.WriteNullValue();
                }
                w.WriteStartArray("Layers");
                foreach (string l in ls)
                {
                    w.WriteStringValue("blobs/sha256/" + l);
                    layers.Add(l);
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return (layers, ms.ToArray());
    }

    private static void WalkIndex(Stream tarStream, Dictionary<string, TarItem> byPath, JsonElement index,
        List<(string, List<string>, string?)> images, int depth)
    {
        if (depth > 4)
        {
            throw new DeltaFormatException(-1, "deep delta payload: OCI index nesting too deep");
        }
        foreach (var m in index.GetProperty("manifests").EnumerateArray())
        {
            string digest = Digests.ParseSha256(m.GetProperty("digest").GetString() ?? "")
                ?? throw new DeltaFormatException(-1, "deep delta payload: index entry without a sha256 digest");
            if (!byPath.TryGetValue("blobs/sha256/" + digest, out var blob) || blob.Size > MaxSmallFile)
            {
                throw new DeltaFormatException(-1, $"deep delta payload: manifest blob {digest} is missing");
            }
            using var doc = JsonDocument.Parse(BaseImageArchive.ReadAll(tarStream, blob));
            var root = doc.RootElement;
            if (root.TryGetProperty("manifests", out _))
            {
                WalkIndex(tarStream, byPath, root, images, depth + 1);
                continue;
            }
            string config = Digests.ParseSha256(root.GetProperty("config").GetProperty("digest").GetString() ?? "")
                ?? throw new DeltaFormatException(blob.DataStart, $"deep delta payload: manifest {digest} has no config digest");
            var ls = new List<string>();
            foreach (var l in root.GetProperty("layers").EnumerateArray())
            {
                ls.Add(Digests.ParseSha256(l.GetProperty("digest").GetString() ?? "")
                    ?? throw new DeltaFormatException(blob.DataStart, $"deep delta payload: manifest {digest} has a layer without a sha256 digest"));
            }
            string? name = null;
            if (m.TryGetProperty("annotations", out var ann) && ann.TryGetProperty("io.containerd.image.name", out var n))
            {
                name = n.GetString();
            }
            images.Add((config, ls, name));
        }
    }
}
