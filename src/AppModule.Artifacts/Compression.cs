using System.IO.Compression;
using SharpCompress.Compressors.Xz;

namespace AppModule.Artifacts;

/// <summary>mender-artifact's --compression values. Signalled only by the member suffix.</summary>
public enum ArtifactCompression { None, Gzip, Lzma }

public static class Compression
{
    public static string Suffix(ArtifactCompression c) => c switch
    {
        ArtifactCompression.Gzip => ".gz",
        ArtifactCompression.Lzma => ".xz",
        _ => "",
    };

    public static string Name(ArtifactCompression c) => c switch
    {
        ArtifactCompression.Gzip => "gzip",
        ArtifactCompression.Lzma => "lzma",
        _ => "none",
    };

    public static bool TryParse(string s, out ArtifactCompression c)
    {
        switch (s)
        {
            case "none": c = ArtifactCompression.None; return true;
            case "gzip": c = ArtifactCompression.Gzip; return true;
            case "lzma": case "xz": c = ArtifactCompression.Lzma; return true;
            default: c = default; return false;
        }
    }

    /// <summary>A write stream that compresses into <paramref name="inner"/> (left open).</summary>
    public static Stream Compress(Stream inner, ArtifactCompression c) => c switch
    {
        ArtifactCompression.Gzip => new GZipStream(inner, CompressionLevel.Optimal, leaveOpen: true),
        ArtifactCompression.Lzma => new XzEncoderStream(inner, 6, leaveOpen: true),
        _ => new NonClosingStream(inner),
    };

    /// <summary>The compression a member or file name announces by its suffix (".gz", ".xz", else none).</summary>
    public static ArtifactCompression FromName(string name) =>
        name.EndsWith(".gz", StringComparison.Ordinal) || name.EndsWith(".tgz", StringComparison.Ordinal) ? ArtifactCompression.Gzip
        : name.EndsWith(".xz", StringComparison.Ordinal) ? ArtifactCompression.Lzma
        : ArtifactCompression.None;

    /// <summary>A read stream that decompresses <paramref name="inner"/> (left open).</summary>
    public static Stream Decompress(Stream inner, ArtifactCompression c) => c switch
    {
        ArtifactCompression.Gzip => new GZipStream(inner, CompressionMode.Decompress, leaveOpen: true),
        ArtifactCompression.Lzma => new XZStream(new NonClosingStream(inner)),
        _ => new NonClosingStream(inner),
    };
}

/// <summary>Forwards everything but Dispose.</summary>
internal sealed class NonClosingStream(Stream inner) : Stream
{
    public override bool CanRead => inner.CanRead;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => inner.CanWrite;
    public override long Length => inner.Length;
    public override long Position { get => inner.Position; set => inner.Position = value; }
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override int Read(Span<byte> buffer) => inner.Read(buffer);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
    public override void SetLength(long value) => inner.SetLength(value);
    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
}

/// <summary>Counts bytes and feeds them to an incremental SHA-256 as they pass (read or write).</summary>
public sealed class HashingStream(Stream inner, bool leaveOpen = true) : Stream
{
    private readonly System.Security.Cryptography.IncrementalHash _hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
    public long BytesHashed { get; private set; }
    public string HexDigest() => Convert.ToHexStringLower(_hash.GetHashAndReset());
    public override bool CanRead => inner.CanRead;
    // Reports the inner stream's seekability, length and position (never seeks) so that TarWriter,
    // which needs the size of an entry's data up front, can take a hashing stream over a file.
    public override bool CanSeek => inner.CanSeek && inner.CanRead;
    public override bool CanWrite => inner.CanWrite;
    public override long Length => inner.Length;
    public override long Position { get => inner.CanSeek ? inner.Position : BytesHashed; set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override int Read(Span<byte> buffer)
    {
        int n = inner.Read(buffer);
        _hash.AppendData(buffer[..n]);
        BytesHashed += n;
        return n;
    }
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        _hash.AppendData(buffer.Span[..n]);
        BytesHashed += n;
        return n;
    }
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _hash.AppendData(buffer);
        BytesHashed += buffer.Length;
        inner.Write(buffer);
    }
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _hash.AppendData(buffer.Span);
        BytesHashed += buffer.Length;
        await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
    }
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            if (!leaveOpen) inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
