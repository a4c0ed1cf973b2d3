using System.Formats.Tar;
using System.Text;
using System.Text.RegularExpressions;
using AppModule.Core.Archives;

namespace AppModule.Artifacts;

/// <summary>The headers of an artifact, parsed, plus the raw stored JSON.</summary>
public sealed record ArtifactHeader(
    HeaderInfo HeaderInfo,
    TypeInfo TypeInfo,
    string HeaderInfoJson,
    string TypeInfoJson,
    string? MetaDataJson,
    IReadOnlyList<string> Scripts)
{
    /// <summary>The meta-data as the module sees it (null when the artifact has none). Throws on malformed JSON.</summary>
    public AppMetadata? AppMetadata => MetaDataJson is null ? null : Artifacts.AppMetadata.Parse(MetaDataJson);
}

public sealed record ManifestEntry(string Path, string Sha256);

/// <summary>A payload file as read (after its checksum was verified).</summary>
public sealed record PayloadFileInfo(string Name, long Size, string Sha256);

public sealed record ArtifactContents(
    ArtifactHeader Header,
    IReadOnlyList<ManifestEntry> Manifest,
    string ManifestText,
    bool Signed,
    bool SignatureVerified,
    ArtifactCompression Compression,
    IReadOnlyList<PayloadFileInfo> Files);

/// <param name="Verifier">when set, the artifact must carry a manifest.sig that verifies with it.</param>
/// <param name="MaxHeaderBytes">bound on the (decompressed) header.tar and each header file.</param>
/// <param name="PayloadType">when set, the artifact's one payload must be of this type (header-info and type-info), checked before any payload data is read.</param>
public sealed record ArtifactReadOptions(ArtifactVerifier? Verifier = null, long MaxHeaderBytes = 8 << 20, string? PayloadType = null);

/// <summary>
/// Reads a Mender artifact v3 forward-only (no seeking, no temporary files): checks the member
/// order, verifies the manifest's sha256 for <c>version</c>, <c>header.tar*</c> and every payload
/// file, and the signature when a verifier is given. Payload files are handed to a callback as
/// streams while they are being hashed; like the Mender client, the caller must not act on that
/// data before <see cref="ReadAsync"/> returns (a checksum mismatch is only known at the end of a file).
/// </summary>
public static partial class ArtifactReader
{
    [GeneratedRegex("^([0-9a-f]{64})  (\\S.*)$")] private static partial Regex ManifestLineRx();

    public delegate Task PayloadFileHandler(string name, long size, Stream content, CancellationToken ct);

    public static async Task<ArtifactContents> ReadFileAsync(string path, ArtifactReadOptions options, PayloadFileHandler? onFile, CancellationToken ct)
    {
        FileStream fs;
        try { fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArtifactException($"cannot open artifact {path}: {AppModule.Core.RuntimeMessages.For(e)}");
        }
        await using (fs.ConfigureAwait(false))
            return await ReadAsync(fs, options, onFile, ct).ConfigureAwait(false);
    }

    public static async Task<ArtifactContents> ReadAsync(Stream artifact, ArtifactReadOptions options, PayloadFileHandler? onFile, CancellationToken ct)
    {
        var outer = new CheckedTarReader(new NonClosingStream(artifact), "the artifact", TarEntryPolicy.FilesAndDirectories, Refused, leaveOpen: false);
        try
        {
            // version
            var e = await Next(outer, ct).ConfigureAwait(false)
                ?? throw new ArtifactFormatException("the artifact is empty or not a tar file: it is not a Mender artifact");
            if (e.Name != "version")
                throw new ArtifactFormatException($"the artifact's first member is \"{e.Name}\", not \"version\": it is not a Mender artifact v3 (rebuild it with mender-artifact or app-gen)");
            byte[] version = await ReadSmall(e, 4096, "version", ct).ConfigureAwait(false);
            CheckVersion(version);

            // manifest
            e = await Next(outer, ct).ConfigureAwait(false);
            if (e?.Name != "manifest")
                throw new ArtifactFormatException($"expected member \"manifest\" after \"version\", found {(e is null ? "the end of the artifact" : $"\"{e.Name}\"")}: the artifact is damaged or not format v3");
            byte[] manifestBytes = await ReadSmall(e, 4 << 20, "manifest", ct).ConfigureAwait(false);
            string manifestText = Encoding.UTF8.GetString(manifestBytes);
            var manifest = ParseManifest(manifestText);
            var expected = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var m in manifest)
            {
                if (!expected.TryAdd(m.Path, m.Sha256))
                    throw new ArtifactFormatException($"the manifest lists \"{m.Path}\" twice: the artifact is damaged");
            }
            Check(expected, "version", ArtifactWriter.Sha256Hex(version));

            e = await Next(outer, ct).ConfigureAwait(false);
            bool signed = false, verified = false;
            if (e?.Name == "manifest.sig")
            {
                signed = true;
                byte[] sig = await ReadSmall(e, 64 << 10, "manifest.sig", ct).ConfigureAwait(false);
                if (options.Verifier is not null)
                {
                    options.Verifier.Verify(manifestBytes, sig);
                    verified = true;
                }
                e = await Next(outer, ct).ConfigureAwait(false);
            }
            else if (options.Verifier is not null)
            {
                throw new ArtifactSignatureException("the artifact is not signed (no manifest.sig) but a verification key was given: sign it (app-gen --key) or drop the key");
            }
            if (e is not null && (e.Name == "manifest-augment" || e.Name.StartsWith("header-augment", StringComparison.Ordinal)))
                throw new ArtifactFormatException($"augmented artifacts (member \"{e.Name}\") are not supported by the Mender client 3.4: rebuild without augmentation");

            // header.tar[.gz|.xz]
            if (e is null || !e.Name.StartsWith("header.tar", StringComparison.Ordinal))
                throw new ArtifactFormatException($"expected member \"header.tar[.gz|.xz]\", found {(e is null ? "the end of the artifact" : $"\"{e.Name}\"")}: the artifact is damaged");
            string headerName = e.Name;
            var compression = Compression.FromName(headerName);
            if (headerName != "header.tar" + Compression.Suffix(compression))
                throw new ArtifactFormatException($"header member \"{headerName}\" has an unsupported compression: use none, gzip or lzma");
            byte[] headerBytes = await ReadSmall(e, options.MaxHeaderBytes, headerName, ct).ConfigureAwait(false);
            Check(expected, headerName, ArtifactWriter.Sha256Hex(headerBytes));
            var header = ParseHeader(headerBytes, compression, options.MaxHeaderBytes);
            if (options.PayloadType is { } wanted)
                RequirePayloadType(header, wanted);

            // data/0000.tar[.gz|.xz]
            e = await Next(outer, ct).ConfigureAwait(false);
            var files = new List<PayloadFileInfo>();
            if (e is not null)
            {
                if (!e.Name.StartsWith("data/0000.tar", StringComparison.Ordinal))
                    throw new ArtifactFormatException($"expected member \"data/0000.tar[.gz|.xz]\", found \"{e.Name}\": the artifact has an unexpected structure");
                var dataCompression = Compression.FromName(e.Name);
                if (e.DataStream is null) throw new ArtifactFormatException($"member {e.Name} has no content");
                await using var payload = Compression.Decompress(e.DataStream, dataCompression);
                var inner = new CheckedTarReader(payload, e.Name, TarEntryPolicy.FilesAndDirectories, Refused, leaveOpen: true);
                await using (inner.ConfigureAwait(false))
                {
                    var seen = new HashSet<string>(StringComparer.Ordinal);
                    while (await inner.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } f)
                    {
                        if (f.EntryType is TarEntryType.Directory) continue;
                        string name = f.Name.StartsWith("./", StringComparison.Ordinal) ? f.Name[2..] : f.Name;
                        if (name.Length == 0 || name.Contains('/') || name is "." or "..")
                            throw new UnsafeArchiveEntryException($"payload entry \"{f.Name}\" is not a plain file name: the artifact is damaged or hostile");
                        if (!seen.Add(name)) throw new UnsafeArchiveEntryException($"payload file \"{name}\" appears twice in the artifact");
                        string key = "data/0000/" + name;
                        if (!expected.ContainsKey(key))
                            throw new ArtifactChecksumException($"payload file \"{name}\" is not listed in the manifest: the artifact was modified after it was written");
                        await using var hashing = new HashingStream(f.DataStream ?? Stream.Null, leaveOpen: true);
                        if (onFile is not null) await onFile(name, f.Length, hashing, ct).ConfigureAwait(false);
                        await hashing.CopyToAsync(Stream.Null, ct).ConfigureAwait(false); // drain what the handler left
                        if (hashing.BytesHashed != f.Length)
                            throw new ArtifactFormatException($"payload file \"{name}\" is truncated ({hashing.BytesHashed} of {f.Length} bytes): the artifact is damaged or incompletely downloaded; download it again");
                        var sum = hashing.HexDigest();
                        Check(expected, key, sum);
                        files.Add(new PayloadFileInfo(name, hashing.BytesHashed, sum));
                    }
                    foreach (var k in expected.Keys.Where(k => k.StartsWith("data/0000/", StringComparison.Ordinal)))
                    {
                        if (!seen.Contains(k["data/0000/".Length..]))
                            throw new ArtifactChecksumException($"payload file \"{k["data/0000/".Length..]}\" is listed in the manifest but missing from the artifact: it is damaged or truncated");
                    }
                }
                e = await Next(outer, ct).ConfigureAwait(false);
                if (e is not null)
                    throw new ArtifactFormatException($"unexpected member \"{e.Name}\" after data/0000: the Mender client 3.4 supports one payload only");
            }
            else if (expected.Keys.Any(k => k.StartsWith("data/", StringComparison.Ordinal)))
            {
                throw new ArtifactFormatException("the artifact ends before its data member although the manifest lists payload files: it is truncated");
            }
            foreach (var k in expected.Keys)
            {
                if (!k.StartsWith("data/", StringComparison.Ordinal) && k != "version" && k != headerName)
                    throw new ArtifactFormatException($"the manifest lists \"{k}\", which the artifact does not contain: it is damaged");
            }
            return new ArtifactContents(header, manifest, manifestText, signed, verified, compression, files);
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or EndOfStreamException or OverflowException
            || ex.GetType().Namespace?.StartsWith("SharpCompress", StringComparison.Ordinal) == true)
        {
            throw new ArtifactFormatException($"the artifact cannot be read ({AppModule.Core.RuntimeMessages.For(ex)}): it is damaged, truncated or not a Mender artifact");
        }
        finally
        {
            await outer.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The artifact's payload (header-info and type-info agreeing) must be of type <paramref name="wanted"/>.</summary>
    public static void RequirePayloadType(ArtifactHeader header, string wanted)
    {
        ArgumentNullException.ThrowIfNull(header);
        RequirePayloadType(header.HeaderInfo.PayloadTypes, header.TypeInfo.Type, wanted);
    }

    /// <summary>The payload types of header-info (<paramref name="declared"/>) and type-info (<paramref name="typeInfo"/>) must both be exactly <paramref name="wanted"/>.</summary>
    public static void RequirePayloadType(IReadOnlyList<string?> declared, string? typeInfo, string wanted)
    {
        ArgumentNullException.ThrowIfNull(declared);
        if (declared.Count != 1 || declared[0] != wanted || typeInfo != wanted)
        {
            var types = declared.Count == 0 ? "no payload" : string.Join(", ", declared.Select(t => t is null ? "null" : MetadataValidator.Q(t)));
            throw new ArtifactFormatException($"the artifact's payload type is {types} (type-info: {(typeInfo is { } t ? MetadataValidator.Q(t) : "null")}), not \"{wanted}\": this module installs only \"{wanted}\" artifacts; generate it with app-gen (or mender-artifact write module-image -T {wanted})");
        }
    }

    /// <summary>An entry type the artifact's tars may not hold (<see cref="TarEntryPolicy"/>).</summary>
    private static UnsafeArchiveEntryException Refused(string message) => new(message + ": the artifact is damaged or hostile; rebuild it with mender-artifact or app-gen");

    private static async Task<TarEntry?> Next(CheckedTarReader r, CancellationToken ct)
    {
        while (true)
        {
            var e = await r.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
            if (e is null || e.EntryType is not TarEntryType.Directory) return e;
        }
    }

    private static void CheckVersion(byte[] version)
    {
        JsonObject? o = null;
        try { o = JsonValue.Parse(Encoding.UTF8.GetString(version)) as JsonObject; }
        catch (System.Text.Json.JsonException) { }
        if (o?["format"] is not JsonString { Value: "mender" })
            throw new ArtifactFormatException("the artifact's version member is not {\"format\":\"mender\",...}: it is not a Mender artifact");
        if (o["version"] is not JsonNumber { Value: 3 })
            throw new ArtifactFormatException($"the artifact is format version {(o["version"] is JsonNumber n ? GoJson.FormatFloat(n.Value) : "?")}; only version 3 is supported: rebuild it with mender-artifact 3.x or app-gen");
    }

    public static IReadOnlyList<ManifestEntry> ParseManifest(string text)
    {
        var list = new List<ManifestEntry>();
        foreach (var raw in text.Split('\n'))
        {
            if (raw.Length == 0) continue;
            var m = ManifestLineRx().Match(raw);
            if (!m.Success)
                throw new ArtifactFormatException($"manifest line \"{(raw.Length > 100 ? raw[..100] : raw)}\" is not \"<sha256>  <path>\": the artifact is damaged");
            list.Add(new ManifestEntry(m.Groups[2].Value, m.Groups[1].Value));
        }
        return list;
    }

    private static void Check(Dictionary<string, string> expected, string path, string actual)
    {
        if (!expected.TryGetValue(path, out var want))
            throw new ArtifactChecksumException($"\"{path}\" is not listed in the manifest: the artifact was modified after it was written");
        if (!string.Equals(want, actual, StringComparison.Ordinal))
            throw new ArtifactChecksumException($"\"{path}\" has sha256 {actual} but the manifest expects {want}: the artifact is corrupted or was tampered with; download or rebuild it");
    }

    private static async Task<byte[]> ReadSmall(TarEntry e, long max, string what, CancellationToken ct)
    {
        if (e.Length > max)
            throw new UnsafeArchiveEntryException($"member \"{what}\" is {e.Length} bytes, more than the limit of {max}: the artifact is damaged or hostile");
        if (e.DataStream is null) return [];
        var ms = new MemoryStream((int)e.Length);
        await e.DataStream.CopyToAsync(ms, ct).ConfigureAwait(false);
        if (ms.Length != e.Length)
            throw new ArtifactFormatException($"member \"{what}\" is truncated ({ms.Length} of {e.Length} bytes): the artifact is damaged or incompletely downloaded; download it again");
        return ms.ToArray();
    }

    /// <summary>Parses header.tar[.gz|.xz]: header-info, scripts/*, headers/0000/{type-info,meta-data}.</summary>
    public static ArtifactHeader ParseHeader(byte[] stored, ArtifactCompression compression, long maxBytes = 8 << 20)
    {
        string? headerInfo = null, typeInfo = null, metaData = null;
        var scripts = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        using var input = new MemoryStream(stored, writable: false);
        using var dec = Compression.Decompress(input, compression);
        using var tar = new CheckedTarReader(dec, "header.tar", TarEntryPolicy.FilesAndDirectories, Refused, leaveOpen: true);
        while (tar.GetNextEntry(copyData: false) is { } e)
        {
            if (e.EntryType is TarEntryType.Directory) continue;
            if (!seen.Add(e.Name)) throw new UnsafeArchiveEntryException($"header entry \"{e.Name}\" appears twice: the artifact is damaged");
            total += e.Length;
            if (e.Length > maxBytes || total > maxBytes)
                throw new UnsafeArchiveEntryException($"header.tar holds more than {maxBytes} bytes: the artifact is damaged or hostile");
            var ms = new MemoryStream();
            e.DataStream?.CopyTo(ms);
            string text = Encoding.UTF8.GetString(ms.ToArray());
            switch (e.Name)
            {
                case "header-info": headerInfo = text; break;
                case "headers/0000/type-info": typeInfo = text; break;
                case "headers/0000/meta-data": metaData = text; break;
                case "headers/0000/files": break; // format v2 leftover, listed by the format: ignored
                default:
                    if (e.Name.StartsWith("scripts/", StringComparison.Ordinal) && e.Name.Length > "scripts/".Length
                        && e.Name.IndexOf('/', "scripts/".Length) < 0 && e.Name["scripts/".Length..] is not ("." or ".."))
                        scripts.Add(e.Name["scripts/".Length..]);
                    else if (e.Name.StartsWith("headers/", StringComparison.Ordinal) && !e.Name.StartsWith("headers/0000/", StringComparison.Ordinal)
                        && !e.Name.Contains("..", StringComparison.Ordinal))
                        throw new ArtifactFormatException($"header entry \"{e.Name}\" belongs to a second payload: the Mender client 3.4 supports one payload only");
                    else
                        throw new ArtifactFormatException($"header.tar holds the unknown entry {MetadataValidator.Q(e.Name)}: a Mender artifact v3 header holds only header-info, scripts/<name> and headers/0000/{{type-info,meta-data}}; the artifact is damaged or hostile (mender-artifact refuses it too); rebuild it");
                    break;
            }
        }
        if (headerInfo is null) throw new ArtifactFormatException("header.tar has no header-info: the artifact is damaged");
        var hi = HeaderInfo.Parse(headerInfo);
        if (typeInfo is null)
        {
            if (hi.PayloadTypes.Count > 0) throw new ArtifactFormatException("header.tar has no headers/0000/type-info: the artifact is damaged");
            typeInfo = "{\"type\":null}";
        }
        return new ArtifactHeader(hi, TypeInfo.Parse(typeInfo), headerInfo, typeInfo, metaData, scripts);
    }
}
