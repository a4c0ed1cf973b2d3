namespace AppModule.Delta.Vcdiff;

/// <summary>Buffered forward reader over the delta stream that knows its byte offset.</summary>
internal sealed class DeltaReader
{
    private readonly Stream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _pos;
    private int _len;
    private long _consumedBefore;

    public DeltaReader(Stream stream) => _stream = stream;

    /// <summary>Offset of the next byte to be read.</summary>
    public long Position => _consumedBefore + _pos;

    private bool Fill(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        _consumedBefore += _len;
        _pos = 0;
        _len = 0;
        int n = _stream.Read(_buffer, 0, _buffer.Length);
        _len = n;
        return n > 0;
    }

    /// <summary>True when no byte remains.</summary>
    public bool AtEnd(CancellationToken ct) => _pos >= _len && !Fill(ct);

    public byte ReadByte(string what, CancellationToken ct)
    {
        if (_pos >= _len && !Fill(ct))
        {
            throw new DeltaFormatException(Position, $"unexpected end of delta while reading {what}");
        }
        return _buffer[_pos++];
    }

    /// <summary>Reads a VCDIFF variable-length integer (RFC 3284 section 2), at most 64 bits.</summary>
    public ulong ReadVarint(string what, CancellationToken ct)
    {
        long start = Position;
        ulong value = 0;
        for (int i = 0; i < 10; i++)
        {
            byte b = ReadByte(what, ct);
            if ((value >> 57) != 0)
            {
                throw new DeltaFormatException(start, $"{what} overflows 64 bits");
            }
            value = (value << 7) | (uint)(b & 0x7F);
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        throw new DeltaFormatException(start, $"{what} is not a valid integer (too many continuation bytes)");
    }

    /// <summary>Skips <paramref name="count"/> bytes.</summary>
    public void Skip(long count, string what, CancellationToken ct)
    {
        while (count > 0)
        {
            if (_pos >= _len && !Fill(ct))
            {
                throw new DeltaFormatException(Position, $"unexpected end of delta while skipping {what}");
            }
            int n = (int)Math.Min(count, _len - _pos);
            _pos += n;
            count -= n;
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes into <paramref name="dest"/>.</summary>
    public void ReadExactly(Span<byte> dest, string what, CancellationToken ct)
    {
        while (dest.Length > 0)
        {
            if (_pos >= _len && !Fill(ct))
            {
                throw new DeltaFormatException(Position, $"unexpected end of delta while reading {what}");
            }
            int n = Math.Min(dest.Length, _len - _pos);
            _buffer.AsSpan(_pos, n).CopyTo(dest);
            _pos += n;
            dest = dest[n..];
        }
    }
}
