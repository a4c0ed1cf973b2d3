using System.Formats.Tar;
using System.Text;

namespace AppModule.Artifacts;

/// <summary>A payload file to put into data/0000.tar (taken from disk, stored flat under <see cref="Name"/>).</summary>
public sealed record PayloadFile(string Name, string Path);

/// <summary>Everything that goes into a one-payload Mender artifact v3.</summary>
/// <param name="MetaData">the meta-data JSON object (written minified with sorted keys), or null for none.</param>
/// <param name="ModificationTime">mtime of every tar entry (fixed for reproducible output).</param>
public sealed record ArtifactSpec(
    HeaderInfo HeaderInfo,
    TypeInfo TypeInfo,
    JsonValue? MetaData,
    IReadOnlyList<PayloadFile> Files,
    ArtifactCompression Compression,
    DateTimeOffset ModificationTime);

public sealed record WrittenPayloadFile(string Name, long Size, string Sha256);

public sealed record ArtifactWriteResult(long Size, string Sha256, string Manifest, bool Signed, IReadOnlyList<WrittenPayloadFile> Files);

/// <summary>
/// Writes Mender artifact format v3 exactly as mender-artifact 3.9 lays it out (spec section 8):
/// <c>version</c>, <c>manifest</c> (sorted by path), <c>manifest.sig</c> when signing,
/// <c>header.tar[.gz|.xz]</c> (header-info, headers/0000/type-info, headers/0000/meta-data), then
/// <c>data/0000.tar[.gz|.xz]</c> with the payload files flat. Every entry has uid/gid 0 and the
/// same fixed mtime, so the same inputs give the same bytes.
/// </summary>
public static class ArtifactWriter
{
    public const string VersionJson = "{\"format\":\"mender\",\"version\":3}";

    /// <summary>Writes the artifact to <paramref name="outputPath"/> atomically: a temporary file in the
    /// same directory, fsync, then rename. On any error (or cancellation) nothing is left behind.</summary>
    public static async Task<ArtifactWriteResult> WriteFileAsync(ArtifactSpec spec, string outputPath, ArtifactSigner? signer,
        IProgress<long>? progress, CancellationToken ct)
    {
        var full = Path.GetFullPath(outputPath);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir))
            throw new ArtifactException($"output directory {dir} does not exist: create it or choose another --output-path");
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var dataTmp = tmp + ".data";
        try
        {
            ArtifactWriteResult result;
            await using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                result = await WriteAsync(spec, fs, dataTmp, signer, progress, ct).ConfigureAwait(false);
                await fs.FlushAsync(ct).ConfigureAwait(false);
                fs.Flush(flushToDisk: true);
            }
            ct.ThrowIfCancellationRequested();
            File.Move(tmp, full, overwrite: true);
            return result;
        }
        finally
        {
            TryDelete(tmp);
            TryDelete(dataTmp);
        }
    }

    /// <summary>Writes the artifact to a stream. <paramref name="dataTempPath"/> holds data/0000.tar while
    /// checksums are computed (the manifest precedes the data); it is deleted afterwards.</summary>
    public static async Task<ArtifactWriteResult> WriteAsync(ArtifactSpec spec, Stream output, string dataTempPath, ArtifactSigner? signer,
        IProgress<long>? progress, CancellationToken ct)
    {
        if (spec.Files.Count == 0) throw new ArtifactException("an artifact needs at least one payload file");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in spec.Files)
        {
            if (f.Name.Length == 0 || f.Name.Contains('/') || f.Name is "." or "..")
                throw new ArtifactException($"payload file name \"{f.Name}\" is not a plain file name");
            if (!names.Add(f.Name)) throw new ArtifactException($"payload file \"{f.Name}\" is given twice");
        }
        string suffix = Compression.Suffix(spec.Compression);
        var mtime = spec.ModificationTime;
        try
        {
            // 1. data/0000.tar[.gz|.xz] into a temp file, hashing each payload file as it passes.
            var written = new List<WrittenPayloadFile>();
            await using (var dataFile = new FileStream(dataTempPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await using (var comp = Compression.Compress(dataFile, spec.Compression))
                {
                    await using var tar = new TarWriter(comp, TarEntryFormat.Ustar, leaveOpen: true);
                    foreach (var f in spec.Files)
                    {
                        ct.ThrowIfCancellationRequested();
                        await using var src = new FileStream(f.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
                        await using var hashing = new HashingStream(new ProgressStream(src, progress), leaveOpen: false);
                        var e = FileEntry(f.Name, src.Length, (UnixFileMode)0b110_100_100, "root", mtime);
                        e.DataStream = hashing;
                        await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
                        written.Add(new WrittenPayloadFile(f.Name, hashing.BytesHashed, hashing.HexDigest()));
                    }
                }
                await dataFile.FlushAsync(ct).ConfigureAwait(false);
            }

            // 2. header.tar[.gz|.xz] in memory.
            byte[] header = BuildHeader(spec, mtime);

            // 3. manifest.
            byte[] version = Encoding.ASCII.GetBytes(VersionJson);
            var lines = new List<(string Path, string Sum)>
            {
                ("version", Sha256Hex(version)),
                ("header.tar" + suffix, Sha256Hex(header)),
            };
            lines.AddRange(written.Select(w => ("data/0000/" + w.Name, w.Sha256)));
            var manifestText = string.Concat(lines.OrderBy(l => l.Path, StringComparer.Ordinal).Select(l => $"{l.Sum}  {l.Path}\n"));
            byte[] manifest = Encoding.UTF8.GetBytes(manifestText);

            // 4. the outer tar.
            var hashOut = new HashingStream(output, leaveOpen: true);
            await using (var outer = new TarWriter(hashOut, TarEntryFormat.Ustar, leaveOpen: true))
            {
                await WriteBytesAsync(outer, "version", version, mtime, owner: "", ct).ConfigureAwait(false);
                await WriteBytesAsync(outer, "manifest", manifest, mtime, owner: "", ct).ConfigureAwait(false);
                if (signer is not null)
                    await WriteBytesAsync(outer, "manifest.sig", signer.Sign(manifest), mtime, owner: "", ct).ConfigureAwait(false);
                await WriteBytesAsync(outer, "header.tar" + suffix, header, mtime, owner: "root", ct).ConfigureAwait(false);
                await using var data = new FileStream(dataTempPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
                var de = FileEntry("data/0000.tar" + suffix, data.Length, (UnixFileMode)0b110_000_000, "root", mtime);
                de.DataStream = data;
                await outer.WriteEntryAsync(de, ct).ConfigureAwait(false);
            }
            await hashOut.FlushAsync(ct).ConfigureAwait(false);
            var result = new ArtifactWriteResult(hashOut.BytesHashed, hashOut.HexDigest(), manifestText, signer is not null, written);
            await hashOut.DisposeAsync().ConfigureAwait(false);
            return result;
        }
        finally
        {
            TryDelete(dataTempPath);
        }
    }

    /// <summary>header.tar contents, in mender-artifact's order, compressed like the data.</summary>
    public static byte[] BuildHeader(ArtifactSpec spec, DateTimeOffset mtime)
    {
        var ms = new MemoryStream();
        using (var comp = Compression.Compress(ms, spec.Compression))
        {
            using var tar = new TarWriter(comp, TarEntryFormat.Ustar, leaveOpen: true);
            void Add(string name, string text)
            {
                var e = new UstarTarEntry(TarEntryType.RegularFile, name)
                {
                    Mode = (UnixFileMode)0b110_000_000,
                    Uid = 0,
                    Gid = 0,
                    ModificationTime = mtime,
                    DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)),
                };
                tar.WriteEntry(e);
            }
            Add("header-info", spec.HeaderInfo.ToArtifactJson());
            Add("headers/0000/type-info", spec.TypeInfo.ToArtifactJson());
            if (spec.MetaData is not null and not JsonNull)
                Add("headers/0000/meta-data", GoJson.Serialize(spec.MetaData, sortKeys: true, indent: false));
        }
        return ms.ToArray();
    }

    private static async Task WriteBytesAsync(TarWriter tar, string name, byte[] content, DateTimeOffset mtime, string owner, CancellationToken ct)
    {
        var e = new UstarTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = (UnixFileMode)0b110_000_000,
            Uid = 0,
            Gid = 0,
            UserName = owner,
            GroupName = owner,
            ModificationTime = mtime,
            DataStream = new MemoryStream(content),
        };
        await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
    }

    /// <summary>ustar like mender-artifact; PAX (ustar plus a size record) from 8 GiB on, which ustar cannot hold.</summary>
    private static TarEntry FileEntry(string name, long size, UnixFileMode mode, string owner, DateTimeOffset mtime)
    {
        PosixTarEntry e = size >= UstarMaxSize ? new PaxTarEntry(TarEntryType.RegularFile, name) : new UstarTarEntry(TarEntryType.RegularFile, name);
        e.Mode = mode;
        e.Uid = 0;
        e.Gid = 0;
        e.UserName = owner;
        e.GroupName = owner;
        e.ModificationTime = mtime;
        return e;
    }

    private const long UstarMaxSize = 8L * 1024 * 1024 * 1024 - 1;

    public static string Sha256Hex(ReadOnlySpan<byte> b) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(b));

    internal static void TryDelete(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Reports each chunk read through it (byte deltas) to <c>progress</c>.</summary>
public sealed class ProgressStream(Stream inner, IProgress<long>? progress) : Stream
{
    private long _total;
    public override bool CanRead => inner.CanRead;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => false;
    public override long Length => inner.Length;
    public override long Position { get => inner.CanSeek ? inner.Position : _total; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
    public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    private int Count(int n)
    {
        if (n > 0) { _total += n; progress?.Report(n); }
        return n;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
