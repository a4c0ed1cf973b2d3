using System.Text.Json;
using AppModule.Delta.Tar;

namespace AppModule.Delta;

/// <summary>
/// The current (base) image as saved by <c>docker image save</c> (docker-archive layout, as written by
/// Docker 20.10: <c>&lt;id&gt;/layer.tar</c>) or as an OCI image layout tar (<c>blobs/sha256/&lt;d&gt;</c>),
/// indexed by the SHA-256 of each layer file. Layers are served as seekable views into the tar
/// file; nothing is extracted.
/// <para>
/// Usage: <c>using var b = BaseImageArchive.Open("/tmp/current.tar", ct);</c> then pass
/// <c>b.OpenLayer</c> to <see cref="DeepDelta.Reconstruct"/>. Layer files of the docker-archive
/// layout are hashed once at open (one sequential read of the layers); OCI blobs are indexed by
/// their content-addressed name, and every layer taken from here is re-hashed when it is used.
/// </para>
/// </summary>
public sealed class BaseImageArchive : IDisposable
{
    private readonly FileStream _file;
    private readonly Dictionary<string, TarItem> _layers;

    private BaseImageArchive(FileStream file, Dictionary<string, TarItem> layers)
    {
        _file = file;
        _layers = layers;
    }

    /// <summary>SHA-256 (hex) of every layer file in the archive.</summary>
    public IReadOnlyCollection<string> LayerDigests => _layers.Keys;

    /// <summary>True when a layer file with this SHA-256 is in the archive.</summary>
    public bool Contains(string sha256Hex) => _layers.ContainsKey(sha256Hex.ToLowerInvariant());

    /// <summary>The size of the layer file with this SHA-256, or null when the archive has none.</summary>
    public long? SizeOf(string sha256Hex) => _layers.TryGetValue((sha256Hex ?? string.Empty).ToLowerInvariant(), out var item) ? item.Size : null;

    /// <summary>Opens the layer file with this SHA-256 (seekable, read-only), or returns null.</summary>
    public Stream? OpenLayer(string sha256Hex)
    {
        ArgumentNullException.ThrowIfNull(sha256Hex);
        if (!_layers.TryGetValue(sha256Hex.ToLowerInvariant(), out var item))
        {
            return null;
        }
        var f = new FileStream(_file.Name, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
        return new SubStream(f, item.DataStart, item.Size, ownsInner: true);
    }

    /// <summary>Indexes a saved image tar.</summary>
    /// <exception cref="DeltaFormatException">The file is not a readable tar archive.</exception>
    public static BaseImageArchive Open(string tarPath, CancellationToken ct)
    {
        var file = new FileStream(tarPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
        try
        {
            var items = TarIndex.Read(file, $"base image archive {tarPath}", ct);
            var byPath = new Dictionary<string, TarItem>(StringComparer.Ordinal);
            foreach (var it in items)
            {
                byPath[it.Path] = it;
            }
            var manifestLayers = new HashSet<string>(StringComparer.Ordinal);
            if (byPath.TryGetValue("manifest.json", out var m) && m.IsFile && m.Size < (16 << 20))
            {
                try
                {
                    using var doc = JsonDocument.Parse(ReadAll(file, m));
                    foreach (var img in doc.RootElement.EnumerateArray())
                    {
                        if (img.TryGetProperty("Layers", out var ls))
                        {
                            foreach (var l in ls.EnumerateArray())
                            {
                                manifestLayers.Add(TarIndex.Normalize(l.GetString() ?? ""));
                            }
                        }
                    }
                }
                catch (JsonException)
                {
                    // Not fatal: layer files are also found by name.
                }
                catch (InvalidOperationException)
                {
                }
            }
            var layers = new Dictionary<string, TarItem>(StringComparer.Ordinal);
            foreach (var it in items)
            {
                if (!it.IsFile)
                {
                    continue;
                }
                string p = it.Path;
                if (p.StartsWith("blobs/sha256/", StringComparison.Ordinal) && Digests.IsSha256Hex(p[13..]))
                {
                    layers[p[13..].ToLowerInvariant()] = it;
                }
                else if (p == "layer.tar" || p.EndsWith("/layer.tar", StringComparison.Ordinal) || manifestLayers.Contains(p))
                {
                    using var s = new SubStream(file, it.DataStart, it.Size);
                    layers[Digests.Sha256Hex(s)] = it;
                }
            }
            return new BaseImageArchive(file, layers);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    internal static byte[] ReadAll(Stream archive, TarItem item)
    {
        var buf = new byte[item.Size];
        archive.Position = item.DataStart;
        archive.ReadExactly(buf);
        return buf;
    }

    public void Dispose() => _file.Dispose();
}
