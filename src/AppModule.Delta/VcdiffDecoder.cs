using System.Buffers.Binary;
using System.Text;
using AppModule.Delta.Vcdiff;

namespace AppModule.Delta;

/// <summary>What a decode produced.</summary>
/// <param name="TargetBytes">Bytes written to the target stream.</param>
/// <param name="Windows">Number of windows decoded.</param>
/// <param name="ApplicationHeader">xdelta3 application header (e.g. <c>new//base/</c>), or null.</param>
/// <param name="SecondaryCompressor">"none", "lzma", "djw" or "fgk".</param>
/// <param name="PeakBufferBytes">Largest number of bytes the decoder held in its own buffers at once.</param>
/// <param name="CompressedSections">Number of sections that used secondary compression.</param>
public sealed record VcdiffDecodeResult(
    long TargetBytes, int Windows, string? ApplicationHeader, string SecondaryCompressor, long PeakBufferBytes, int CompressedSections);

/// <summary>
/// Native, streaming VCDIFF (RFC 3284) decoder that reads what xdelta3 3.0.x writes: the xdelta3
/// application header, the VCD_ADLER32 window checksum (verified), and secondary compression of the
/// data/instruction/address sections with lzma (xdelta3's default), djw or fgk.
/// <para>
/// Usage: <c>VcdiffDecoder.Decode(baseStream, deltaStream, targetStream, DeltaLimits.Default, ct)</c>.
/// <c>source</c> must be seekable when the delta copies from it (pass <see cref="Stream.Null"/> or
/// null for deltas made without <c>-s</c>); <c>delta</c> is read forward once; the target is written
/// forward, one window at a time (no seeking, no reading back).
/// </para>
/// <para>
/// Errors: every malformed or hostile input raises <see cref="DeltaFormatException"/> with the
/// offset in the delta and the reason; buffers are bounded by <see cref="DeltaLimits"/>; the loop
/// always terminates because every step consumes delta input. Windows that copy from earlier target
/// data (VCD_TARGET, which xdelta3 never writes) and custom code tables are rejected.
/// </para>
/// </summary>
public static class VcdiffDecoder
{
    private const byte VcdSecondary = 0x01;
    private const byte VcdCodeTable = 0x02;
    private const byte VcdAppHeader = 0x04;
    private const byte VcdSource = 0x01;
    private const byte VcdTarget = 0x02;
    private const byte VcdAdler32 = 0x04;
    private const byte VcdDataComp = 0x01;
    private const byte VcdInstComp = 0x02;
    private const byte VcdAddrComp = 0x04;

    private const int NearSize = 4;
    private const int SameSize = 3;

    /// <summary>Decodes <paramref name="delta"/> against <paramref name="source"/> into <paramref name="target"/>.</summary>
    /// <exception cref="DeltaFormatException">The delta is malformed, exceeds a limit, or does not fit the source.</exception>
    public static VcdiffDecodeResult Decode(Stream? source, Stream delta, Stream target, DeltaLimits? limits, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(delta);
        ArgumentNullException.ThrowIfNull(target);
        limits ??= DeltaLimits.Default;
        var state = new DecoderState(source, delta, target, limits);
        return state.Run(ct);
    }

    /// <summary>Convenience overload: decodes files.</summary>
    public static VcdiffDecodeResult DecodeFile(string? sourcePath, string deltaPath, string targetPath, DeltaLimits? limits, CancellationToken ct)
    {
        using var src = sourcePath is null ? null : new FileStream(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        using var d = new FileStream(deltaPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var t = new FileStream(targetPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        return Decode(src, d, t, limits, ct);
    }

    /// <summary>
    /// Reads only the header and window headers of a delta and returns the size of the target it
    /// decodes to (the sum of its target window lengths), without decoding anything.
    /// </summary>
    public static long ReadTargetSize(Stream delta, DeltaLimits? limits, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(delta);
        limits ??= DeltaLimits.Default;
        var r = new DeltaReader(delta);
        Span<byte> magic = stackalloc byte[4];
        r.ReadExactly(magic, "VCDIFF magic", ct);
        if (magic[0] != 0xD6 || magic[1] != 0xC3 || magic[2] != 0xC4 || magic[3] != 0)
        {
            throw new DeltaFormatException(0, "not a VCDIFF delta (bad magic; expected D6 C3 C4 00)");
        }
        byte hdr = r.ReadByte("header indicator", ct);
        if ((hdr & ~(VcdSecondary | VcdCodeTable | VcdAppHeader)) != 0 || (hdr & VcdCodeTable) != 0)
        {
            throw new DeltaFormatException(4, $"unsupported header indicator 0x{hdr:X2}");
        }
        if ((hdr & VcdSecondary) != 0)
        {
            r.ReadByte("secondary compressor id", ct);
        }
        if ((hdr & VcdAppHeader) != 0)
        {
            long at = r.Position;
            ulong len = r.ReadVarint("application header length", ct);
            if (len > (ulong)limits.MaxAppHeaderSize)
            {
                throw new DeltaFormatException(at, "application header too large");
            }
            r.Skip((long)len, "application header", ct);
        }
        long total = 0;
        while (!r.AtEnd(ct))
        {
            long winAt = r.Position;
            byte winInd = r.ReadByte("window indicator", ct);
            if ((winInd & ~(VcdSource | VcdTarget | VcdAdler32)) != 0)
            {
                throw new DeltaFormatException(winAt, $"unknown window indicator bits 0x{winInd:X2}");
            }
            if ((winInd & (VcdSource | VcdTarget)) != 0)
            {
                r.ReadVarint("source segment length", ct);
                r.ReadVarint("source segment offset", ct);
            }
            long encAt = r.Position;
            ulong encLen = r.ReadVarint("delta encoding length", ct);
            long start = r.Position;
            ulong tgtLen = r.ReadVarint("target window length", ct);
            if (tgtLen > (ulong)limits.MaxTargetWindowSize || encLen > (ulong)limits.MaxEncodedWindowSize + 64)
            {
                throw new DeltaFormatException(encAt, "window exceeds the configured limits");
            }
            long consumed = r.Position - start;
            if ((long)encLen < consumed)
            {
                throw new DeltaFormatException(encAt, "delta encoding length too small");
            }
            r.Skip((long)encLen - consumed, "window", ct);
            total += (long)tgtLen;
            if (total > limits.MaxTargetSize)
            {
                throw new DeltaFormatException(winAt, $"output would exceed the limit of {limits.MaxTargetSize} bytes");
            }
        }
        return total;
    }

    private sealed class DecoderState
    {
        private readonly Stream? _source;
        private readonly DeltaReader _in;
        private readonly Stream _target;
        private readonly DeltaLimits _limits;

        private readonly long[] _near = new long[NearSize];
        private readonly long[] _same = new long[SameSize * 256];
        private int _nextSlot;

        private ISecondaryDecoder?[] _secondary = new ISecondaryDecoder?[3];
        private Func<ISecondaryDecoder>? _secondaryFactory;
        private string _secondaryName = "none";

        private byte[] _targetBuf = [];
        private byte[] _encoded = [];
        private readonly byte[][] _decompressed = [[], [], []];
        private byte[] _sourceCache = [];
        private long _sourceCacheStart = -1;
        private int _sourceCacheLen;
        private long _peak;
        private long _sourceLength = -1;
        private int _compressedSections;

        public DecoderState(Stream? source, Stream delta, Stream target, DeltaLimits limits)
        {
            _source = source;
            _in = new DeltaReader(delta);
            _target = target;
            _limits = limits;
        }

        public VcdiffDecodeResult Run(CancellationToken ct)
        {
            Span<byte> magic = stackalloc byte[4];
            _in.ReadExactly(magic, "VCDIFF magic", ct);
            if (magic[0] != 0xD6 || magic[1] != 0xC3 || magic[2] != 0xC4)
            {
                throw new DeltaFormatException(0, "not a VCDIFF delta (bad magic; expected D6 C3 C4)");
            }
            if (magic[3] != 0)
            {
                throw new DeltaFormatException(3, $"unsupported VCDIFF version {magic[3]}");
            }
            long hdrOffset = _in.Position;
            byte hdr = _in.ReadByte("header indicator", ct);
            if ((hdr & ~(VcdSecondary | VcdCodeTable | VcdAppHeader)) != 0)
            {
                throw new DeltaFormatException(hdrOffset, $"unknown header indicator bits 0x{hdr:X2}");
            }
            if ((hdr & VcdSecondary) != 0)
            {
                long idOffset = _in.Position;
                byte id = _in.ReadByte("secondary compressor id", ct);
                (_secondaryName, _secondaryFactory) = id switch
                {
                    2 => ("lzma", (Func<ISecondaryDecoder>)(() => new LzmaSecondaryDecoder(_limits.MaxLzmaDictionarySize))),
                    1 => ("djw", () => new DjwSecondaryDecoder()),
                    16 => ("fgk", () => new FgkSecondaryDecoder()),
                    _ => throw new DeltaFormatException(idOffset, $"unknown secondary compressor id {id}"),
                };
            }
            if ((hdr & VcdCodeTable) != 0)
            {
                throw new DeltaFormatException(hdrOffset, "application-defined code tables are not supported (xdelta3 does not write them)");
            }
            string? appHeader = null;
            if ((hdr & VcdAppHeader) != 0)
            {
                long lenOffset = _in.Position;
                ulong len = _in.ReadVarint("application header length", ct);
                if (len > (ulong)_limits.MaxAppHeaderSize)
                {
                    throw new DeltaFormatException(lenOffset, $"application header of {len} bytes exceeds the limit of {_limits.MaxAppHeaderSize}");
                }
                byte[] app = new byte[(int)len];
                _in.ReadExactly(app, "application header", ct);
                appHeader = Encoding.UTF8.GetString(app);
                CheckExternalCompression(appHeader, lenOffset);
            }

            long total = 0;
            int windows = 0;
            while (!_in.AtEnd(ct))
            {
                total += DecodeWindow(total, ct);
                windows++;
            }
            _target.Flush();
            return new VcdiffDecodeResult(total, windows, appHeader, _secondaryName, _peak, _compressedSections);
        }

        private long DecodeWindow(long totalSoFar, CancellationToken ct)
        {
            long winOffset = _in.Position;
            byte winInd = _in.ReadByte("window indicator", ct);
            if ((winInd & ~(VcdSource | VcdTarget | VcdAdler32)) != 0)
            {
                throw new DeltaFormatException(winOffset, $"unknown window indicator bits 0x{winInd:X2}");
            }
            if ((winInd & VcdTarget) != 0)
            {
                throw new DeltaFormatException(winOffset,
                    (winInd & VcdSource) != 0 ? "window sets both VCD_SOURCE and VCD_TARGET" : "VCD_TARGET windows are not supported (xdelta3 does not write them)");
            }
            ulong cpyLen = 0, cpyOff = 0;
            if ((winInd & VcdSource) != 0)
            {
                long at = _in.Position;
                cpyLen = _in.ReadVarint("source segment length", ct);
                cpyOff = _in.ReadVarint("source segment offset", ct);
                if (_source is null || !_source.CanSeek || !_source.CanRead)
                {
                    throw new DeltaFormatException(at, "the delta copies from a source (base) but no seekable source stream was given");
                }
                if (_sourceLength < 0)
                {
                    _sourceLength = _source.Length;
                }
                if (cpyLen > uint.MaxValue || cpyOff > long.MaxValue / 2 || (long)cpyOff + (long)cpyLen > _sourceLength)
                {
                    throw new DeltaFormatException(at,
                        $"source segment [{cpyOff}, +{cpyLen}) lies outside the source of {_sourceLength} bytes (wrong base?)");
                }
            }
            long encLenAt = _in.Position;
            ulong encLen = _in.ReadVarint("delta encoding length", ct);
            long tgtAt = _in.Position;
            ulong tgtLen = _in.ReadVarint("target window length", ct);
            if (tgtLen > (ulong)_limits.MaxTargetWindowSize)
            {
                throw new DeltaFormatException(tgtAt, $"target window of {tgtLen} bytes exceeds the limit of {_limits.MaxTargetWindowSize}");
            }
            if (totalSoFar + (long)tgtLen > _limits.MaxTargetSize)
            {
                throw new DeltaFormatException(tgtAt, $"output would exceed the limit of {_limits.MaxTargetSize} bytes");
            }
            long delAt = _in.Position;
            byte delInd = _in.ReadByte("delta indicator", ct);
            if ((delInd & ~(VcdDataComp | VcdInstComp | VcdAddrComp)) != 0)
            {
                throw new DeltaFormatException(delAt, $"unknown delta indicator bits 0x{delInd:X2}");
            }
            if (delInd != 0 && _secondaryFactory is null)
            {
                throw new DeltaFormatException(delAt, "section marked compressed but the header names no secondary compressor");
            }
            ulong dataLen = _in.ReadVarint("data section length", ct);
            ulong instLen = _in.ReadVarint("instructions section length", ct);
            ulong addrLen = _in.ReadVarint("addresses section length", ct);
            uint expectedAdler = 0;
            if ((winInd & VcdAdler32) != 0)
            {
                Span<byte> ck = stackalloc byte[4];
                _in.ReadExactly(ck, "window checksum", ct);
                expectedAdler = BinaryPrimitives.ReadUInt32BigEndian(ck);
            }
            ulong sum = dataLen + instLen + addrLen;
            if (dataLen > int.MaxValue || instLen > int.MaxValue || addrLen > int.MaxValue || sum > (ulong)_limits.MaxEncodedWindowSize)
            {
                throw new DeltaFormatException(encLenAt, $"window sections of {sum} bytes exceed the limit of {_limits.MaxEncodedWindowSize}");
            }
            ulong check = 1 + (ulong)(SizeOfVarint(tgtLen) + SizeOfVarint(dataLen) + SizeOfVarint(instLen) + SizeOfVarint(addrLen))
                + sum + ((winInd & VcdAdler32) != 0 ? 4UL : 0UL);
            if (encLen != check)
            {
                throw new DeltaFormatException(encLenAt, $"delta encoding length {encLen} does not match the window's contents ({check})");
            }

            // Read the three sections into one buffer that grows only as input actually arrives.
            int encSize = (int)sum;
            ReadGrowing(ref _encoded, encSize, ct);
            long sectionsAt = _in.Position - encSize;

            var data = new Section("data", _encoded, (int)dataLen, sectionsAt);
            var inst = new Section("instructions", _encoded, (int)instLen, sectionsAt) { Pos = (int)dataLen, End = (int)(dataLen + instLen) };
            var addr = new Section("addresses", _encoded, (int)addrLen, sectionsAt) { Pos = (int)(dataLen + instLen), End = encSize };
            if ((delInd & VcdDataComp) != 0)
            {
                data = Decompress(0, data, ct);
            }
            if ((delInd & VcdInstComp) != 0)
            {
                inst = Decompress(1, inst, ct);
            }
            if ((delInd & VcdAddrComp) != 0)
            {
                addr = Decompress(2, addr, ct);
            }

            int tgt = (int)tgtLen;
            if (_targetBuf.Length < tgt)
            {
                _targetBuf = new byte[tgt];
            }
            if (cpyLen > 0 && _sourceCache.Length == 0)
            {
                _sourceCache = new byte[_limits.SourceCacheSize];
            }
            TrackPeak();

            Execute(ref data, ref inst, ref addr, (long)cpyLen, (long)cpyOff, tgt, winOffset, ct);

            if ((winInd & VcdAdler32) != 0)
            {
                uint actual = Adler32.Compute(_targetBuf.AsSpan(0, tgt));
                if (actual != expectedAdler)
                {
                    throw new DeltaFormatException(winOffset,
                        $"target window checksum mismatch (adler32 {actual:x8}, expected {expectedAdler:x8}): wrong base or corrupted delta");
                }
            }
            ct.ThrowIfCancellationRequested();
            _target.Write(_targetBuf, 0, tgt);
            return tgt;
        }

        /// <summary>
        /// xdelta3's application header is "target/targetcomp/source/sourcecomp". A non-empty
        /// compression field means xdelta3 decompressed that input with an external program (gzip,
        /// bzip2, xz...) before encoding, and its decoder recompresses the output, which does not
        /// reproduce the original bytes. Such deltas are refused.
        /// </summary>
        private static void CheckExternalCompression(string header, long offset)
        {
            string[] parts = header.Split('/');
            if (parts.Length == 4 && (parts[1].Length > 0 || parts[3].Length > 0))
            {
                throw new DeltaFormatException(offset,
                    $"xdelta3 made this delta on externally decompressed input (application header \"{header}\": " +
                    "target/source compression fields are set); its output would have to be recompressed and would not match the original bytes. " +
                    "Create the delta with `xdelta3 -D -R -e -s ...` or from uncompressed files");
            }
        }

        private void TrackPeak()
        {
            long held = _targetBuf.Length + _encoded.Length + _sourceCache.Length
                + _decompressed[0].Length + _decompressed[1].Length + _decompressed[2].Length;
            foreach (var s in _secondary)
            {
                if (s is LzmaSecondaryDecoder l)
                {
                    held += l.DictionaryBytes;
                }
            }
            _peak = Math.Max(_peak, held);
        }

        private void ReadGrowing(ref byte[] buffer, int size, CancellationToken ct)
        {
            const int Step = 1 << 20;
            if (buffer.Length >= size)
            {
                _in.ReadExactly(buffer.AsSpan(0, size), "window sections", ct);
                return;
            }
            int have = 0;
            while (have < size)
            {
                int want = Math.Min(size, Math.Max(have * 2, have + Step));
                if (buffer.Length < want)
                {
                    Array.Resize(ref buffer, want);
                }
                int chunk = want - have;
                _in.ReadExactly(buffer.AsSpan(have, chunk), "window sections", ct);
                have += chunk;
            }
        }

        private Section Decompress(int kind, Section sect, CancellationToken ct)
        {
            _compressedSections++;
            uint decSize = sect.ReadSize();
            int cap = _limits.MaxTargetWindowSize * 2 + 4096;
            if (decSize == 0 || decSize > (uint)cap)
            {
                throw sect.Error($"secondary decompressed size {decSize} is invalid (limit {cap})");
            }
            _secondary[kind] ??= _secondaryFactory!();
            ref byte[] buf = ref _decompressed[kind];
            if (buf.Length < (int)decSize)
            {
                buf = new byte[(int)decSize];
            }
            try
            {
                _secondary[kind]!.Decode(sect.Buffer.AsSpan(sect.Pos, sect.Remaining), buf.AsSpan(0, (int)decSize), sect.WindowOffset, ct);
            }
            catch (DeltaFormatException)
            {
                throw;
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new DeltaFormatException(sect.WindowOffset, $"{_secondaryName} decompression of the {sect.Name} section failed: {e.Message}", e);
            }
            return new Section(sect.Name, buf, (int)decSize, sect.WindowOffset);
        }

        private void Execute(ref Section data, ref Section inst, ref Section addr, long cpyLen, long cpyOff, int tgtLen, long winOffset, CancellationToken ct)
        {
            Array.Clear(_near);
            Array.Clear(_same);
            _nextSlot = 0;
            long maxPos = cpyLen + tgtLen;
            long here = cpyLen; // address of the next target byte in the combined address space
            int outPos = 0;
            int ops = 0;
            while (inst.Remaining > 0)
            {
                if ((++ops & 0xFFFF) == 0)
                {
                    ct.ThrowIfCancellationRequested();
                }
                byte op = inst.ReadByte();
                for (int half = 0; half < 2; half++)
                {
                    InstType type = half == 0 ? CodeTable.Type1[op] : CodeTable.Type2[op];
                    if (type == InstType.Noop)
                    {
                        continue;
                    }
                    uint size = half == 0 ? CodeTable.Size1[op] : CodeTable.Size2[op];
                    if (size == 0)
                    {
                        size = inst.ReadSize();
                    }
                    if (here + size > maxPos)
                    {
                        throw inst.Error($"instruction of {size} bytes overflows the target window of {tgtLen} bytes");
                    }
                    int n = (int)size;
                    switch (type)
                    {
                        case InstType.Add:
                            if (data.Remaining < n)
                            {
                                throw data.Error("data underflow in ADD");
                            }
                            data.Buffer.AsSpan(data.Pos, n).CopyTo(_targetBuf.AsSpan(outPos, n));
                            data.Pos += n;
                            break;
                        case InstType.Run:
                            _targetBuf.AsSpan(outPos, n).Fill(data.ReadByte());
                            break;
                        default:
                            {
                                int mode = half == 0 ? CodeTable.Mode1[op] : CodeTable.Mode2[op];
                                long a = DecodeAddress(ref addr, here, mode);
                                if (a >= here)
                                {
                                    throw addr.Error($"copy address {a} is not before the current position {here}");
                                }
                                if (a < cpyLen)
                                {
                                    if (a + n > cpyLen)
                                    {
                                        throw addr.Error($"copy of {n} bytes at {a} crosses the end of the source segment ({cpyLen})");
                                    }
                                    ReadSource(cpyOff + a, _targetBuf.AsSpan(outPos, n), winOffset);
                                }
                                else
                                {
                                    int from = (int)(a - cpyLen);
                                    if (from + n <= outPos)
                                    {
                                        _targetBuf.AsSpan(from, n).CopyTo(_targetBuf.AsSpan(outPos, n));
                                    }
                                    else
                                    {
                                        // Overlapping copy: byte by byte, as RFC 3284 requires.
                                        byte[] t = _targetBuf;
                                        for (int k = 0; k < n; k++)
                                        {
                                            t[outPos + k] = t[from + k];
                                        }
                                    }
                                }
                                break;
                            }
                    }
                    outPos += n;
                    here += n;
                }
            }
            if (outPos != tgtLen)
            {
                throw new DeltaFormatException(winOffset, $"window produced {outPos} bytes but declares {tgtLen}");
            }
            if (data.Remaining != 0)
            {
                throw data.Error("unused data at end of window");
            }
            if (addr.Remaining != 0)
            {
                throw addr.Error("unused addresses at end of window");
            }
        }

        private long DecodeAddress(ref Section addr, long here, int mode)
        {
            long a;
            if (mode == 0)
            {
                a = addr.ReadSize();
            }
            else if (mode == 1)
            {
                a = here - addr.ReadSize();
                if (a < 0)
                {
                    throw addr.Error("HERE-relative address before the window start");
                }
            }
            else if (mode < 2 + NearSize)
            {
                a = _near[mode - 2] + addr.ReadSize();
            }
            else
            {
                int m = mode - (2 + NearSize);
                a = _same[(m * 256) + addr.ReadByte()];
            }
            _near[_nextSlot] = a;
            _nextSlot = (_nextSlot + 1) % NearSize;
            _same[a % (SameSize * 256)] = a;
            return a;
        }

        private void ReadSource(long position, Span<byte> dest, long winOffset)
        {
            if (position >= _sourceCacheStart && position + dest.Length <= _sourceCacheStart + _sourceCacheLen)
            {
                _sourceCache.AsSpan((int)(position - _sourceCacheStart), dest.Length).CopyTo(dest);
                return;
            }
            if (dest.Length >= _sourceCache.Length)
            {
                _source!.Position = position;
                ReadSourceExactly(dest, position, winOffset);
                return;
            }
            int len = (int)Math.Min(_sourceCache.Length, _sourceLength - position);
            _source!.Position = position;
            _sourceCacheStart = -1;
            ReadSourceExactly(_sourceCache.AsSpan(0, len), position, winOffset);
            _sourceCacheStart = position;
            _sourceCacheLen = len;
            _sourceCache.AsSpan(0, dest.Length).CopyTo(dest);
        }

        private void ReadSourceExactly(Span<byte> dest, long position, long winOffset)
        {
            while (dest.Length > 0)
            {
                int n = _source!.Read(dest);
                if (n <= 0)
                {
                    throw new DeltaFormatException(winOffset, $"source (base) ended early at byte {position} (wrong base?)");
                }
                dest = dest[n..];
                position += n;
            }
        }

        private static int SizeOfVarint(ulong v)
        {
            int n = 1;
            while ((v >>= 7) != 0)
            {
                n++;
            }
            return n;
        }
    }
}

internal static class Adler32
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        const uint Mod = 65521;
        uint a = 1, b = 0;
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, 5552);
            for (int i = 0; i < n; i++)
            {
                a += data[i];
                b += a;
            }
            a %= Mod;
            b %= Mod;
            data = data[n..];
        }
        return (b << 16) | a;
    }
}
