using System.Formats.Tar;
using System.Text;

namespace AppModule.Core.Archives;

/// <summary>
/// System.Formats.Tar's <see cref="TarReader"/> under a <see cref="TarEntryPolicy"/>: every entry it hands
/// out is of a type the policy accepts, and every other one, including those TarReader itself cannot read
/// (a GNU sparse file makes it throw <see cref="NotSupportedException"/> before the entry exists), becomes
/// the caller's own exception, built by <c>error</c> from the policy's message with the entry's name and type.
/// </summary>
public sealed class CheckedTarReader : IDisposable, IAsyncDisposable
{
    private readonly HeaderTap _tap;
    private readonly TarReader _reader;
    private readonly string _archive;
    private readonly TarEntryPolicy _policy;
    private readonly Func<string, Exception> _error;

    /// <param name="archive">the archive as the message should name it (a path, or e.g. "the artifact")</param>
    /// <param name="policy">the entry types this reader accepts</param>
    /// <param name="error">the caller's exception for a refused entry, from the message (add what to do next)</param>
    /// <param name="leaveOpen">leave <paramref name="stream"/> open on dispose</param>
    public CheckedTarReader(Stream stream, string archive, TarEntryPolicy policy, Func<string, Exception> error, bool leaveOpen = false)
    {
        _tap = new HeaderTap(stream, leaveOpen);
        _reader = new TarReader(_tap, leaveOpen: false);
        _archive = archive;
        _policy = policy;
        _error = error;
    }

    /// <summary>The next entry (null at the end); throws the caller's exception for an entry the policy refuses.</summary>
    public TarEntry? GetNextEntry(bool copyData = false)
    {
        TarEntry? e;
        try
        {
            e = _reader.GetNextEntry(copyData);
        }
        catch (NotSupportedException)
        {
            throw Unreadable();
        }
        catch (ArgumentOutOfRangeException past) when (_tap.CanSeek)
        {
            throw Truncated(past);
        }

        return Checked(e);
    }

    /// <inheritdoc cref="GetNextEntry"/>
    public async ValueTask<TarEntry?> GetNextEntryAsync(bool copyData, CancellationToken ct)
    {
        TarEntry? e;
        try
        {
            e = await _reader.GetNextEntryAsync(copyData, ct).ConfigureAwait(false);
        }
        catch (NotSupportedException)
        {
            throw Unreadable();
        }
        catch (ArgumentOutOfRangeException past) when (_tap.CanSeek)
        {
            throw Truncated(past);
        }

        return Checked(e);
    }

    private TarEntry? Checked(TarEntry? e)
    {
        if (e is not null && _policy.Check(_archive, e.Name, e.EntryType) is { } refusal)
        {
            throw _error(refusal);
        }

        return e;
    }

    /// <summary>TarReader refused the header it just read: name the entry and type from that header.</summary>
    private Exception Unreadable()
    {
        var (name, type) = _tap.LastHeader() ?? ("?", TarEntryType.SparseFile);
        return _error(_policy.Refusal(_archive, name, type));
    }

    /// <summary>
    /// On a seekable stream TarReader skips an entry's data by moving Position past it; when the archive ends
    /// before that data does (a tar inside another tar, cut short), the stream refuses the position with an
    /// <see cref="ArgumentOutOfRangeException"/>. That is a truncated archive, reported as the end of the stream
    /// every caller already maps to its own "truncated" error.
    /// </summary>
    private EndOfStreamException Truncated(ArgumentOutOfRangeException e)
    {
        var entry = _tap.LastHeader(anyType: true) is { } h ? $" inside the data of \"{h.Name}\"" : string.Empty;
        return new EndOfStreamException($"{_archive} ends{entry}: it is truncated", e);
    }

    public void Dispose() => _reader.Dispose();

    public ValueTask DisposeAsync() => _reader.DisposeAsync();

    /// <summary>Passes reads through and keeps the last 512 bytes read: TarReader throws right after reading a
    /// header it does not support, so they are that header.</summary>
    private sealed class HeaderTap(Stream inner, bool leaveOpen) : Stream
    {
        private const int Block = 512;
        private readonly byte[] _last = new byte[Block];
        private int _filled;

        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => inner.CanSeek;

        public override bool CanWrite => false;

        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set
            {
                inner.Position = value;
                _filled = 0;
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = inner.Read(buffer);
            Keep(buffer[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            Keep(buffer.Span[..n]);
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            _filled = 0;
            return inner.Seek(offset, origin);
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        /// <summary>Name and type from the last 512 bytes read, when they are a header (of an entry type TarReader refuses
        /// unless <paramref name="anyType"/>; its checksum is not checked: TarReader does not check it either, so a
        /// damaged header may get this far).</summary>
        public (string Name, TarEntryType Type)? LastHeader(bool anyType = false)
        {
            var h = _last.AsSpan();
            if (_filled < Block || (!anyType && h[156] != (byte)TarEntryType.SparseFile) || h[..100].IndexOfAnyExcept((byte)0) < 0)
            {
                return null;
            }

            var name = Text(h[..100]);
            var prefix = h.Slice(257, 6).SequenceEqual("ustar\0"u8) ? Text(h.Slice(345, 155)) : string.Empty;
            return (prefix.Length > 0 ? prefix + "/" + name : name, (TarEntryType)h[156]);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && !leaveOpen)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            if (!leaveOpen)
            {
                await inner.DisposeAsync().ConfigureAwait(false);
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }

        private void Keep(ReadOnlySpan<byte> read)
        {
            if (read.Length >= Block)
            {
                read[^Block..].CopyTo(_last);
                _filled = Block;
                return;
            }

            var keep = Math.Min(_filled, Block - read.Length);
            _last.AsSpan(_filled - keep, keep).CopyTo(_last);
            read.CopyTo(_last.AsSpan(keep));
            _filled = keep + read.Length;
        }

        private static string Text(ReadOnlySpan<byte> field)
        {
            var end = field.IndexOf((byte)0);
            return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
        }
    }
}
