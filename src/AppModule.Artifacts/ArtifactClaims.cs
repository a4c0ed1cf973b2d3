using System.Security.Cryptography;
using System.Text;
using AppModule.Core.Archives;
using AppModule.Core.Images;
using AppModule.Core.Policy;

namespace AppModule.Artifacts;

/// <summary>
/// What a saved image (<c>docker save</c>: docker-archive, or the OCI layout with its manifest.json)
/// carries: the image ID (sha256 of the config blob manifest.json names) and the platform its config
/// declares.
/// </summary>
public sealed record SavedImage(string Id, string? Os, string? Architecture, string? Variant)
{
    /// <summary>
    /// The image's layers in order (config <c>rootfs.diff_ids</c>), each with the size of its tar in the
    /// archive; empty when the config names none. In a deep delta a changed layer is
    /// <see cref="LayerSource.Delta"/> and an unchanged one <see cref="LayerSource.FromBase"/> (no size).
    /// </summary>
    public IReadOnlyList<ImageLayer> Layers { get; init; } = [];

    private const long SmallFile = 1 << 20;

    /// <summary>os/architecture[/variant] as the config declares it ("?" for a missing part).</summary>
    public string Platform => $"{Os ?? "?"}/{Architecture ?? "?"}{(string.IsNullOrEmpty(Variant) ? string.Empty : "/" + Variant)}";

    /// <summary>
    /// Reads a saved image forward-only. Null when the stream is not a tar with a manifest.json naming
    /// a config that is in the tar (e.g. a VCDIFF delta, an empty file, or something else entirely).
    /// </summary>
    public static SavedImage? Read(Stream payload, CancellationToken ct) => Read(payload, "image.img", ct);

    /// <inheritdoc cref="Read(Stream, CancellationToken)"/>
    /// <remarks>A tar entry no saved image holds (a device, a sparse file...: <see cref="TarEntryPolicy.FilesDirectoriesAndLinks"/>)
    /// is an <see cref="UnsafeArchiveEntryException"/> naming <paramref name="source"/>, the entry and its type.</remarks>
    public static SavedImage? Read(Stream payload, string source, CancellationToken ct)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        var platforms = new Dictionary<string, (string? Os, string? Arch, string? Variant)>(StringComparer.Ordinal);
        var configs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var links = new Dictionary<string, string>(StringComparer.Ordinal);
        string? manifest = null;
        try
        {
            using var tar = new CheckedTarReader(payload, source, TarEntryPolicy.FilesDirectoriesAndLinks,
                m => new UnsafeArchiveEntryException(m + ": a saved image (docker save, OCI layout) holds none; save the image again and rebuild the artifact with app-gen"), leaveOpen: true);
            while (tar.GetNextEntry() is { } e)
            {
                ct.ThrowIfCancellationRequested();
                var entryName = PayloadArchive.Normalize(e.Name);
                if (e.EntryType is System.Formats.Tar.TarEntryType.SymbolicLink && !string.IsNullOrEmpty(e.LinkName))
                {
                    links[entryName] = e.LinkName;
                }
                else if (e.DataStream is not null)
                {
                    sizes[entryName] = e.Length;
                }

                if (e.DataStream is null || e.Length > SmallFile)
                {
                    continue;
                }

                var name = entryName;
                var ms = new MemoryStream();
                e.DataStream.CopyTo(ms);
                var bytes = ms.ToArray();
                if (name == "manifest.json")
                {
                    manifest = Encoding.UTF8.GetString(bytes);
                    continue;
                }

                hashes[name] = Convert.ToHexStringLower(SHA256.HashData(bytes));
                if (bytes.Length > 0 && bytes[0] == (byte)'{' && PlatformOf(bytes) is { } p)
                {
                    platforms[name] = p;
                    configs[name] = bytes;
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or OverflowException or ArgumentException)
        {
            return null;
        }

        if (manifest is null)
        {
            return null;
        }

        try
        {
            if (JsonValue.Parse(manifest) is not JsonArray { Items.Count: > 0 } a || a.Items[0] is not JsonObject first
                || first["Config"] is not JsonString { Value: var configName })
            {
                return null;
            }

            var config = PayloadArchive.Normalize(configName);
            if (!hashes.TryGetValue(config, out var id))
            {
                return null;
            }

            var (os, arch, variant) = platforms.GetValueOrDefault(config);
            var layerFiles = first["Layers"] is JsonArray l ? l.Items.Select(i => i is JsonString f ? PayloadArchive.Normalize(f.Value) : string.Empty).ToArray() : [];
            return new SavedImage(id, os, arch, variant) { Layers = LayersOf(configs.GetValueOrDefault(config), layerFiles, sizes, links) };
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>The config's diff IDs paired with manifest.json's layer files (by position) and their sizes in the archive.</summary>
    private static IReadOnlyList<ImageLayer> LayersOf(byte[]? config, string[] files, Dictionary<string, long> sizes, Dictionary<string, string> links)
    {
        if (config is null || JsonValue.Parse(Encoding.UTF8.GetString(config)) is not JsonObject o
            || o["rootfs"] is not JsonObject rootfs || rootfs["diff_ids"] is not JsonArray ids)
        {
            return [];
        }

        long? SizeOf(string file)
        {
            for (var hops = 0; hops < 8 && links.TryGetValue(file, out var target); hops++)
            {
                // A layer file may be a link to another copy (docker save of layers several images share, the OCI layout's blobs).
                file = PayloadArchive.Normalize(target.StartsWith('/') ? target : Path.Combine(Path.GetDirectoryName(file) ?? string.Empty, target));
                file = Path.GetFullPath("/" + file)[1..];
            }

            return sizes.TryGetValue(file, out var size) ? size : null;
        }

        var layers = new List<ImageLayer>();
        for (var i = 0; i < ids.Items.Count; i++)
        {
            if (ids.Items[i] is not JsonString { Value: var diffId })
            {
                return [];
            }

            var file = i < files.Length ? files[i] : string.Empty;
            var size = file.Length > 0 ? SizeOf(file) : null;
            layers.Add(size is not null ? new ImageLayer(diffId, size)
                : sizes.ContainsKey(file + ".vcdiff") ? new ImageLayer(diffId, null, LayerSource.Delta)
                : new ImageLayer(diffId, null, LayerSource.FromBase));
        }

        return layers;
    }

    private static (string? Os, string? Arch, string? Variant)? PlatformOf(byte[] json)
    {
        try
        {
            if (JsonValue.Parse(Encoding.UTF8.GetString(json)) is not JsonObject o)
            {
                return null;
            }

            static string? S(JsonValue? v) => v is JsonString s && s.Value.Length > 0 ? s.Value : null;
            return (S(o["os"]), S(o["architecture"]), S(o["variant"]));
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}

/// <summary>
/// Cross-checks what an app artifact claims (meta-data's image list and platform, each image
/// directory's sums-new.txt) against what its images payload carries, before anything on the device
/// changes. Every refusal is an <see cref="ArtifactFormatException"/> naming the image, both values
/// and the fix.
/// </summary>
public static class ArtifactClaims
{
    private const string Regenerate = "regenerate the artifact with app-gen";

    /// <param name="meta">the validated meta-data</param>
    /// <param name="images">the images payload's image directories (<see cref="ImagesPayload.ScanAsync"/>)</param>
    /// <param name="carried">per image directory: what its image.img carries (<see cref="SavedImage.Read"/>; null when it is not a saved image)</param>
    /// <param name="source">the payload file, for messages</param>
    public static void Check(AppMetadata meta, IReadOnlyList<ImageEntry> images, IReadOnlyDictionary<string, SavedImage?> carried, string source)
    {
        ArgumentNullException.ThrowIfNull(meta);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(carried);
        var name = Path.GetFileName(source);
        if (meta.Images.Count == 0)
        {
            throw new ArtifactFormatException(images.Count == 0
                ? $"meta-data \"images\" is empty and {name} carries no image: an app artifact must carry the images its composition runs; {Regenerate} and give it the images (--image)"
                : $"meta-data \"images\" is empty, but {name} carries {images.Count} image(s) ({string.Join(", ", images.Select(i => i.UrlNew))}): the artifact is inconsistent; {Regenerate}");
        }

        if (images.Count == 0)
        {
            throw new ArtifactFormatException($"meta-data \"images\" lists {meta.Images.Count} image(s) ({Short(meta.Images)}), but {name} carries no image (it is empty or holds no images/<id>/ directory): the artifact is damaged or inconsistent; {Regenerate}");
        }

        var listed = meta.Images.ToHashSet(StringComparer.Ordinal);
        foreach (var image in images)
        {
            if (!listed.Contains(image.SumsNew))
            {
                throw new ArtifactFormatException($"image {image.SumsNew} ({image.UrlNew}) is not listed in meta-data \"images\": the artifact is inconsistent; {Regenerate}");
            }

            if (image.Kind != ImageKind.Full && !listed.Contains(image.SumsCurrent))
            {
                throw new ArtifactFormatException($"the delta base {image.SumsCurrent} ({image.UrlCurrent}) of image {image.UrlNew} is not listed in meta-data \"images\": the artifact is inconsistent; {Regenerate}");
            }
        }

        var claimed = images.SelectMany(i => new[] { i.SumsNew, i.SumsCurrent }).ToHashSet(StringComparer.Ordinal);
        if (meta.Images.FirstOrDefault(id => !claimed.Contains(id)) is { } absent)
        {
            throw new ArtifactFormatException($"meta-data \"images\" lists {absent}, but {name} carries no image directory for it (neither a new image nor a delta base): the artifact is inconsistent; {Regenerate}");
        }

        var dupe = images.GroupBy(i => i.UrlNew, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dupe is not null)
        {
            throw new ArtifactFormatException($"two image directories load the same reference {dupe.Key}: the artifact is inconsistent; {Regenerate}");
        }

        foreach (var image in images)
        {
            if (image.ImageSize == 0)
            {
                throw new ArtifactFormatException($"images/{image.Id}/image.img ({image.UrlNew}) is empty (0 bytes): the artifact is damaged; {Regenerate}");
            }

            if (image.Kind != ImageKind.Full)
            {
                continue; // a delta is checked once it is rebuilt against its base
            }

            var saved = carried.GetValueOrDefault(image.Id)
                ?? throw new ArtifactFormatException($"images/{image.Id}/image.img ({image.UrlNew}) is not a saved image (no manifest.json naming a config it holds): the artifact is damaged; {Regenerate}");
            if (saved.Id != image.SumsNew)
            {
                throw new ArtifactFormatException($"the payload of {image.UrlNew} is image {saved.Id}, but sums-new.txt says {image.SumsNew}: the artifact is inconsistent; {Regenerate}");
            }

            CheckPlatform(meta.Platform, saved, image.UrlNew);
        }
    }

    /// <summary>Refuses an image whose config declares another platform than <paramref name="platform"/> (os/arch[/variant]).</summary>
    public static void CheckPlatform(string platform, SavedImage saved, string url)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(saved);
        if (saved.Os is null || saved.Architecture is null)
        {
            throw new ArtifactFormatException($"the image config of {url} does not declare its platform (os {saved.Os ?? "missing"}, architecture {saved.Architecture ?? "missing"}), so it cannot be checked against the artifact's platform {platform}; {Regenerate} from an image built for {platform}");
        }

        if (!PlatformMatches(platform, saved.Os, saved.Architecture, saved.Variant))
        {
            throw new ArtifactFormatException($"image {url} is built for {saved.Platform}, but the artifact declares platform {platform}: it would not run on the device it is meant for; build the image for {platform}, or {Regenerate} --platform {saved.Platform}");
        }
    }

    /// <summary>See <see cref="Platforms.Matches"/>.</summary>
    public static bool PlatformMatches(string platform, string os, string architecture, string? variant) =>
        Platforms.Matches(platform, os, architecture, variant);

    private static string Short(IReadOnlyList<string> ids) =>
        string.Join(", ", ids.Take(3).Select(i => i.Length > 12 ? i[..12] : i)) + (ids.Count > 3 ? ", ..." : string.Empty);
}
