using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Hardening.Tests.Corpus;

/// <summary>One tar entry as the corpus writes it. <paramref name="DeclaredSize"/> overrides the size
/// field of the header (the data written is <paramref name="Data"/>, so the archive lies about it).</summary>
public sealed record TarSpec(string Name, TarEntryType Type = TarEntryType.RegularFile, byte[]? Data = null, string? Link = null, long? DeclaredSize = null)
{
    public static TarSpec File(string name, string text) => new(name, Data: Encoding.UTF8.GetBytes(text));

    public static TarSpec Dir(string name) => new(name, TarEntryType.Directory);
}

/// <summary>An image the artifact carries: its reference, ID (hex) and the saved-image bytes (or file).</summary>
public sealed record CorpusImage(string Url, string Id, string SavedPath);

/// <summary>
/// The parts of an app artifact (Mender artifact v3, payload type app), each replaceable so that a
/// corpus case can break exactly one thing. <see cref="Write"/> lays them out with System.Formats.Tar
/// the way mender-artifact 3.9 does with <c>--compression none</c>: version, manifest, header.tar,
/// data/0000.tar holding images.tar.gz and manifests.tar.gz.
/// </summary>
public sealed record ArtifactParts
{
    public required string ArtifactName { get; init; }

    public string DeviceType { get; init; } = "test-device";

    public string? MetaData { get; init; }

    public string VersionJson { get; init; } = "{\"format\":\"mender\",\"version\":3}";

    public string? HeaderInfo { get; init; }

    public string TypeInfo { get; init; } = "{\"type\":\"app\"}";

    /// <summary>Entries of images.tar.gz.</summary>
    public required IReadOnlyList<TarSpec> Images { get; init; }

    /// <summary>Entries of manifests.tar.gz.</summary>
    public required IReadOnlyList<TarSpec> Manifests { get; init; }

    /// <summary>Replaces the gzip bytes of images.tar.gz (bombs, truncation).</summary>
    public Func<byte[], byte[]>? ImagesBytes { get; init; }

    /// <summary>Replaces the gzip bytes of manifests.tar.gz.</summary>
    public Func<byte[], byte[]>? ManifestsBytes { get; init; }

    /// <summary>Extra entries of header.tar (after the regular ones).</summary>
    public IReadOnlyList<TarSpec> ExtraHeaderEntries { get; init; } = [];

    /// <summary>Edits the manifest text after it was computed.</summary>
    public Func<string, string>? EditManifest { get; init; }

    /// <summary>Edits the outer members (name, bytes) before they are written.</summary>
    public Func<List<TarSpec>, List<TarSpec>>? EditOuter { get; init; }

    /// <summary>Replaces the header member (name and stored bytes) before the manifest is computed, e.g. a compressed header.</summary>
    public Func<byte[], (string Name, byte[] Data)>? HeaderMember { get; init; }

    /// <summary>Edits the final .mender bytes (truncation).</summary>
    public Func<byte[], byte[]>? EditFile { get; init; }

    /// <summary>Leaves manifests.tar.gz out of the payload.</summary>
    public bool OmitManifestsPayload { get; init; }

    /// <summary>Payload files of data/0000.tar beyond images.tar.gz and manifests.tar.gz.</summary>
    public IReadOnlyList<(string Name, byte[] Data)> ExtraPayloadFiles { get; init; } = [];

    public static string Meta(string app, IEnumerable<string> imageIds, string orchestrator = "docker-compose", string platform = "linux/amd64", IReadOnlyDictionary<string, string>? env = null)
    {
        var sb = new StringBuilder("{");
        sb.Append($"\"application_name\":{J(app)},\"images\":[{string.Join(',', imageIds.Select(J))}],\"orchestrator\":{J(orchestrator)},\"platform\":{J(platform)},\"version\":\"1.0\"");
        if (env is { Count: > 0 })
        {
            sb.Append(",\"env\":{").Append(string.Join(',', env.Select(kv => $"{J(kv.Key)}:{J(kv.Value)}"))).Append('}');
        }

        return sb.Append('}').ToString();
    }

    public static string J(string s) => JsonSerializer.Serialize(s);

    /// <summary>The image directory entries as app-gen writes them (small files first, image.img last).</summary>
    public static IReadOnlyList<TarSpec> ImageEntries(CorpusImage image, string? urlCurrent = null, string? sumsCurrent = null) =>
        ImageEntries(image.Url, image.Id, System.IO.File.ReadAllBytes(image.SavedPath), urlCurrent, sumsCurrent);

    /// <summary>An image directory for <paramref name="url"/> and <paramref name="id"/> whose image.img is <paramref name="saved"/>.</summary>
    public static IReadOnlyList<TarSpec> ImageEntries(string url, string id, byte[] saved, string? urlCurrent = null, string? sumsCurrent = null)
    {
        var d = $"images/{id}/";
        return
        [
            TarSpec.Dir("images/"),
            TarSpec.Dir(d),
            TarSpec.File(d + "url-new.txt", url + "\n"),
            TarSpec.File(d + "url-current.txt", (urlCurrent ?? url) + "\n"),
            TarSpec.File(d + "sums-new.txt", id + "\n"),
            TarSpec.File(d + "sums-current.txt", (sumsCurrent ?? id) + "\n"),
            new TarSpec(d + "image.img", Data: saved),
        ];
    }

    public static IReadOnlyList<TarSpec> ComposeManifests(string composeYaml) =>
        [TarSpec.Dir("manifests/"), TarSpec.File("manifests/docker-compose.yml", composeYaml)];

    /// <summary>A well-formed artifact for <paramref name="app"/> with one image.</summary>
    public static ArtifactParts Valid(string artifactName, string app, CorpusImage image, string composeYaml) => new()
    {
        ArtifactName = artifactName,
        MetaData = Meta(app, [image.Id]),
        Images = ImageEntries(image),
        Manifests = ComposeManifests(composeYaml),
    };

    public string Write(string path)
    {
        System.IO.File.WriteAllBytes(path, Bytes());
        return path;
    }

    public byte[] Bytes()
    {
        var images = Gzip(TarBytes(Images));
        images = ImagesBytes?.Invoke(images) ?? images;
        var manifests = Gzip(TarBytes(Manifests));
        manifests = ManifestsBytes?.Invoke(manifests) ?? manifests;
        var payload = new List<(string Name, byte[] Data)> { ("images.tar.gz", images) };
        if (!OmitManifestsPayload)
        {
            payload.Add(("manifests.tar.gz", manifests));
        }

        payload.AddRange(ExtraPayloadFiles);

        var headerEntries = new List<TarSpec>
        {
            TarSpec.File("header-info", HeaderInfo ?? $"{{\"payloads\":[{{\"type\":\"app\"}}],\"artifact_provides\":{{\"artifact_name\":{J(ArtifactName)}}},\"artifact_depends\":{{\"device_type\":[{J(DeviceType)}]}}}}"),
            TarSpec.File("headers/0000/type-info", TypeInfo),
        };
        if (MetaData is not null)
        {
            headerEntries.Add(TarSpec.File("headers/0000/meta-data", MetaData));
        }

        headerEntries.AddRange(ExtraHeaderEntries);
        var headerTar = TarBytes(headerEntries);
        var (headerName, header) = HeaderMember?.Invoke(headerTar) ?? ("header.tar", headerTar);
        var version = Encoding.UTF8.GetBytes(VersionJson);
        var data = TarBytes(payload.Select(p => new TarSpec(p.Name, Data: p.Data)).ToList());

        var lines = payload.Select(p => (Path: "data/0000/" + p.Name, Sum: Sha(p.Data)))
            .Append((headerName, Sha(header)))
            .Append(("version", Sha(version)))
            .OrderBy(l => l.Item1, StringComparer.Ordinal)
            .Select(l => $"{l.Item2}  {l.Item1}\n");
        var manifest = string.Concat(lines);
        manifest = EditManifest?.Invoke(manifest) ?? manifest;

        var outer = new List<TarSpec>
        {
            new("version", Data: version),
            new("manifest", Data: Encoding.UTF8.GetBytes(manifest)),
            new(headerName, Data: header),
            new("data/0000.tar", Data: data),
        };
        outer = EditOuter?.Invoke(outer) ?? outer;
        var file = TarBytes(outer, TarEntryFormat.Ustar);
        return EditFile?.Invoke(file) ?? file;
    }

    public static string Sha(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static byte[] Gzip(byte[] data, CompressionLevel level = CompressionLevel.Fastest)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, level, leaveOpen: true))
        {
            gz.Write(data);
        }

        return ms.ToArray();
    }

    /// <summary>A tar of <paramref name="entries"/>. Entries with a declared size are written by hand (the header lies).</summary>
    public static byte[] TarBytes(IReadOnlyList<TarSpec> entries, TarEntryFormat format = TarEntryFormat.Gnu)
    {
        if (entries.Any(e => e.DeclaredSize is not null || e.Type is TarEntryType.CharacterDevice or TarEntryType.BlockDevice or TarEntryType.Fifo))
        {
            return RawTar(entries);
        }

        var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, format, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                TarEntry entry = format == TarEntryFormat.Ustar ? new UstarTarEntry(e.Type, e.Name) : new GnuTarEntry(e.Type, e.Name);
                entry.Mode = e.Type == TarEntryType.Directory ? (UnixFileMode)0b111_101_101 : (UnixFileMode)0b110_100_100;
                entry.ModificationTime = DateTimeOffset.UnixEpoch;
                if (e.Link is not null)
                {
                    entry.LinkName = e.Link;
                }

                if (e.Data is not null && e.Type is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                {
                    entry.DataStream = new MemoryStream(e.Data);
                }

                tar.WriteEntry(entry);
            }
        }

        return ms.ToArray();
    }

    /// <summary>
    /// A tar whose entries may lie about their size: each is a 512-byte ustar header (size in octal,
    /// or base-256 beyond 8 GiB) followed by the data given, padded; the end marker is optional so the
    /// archive can be "truncated".
    /// </summary>
    public static byte[] RawTar(IEnumerable<TarSpec> entries, bool endMarker = true)
    {
        var ms = new MemoryStream();
        foreach (var e in entries)
        {
            ms.Write(RawHeader(e.Name, e.DeclaredSize ?? e.Data?.Length ?? 0, e.Type switch
            {
                TarEntryType.Directory => (byte)'5',
                TarEntryType.SymbolicLink => (byte)'2',
                TarEntryType.HardLink => (byte)'1',
                TarEntryType.CharacterDevice => (byte)'3',
                TarEntryType.BlockDevice => (byte)'4',
                TarEntryType.Fifo => (byte)'6',
                _ => (byte)'0',
            }, e.Link));
            if (e.Data is { Length: > 0 } d)
            {
                ms.Write(d);
                ms.Write(new byte[(512 - d.Length % 512) % 512]);
            }
        }

        if (endMarker)
        {
            ms.Write(new byte[1024]);
        }

        return ms.ToArray();
    }

    public static byte[] RawHeader(string name, long size, byte type, string? link = null)
    {
        var h = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Encoding.ASCII.GetBytes("0000644\0").CopyTo(h, 100);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 108);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 116);
        if (size < 0x1_FFFF_FFFF)
        {
            Encoding.ASCII.GetBytes(Convert.ToString(size, 8).PadLeft(11, '0') + "\0").CopyTo(h, 124);
        }
        else
        {
            h[124] = 0x80; // base-256
            for (var i = 0; i < 8; i++)
            {
                h[135 - i] = (byte)(size >> (8 * i));
            }
        }

        Encoding.ASCII.GetBytes("00000000000\0").CopyTo(h, 136);
        h[156] = type;
        if (link is not null)
        {
            Encoding.ASCII.GetBytes(link).CopyTo(h, 157);
        }

        Encoding.ASCII.GetBytes("ustar\0" + "00").CopyTo(h, 257);
        for (var i = 148; i < 156; i++)
        {
            h[i] = (byte)' ';
        }

        var sum = h.Sum(b => (int)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
        return h;
    }

    /// <summary>
    /// A gzip "bomb": a multi-member gzip whose first member holds <paramref name="prefix"/> and the
    /// rest <paramref name="zeroMiB"/> MiB of zeros, made by repeating one compressed MiB (so building
    /// it costs nothing and it stays ~1 KiB per MiB on disk).
    /// </summary>
    public static byte[] GzipBomb(byte[] prefix, int zeroMiB, byte[]? suffix = null)
    {
        var ms = new MemoryStream();
        ms.Write(Gzip(prefix));
        var mib = Gzip(new byte[1 << 20], CompressionLevel.SmallestSize);
        for (var i = 0; i < zeroMiB; i++)
        {
            ms.Write(mib);
        }

        if (suffix is not null)
        {
            ms.Write(Gzip(suffix));
        }

        return ms.ToArray();
    }
}

/// <summary>A tiny synthetic saved image (docker-archive layout) whose ID is the sha256 of its config.</summary>
public static class SyntheticImage
{
    public static CorpusImage Write(string dir, string reference)
    {
        Directory.CreateDirectory(dir);
        var (id, bytes) = Bytes(reference);
        var path = Path.Combine(dir, $"{id[..12]}.tar");
        File.WriteAllBytes(path, bytes);
        return new CorpusImage(reference, id, path);
    }

    /// <summary>The image ID and saved-image bytes of a synthetic image whose config declares <paramref name="platform"/>
    /// (JSON members such as <c>"architecture":"amd64","os":"linux"</c>; empty: no platform at all).</summary>
    public static (string Id, byte[] Bytes) Bytes(string reference, string platform = "\"architecture\":\"amd64\",\"os\":\"linux\"")
    {
        var config = Encoding.UTF8.GetBytes($"{{{platform}{(platform.Length > 0 ? "," : string.Empty)}\"config\":{{\"Labels\":{{\"ref\":{ArtifactParts.J(reference)}}}}}}}");
        var id = ArtifactParts.Sha(config);
        var entries = new List<TarSpec>
        {
            new(id + ".json", Data: config),
            new("layer0/layer.tar", Data: ArtifactParts.TarBytes([TarSpec.File("hello", reference)])),
            TarSpec.File("manifest.json", $"[{{\"Config\":\"{id}.json\",\"RepoTags\":[{ArtifactParts.J(reference)}],\"Layers\":[\"layer0/layer.tar\"]}}]"),
        };
        return (id, ArtifactParts.TarBytes(entries, TarEntryFormat.Ustar));
    }
}
