using System.Text.Json;
using AppModule.Delta.Tar;

namespace AppModule.Delta;

/// <summary>The layer order of a saved image (or deep-delta payload, which keeps the new image's manifest.json and
/// config): each manifest layer path with its diff ID, from a seekable docker-archive tar.</summary>
public sealed record SavedLayout(IReadOnlyList<string> LayerPaths, IReadOnlyList<string> DiffIds)
{
    /// <summary>Reads manifest.json and the config it names; null when the tar has no single-image docker-archive manifest.</summary>
    public static SavedLayout? Read(Stream tar, string what, CancellationToken ct)
    {
        var items = TarIndex.Read(tar, what, ct);
        var byPath = new Dictionary<string, TarItem>(StringComparer.Ordinal);
        foreach (var it in items)
        {
            byPath[it.Path] = it;
        }

        if (!byPath.TryGetValue("manifest.json", out var m) || !m.IsFile || m.Size > (16 << 20))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(BaseImageArchive.ReadAll(tar, m));
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
            {
                return null;
            }

            var img = doc.RootElement[0];
            var config = TarIndex.Normalize(img.GetProperty("Config").GetString() ?? "");
            var layers = img.GetProperty("Layers").EnumerateArray().Select(l => TarIndex.Normalize(l.GetString() ?? "")).ToList();
            if (!byPath.TryGetValue(config, out var c) || !c.IsFile || c.Size > (16 << 20))
            {
                return null;
            }

            var diffIds = VerifiedImageWriter.DiffIds(BaseImageArchive.ReadAll(tar, c));
            return diffIds.Count == layers.Count ? new SavedLayout(layers, diffIds) : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Manifest layer paths of this (new) image whose whole layer chain, from the bottom up to and including
    /// them, is the <paramref name="base"/> image's too: the engine holding the base holds those chains, so
    /// <c>docker load</c> needs no data for them.</summary>
    public IReadOnlySet<string> SharedChainWith(SavedLayout @base)
    {
        ArgumentNullException.ThrowIfNull(@base);
        var shared = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < LayerPaths.Count && i < @base.DiffIds.Count && DiffIds[i] == @base.DiffIds[i]; i++)
        {
            shared.Add(LayerPaths[i]);
        }

        return shared;
    }
}
