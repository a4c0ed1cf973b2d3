using SharpCompress.Compressors.LZMA;

namespace AppModule.Delta.Vcdiff;

/// <summary>
/// xdelta3's lzma secondary compression (VCD_LZMA_ID = 2). Per section kind, xdelta3 runs ONE xz
/// stream (LZMA2 filter, no check) across all windows and ends every window with LZMA_SYNC_FLUSH:
/// the first compressed section starts with the xz stream header and block header, later sections
/// continue the same LZMA2 stream with its dictionary. The xz headers are parsed here (to bound the
/// dictionary size before anything is allocated); the LZMA2 chunks are decoded by SharpCompress.
/// </summary>
internal sealed class LzmaSecondaryDecoder : ISecondaryDecoder
{
    private readonly int _maxDictionary;
    private readonly FeedStream _feed = new();
    private LzmaStream? _lzma;

    public LzmaSecondaryDecoder(int maxDictionary) => _maxDictionary = maxDictionary;

    /// <summary>Dictionary bytes this stream may hold.</summary>
    public long DictionaryBytes { get; private set; }

    public void Decode(ReadOnlySpan<byte> input, Span<byte> output, long offset, CancellationToken ct)
    {
        if (_lzma is null)
        {
            int headerLen = ParseXzHeaders(input, offset, out byte dictProp);
            input = input[headerLen..];
            _feed.Append(input);
            _lzma = LzmaStream.Create([dictProp], _feed, -1, -1, true);
        }
        else
        {
            _feed.Append(input);
        }
        int done = 0;
        while (done < output.Length)
        {
            ct.ThrowIfCancellationRequested();
            int n = _lzma.Read(output[done..]);
            if (n <= 0)
            {
                throw new DeltaFormatException(offset, "lzma section ended before its declared size");
            }
            done += n;
        }
        if (_feed.Available != 0)
        {
            throw new DeltaFormatException(offset, $"lzma section has {_feed.Available} unused bytes");
        }
    }

    private int ParseXzHeaders(ReadOnlySpan<byte> s, long offset, out byte dictProp)
    {
        ReadOnlySpan<byte> magic = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00];
        if (s.Length < 12 + 8 || !s[..6].SequenceEqual(magic))
        {
            throw new DeltaFormatException(offset, "lzma section does not start with an xz stream header");
        }
        if (s[6] != 0 || s[7] > 0x0F)
        {
            throw new DeltaFormatException(offset, "unsupported xz stream flags");
        }
        if (Crc32(s.Slice(6, 2)) != BitConverter.ToUInt32(s.Slice(8, 4)))
        {
            throw new DeltaFormatException(offset, "xz stream header checksum mismatch");
        }
        int p = 12;
        int blockHeaderSize = (s[p] + 1) * 4;
        if (s[p] == 0 || s.Length < p + blockHeaderSize)
        {
            throw new DeltaFormatException(offset, "invalid xz block header");
        }
        ReadOnlySpan<byte> bh = s.Slice(p, blockHeaderSize);
        if (Crc32(bh[..^4]) != BitConverter.ToUInt32(bh[^4..]))
        {
            throw new DeltaFormatException(offset, "xz block header checksum mismatch");
        }
        byte flags = bh[1];
        if ((flags & 0x3C) != 0 || (flags & 0x03) != 0)
        {
            throw new DeltaFormatException(offset, "xz block uses filters other than a single LZMA2 filter");
        }
        int q = 2;
        if ((flags & 0x40) != 0)
        {
            ReadVli(bh, ref q, offset);
        }
        if ((flags & 0x80) != 0)
        {
            ReadVli(bh, ref q, offset);
        }
        ulong filterId = ReadVli(bh, ref q, offset);
        ulong propSize = ReadVli(bh, ref q, offset);
        if (filterId != 0x21 || propSize != 1 || q >= bh.Length - 4)
        {
            throw new DeltaFormatException(offset, $"xz filter 0x{filterId:X} is not LZMA2");
        }
        dictProp = bh[q];
        if (dictProp > 40)
        {
            throw new DeltaFormatException(offset, "invalid LZMA2 dictionary size");
        }
        long dict = dictProp == 40 ? uint.MaxValue : (2L | (dictProp & 1u)) << ((dictProp / 2) + 11);
        if (dict > _maxDictionary)
        {
            throw new DeltaFormatException(offset, $"LZMA2 dictionary of {dict} bytes exceeds the limit of {_maxDictionary}");
        }
        DictionaryBytes = dict;
        return p + blockHeaderSize;
    }

    private static ulong ReadVli(ReadOnlySpan<byte> s, ref int q, long offset)
    {
        ulong v = 0;
        for (int i = 0; i < 9; i++)
        {
            if (q >= s.Length)
            {
                throw new DeltaFormatException(offset, "truncated xz block header");
            }
            byte b = s[q++];
            v |= (ulong)(b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                return v;
            }
        }
        throw new DeltaFormatException(offset, "invalid xz integer");
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        return t;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data)
        {
            c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        }
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>A stream that returns the bytes appended so far, then reports end of input.</summary>
    private sealed class FeedStream : Stream
    {
        private byte[] _buf = new byte[4096];
        private int _start;
        private int _end;

        public int Available => _end - _start;

        public void Append(ReadOnlySpan<byte> data)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_buf.Length - _end < data.Length)
            {
                Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _end + data.Length));
            }
            data.CopyTo(_buf.AsSpan(_end));
            _end += data.Length;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, _end - _start);
            _buf.AsSpan(_start, n).CopyTo(buffer);
            _start += n;
            return n;
        }

        public override int ReadByte() => _start < _end ? _buf[_start++] : -1;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
