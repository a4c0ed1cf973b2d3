using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using AppModule.Artifacts;
using AppModule.Core.Archives;

namespace ArtifactGen;

/// <summary>
/// Deep deltas (per layer) in the reference's on-disk layout, but pairing layers by content:
/// docker-archive: a new layer whose file sha256 equals any current layer's is replaced by
/// <c>layer.tar.sha256sum</c> (and omitted); a changed layer becomes <c>layer.tar.vcdiff</c> +
/// <c>layer.tar.current.sha256sum</c> + <c>layer.tar.new.sha256sum</c>, encoded against the current
/// layer sharing the most file content (by path and size), whatever its position. OCI layout: every
/// layer blob becomes <c>&lt;blob&gt;.vcdiff</c> + <c>&lt;blob&gt;.source</c> naming the chosen current blob
/// (an identical blob when there is one). Any layer count on either side works. The result is a tar of
/// the new image directory with entries "./...".
/// </summary>
public static class DeepDeltaEncoder
{
    /// <summary>What the deep delta carries for one layer of the new image: <c>unchanged</c> (taken from the
    /// current image on the device), <c>delta</c> (a VCDIFF of <paramref name="DeltaBytes"/> against the current
    /// layer <paramref name="Against"/>), or <c>whole</c> (the layer itself, because its delta was not smaller
    /// than <c>--delta-max-ratio</c> times the layer, or there is no current layer to encode against).</summary>
    public sealed record LayerChoice(string Path, string Sha256, long Bytes, string Choice, long? DeltaBytes, string? Against);

    public sealed record Stats(int Layers, int Unchanged, int Encoded, int Shipped, IReadOnlyList<LayerChoice> Choices)
    {
        /// <summary>Nothing of the current image is used: a full image does the same without needing the base on the device.</summary>
        public bool AllWhole => Layers > 0 && Shipped == Layers;
    }

    public static async Task<Stats> CreateAsync(string currentTar, SavedFormat currentFormat, string newTar, SavedFormat newFormat,
        string workDir, string outputTar, CancellationToken ct, double maxRatio = 1.0)
    {
        if (currentFormat != newFormat)
            throw new DeltaException($"cannot create a deep delta between images of different formats ({currentFormat} and {newFormat}): save both the same way, or drop --deep-delta");
        var cur = Path.Combine(workDir, "current-image");
        var nw = Path.Combine(workDir, "new-image");
        Directory.CreateDirectory(cur);
        Directory.CreateDirectory(nw);
        // TarFile extracts devices and FIFOs as such and throws NotSupportedException at a sparse file: the entry types are checked first (headers only).
        await SavedImage.CheckEntriesAsync(currentTar, ct).ConfigureAwait(false);
        await SavedImage.CheckEntriesAsync(newTar, ct).ConfigureAwait(false);
        await TarFile.ExtractToDirectoryAsync(currentTar, cur, overwriteFiles: false, ct).ConfigureAwait(false);
        await TarFile.ExtractToDirectoryAsync(newTar, nw, overwriteFiles: false, ct).ConfigureAwait(false);
        var curLayers = Layers(cur, currentFormat);
        var newLayers = Layers(nw, newFormat).Distinct(StringComparer.Ordinal).ToList();
        var curSums = new Dictionary<string, string>(StringComparer.Ordinal); // sum -> rel path
        var curInfo = new List<(string Rel, string Sum, long Size, Dictionary<string, long> Files)>();
        foreach (var rel in curLayers.Distinct(StringComparer.Ordinal))
        {
            var full = Path.Combine(cur, rel);
            var sum = await Sha256FileAsync(full, ct).ConfigureAwait(false);
            curSums.TryAdd(sum, rel);
            curInfo.Add((rel, sum, new FileInfo(full).Length, await LayerFilesAsync(full, ct).ConfigureAwait(false)));
        }
        int unchanged = 0, encoded = 0, shipped = 0;
        var choices = new List<LayerChoice>();
        foreach (var rel in newLayers)
        {
            var full = Path.Combine(nw, rel);
            if (new FileInfo(full).LinkTarget is not null) continue; // docker's dedup link to another layer dir: kept as is
            var sum = await Sha256FileAsync(full, ct).ConfigureAwait(false);
            long layerBytes = new FileInfo(full).Length;
            if (newFormat == SavedFormat.DockerArchive && curSums.TryGetValue(sum, out var identical))
            {
                await File.WriteAllTextAsync(full + ".sha256sum", sum + "\n", ct).ConfigureAwait(false);
                File.Delete(full);
                unchanged++;
                choices.Add(new LayerChoice(rel, sum, layerBytes, "unchanged", null, identical));
                continue;
            }
            if (curInfo.Count == 0)
            {
                shipped++;
                choices.Add(new LayerChoice(rel, sum, layerBytes, "whole", null, null));
                continue;
            }
            (string Rel, string Sum, long Size, Dictionary<string, long> Files) best;
            if (curSums.TryGetValue(sum, out var same)) best = curInfo.First(c => c.Rel == same);
            else
            {
                var files = await LayerFilesAsync(full, ct).ConfigureAwait(false);
                long size = new FileInfo(full).Length;
                best = curInfo.OrderByDescending(c => Score(files, c.Files)).ThenBy(c => Math.Abs(c.Size - size)).ThenBy(c => c.Rel, StringComparer.Ordinal).First();
            }
            var tmp = Path.Combine(workDir, "layer.vcdiff.tmp");
            await Xdelta.EncodeAsync(workDir, Path.Combine(cur, best.Rel), full, tmp, ct).ConfigureAwait(false);
            long deltaBytes = new FileInfo(tmp).Length;
            if (same is null && !WorthIt(deltaBytes, layerBytes, maxRatio))
            {
                // The delta would ship as much as the layer (random or already compressed content): the layer goes
                // whole, which the device loads as is, without the current layer and without decoding.
                File.Delete(tmp);
                shipped++;
                choices.Add(new LayerChoice(rel, sum, layerBytes, "whole", deltaBytes, best.Rel));
                continue;
            }
            File.Move(tmp, full + ".vcdiff");
            choices.Add(new LayerChoice(rel, sum, layerBytes, same is null ? "delta" : "unchanged", deltaBytes, best.Rel));
            if (newFormat == SavedFormat.DockerArchive)
            {
                await File.WriteAllTextAsync(full + ".current.sha256sum", best.Sum + "\n", ct).ConfigureAwait(false);
                await File.WriteAllTextAsync(full + ".new.sha256sum", sum + "\n", ct).ConfigureAwait(false);
            }
            else
            {
                await File.WriteAllTextAsync(full + ".source", best.Rel + "\n", ct).ConfigureAwait(false);
            }
            File.Delete(full);
            if (same is not null) unchanged++; else encoded++;
        }
        await SavedImage.TarDirectoryAsync(nw, outputTar, prefix: "./", ct).ConfigureAwait(false);
        Directory.Delete(cur, true);
        Directory.Delete(nw, true);
        return new Stats(newLayers.Count, unchanged, encoded, shipped, choices);
    }

    /// <summary>A delta of <paramref name="deltaBytes"/> is worth shipping instead of <paramref name="wholeBytes"/>
    /// only when it is smaller than <paramref name="maxRatio"/> times it (default 1: strictly smaller).</summary>
    public static bool WorthIt(long deltaBytes, long wholeBytes, double maxRatio) => deltaBytes < wholeBytes * maxRatio;

    private static long Score(Dictionary<string, long> a, Dictionary<string, long> b)
    {
        long s = 0;
        foreach (var (k, v) in a)
            if (b.TryGetValue(k, out var w)) s += Math.Min(v, w) + 1;
        return s;
    }

    /// <summary>Relative paths of the layer files, in manifest order.</summary>
    public static List<string> Layers(string dir, SavedFormat format)
    {
        if (format == SavedFormat.DockerArchive)
        {
            using var m = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
            var arr = m.RootElement.EnumerateArray().ToList();
            if (arr.Count != 1) throw new DeltaException($"a saved image holds {arr.Count} images; a deep delta needs exactly one");
            return arr[0].GetProperty("Layers").EnumerateArray().Select(l => Safe(l.GetString()!)).ToList();
        }
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        var manifests = index.RootElement.GetProperty("manifests").EnumerateArray().ToList();
        if (manifests.Count != 1) throw new DeltaException($"an OCI layout holds {manifests.Count} manifests; a deep delta needs exactly one");
        var mpath = ImageFileSource.BlobPath(manifests[0].GetProperty("digest").GetString()!);
        using var man = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, mpath)));
        return man.RootElement.GetProperty("layers").EnumerateArray().Select(l => ImageFileSource.BlobPath(l.GetProperty("digest").GetString()!)).ToList();
    }

    private static string Safe(string rel)
    {
        if (rel.StartsWith('/') || rel.Split('/').Any(p => p == ".."))
            throw new DeltaException($"saved image names a layer outside itself: \"{rel}\"");
        return rel;
    }

    public static async Task<string> Sha256FileAsync(string path, CancellationToken ct)
    {
        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(fs, ct).ConfigureAwait(false));
    }

    /// <summary>path → size of the regular files inside a layer (tar, or gzip'd tar for OCI blobs).</summary>
    private static async Task<Dictionary<string, long>> LayerFilesAsync(string path, CancellationToken ct)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
            var c = await PayloadArchive.DetectAsync(fs, path, ct).ConfigureAwait(false);
            await using var s = c == ArtifactCompression.Gzip ? new GZipStream(fs, CompressionMode.Decompress, leaveOpen: true) : (Stream)fs;
            await using var tar = new CheckedTarReader(s, path, TarEntryPolicy.FilesystemLayer, m => new InvalidDataException(m), leaveOpen: true);
            while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
                d[PayloadArchive.Normalize(e.Name)] = e.Length;
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            // Not a tar we can list (e.g. zstd layer): pair by size only.
        }
        return d;
    }
}
