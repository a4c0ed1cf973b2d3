namespace AppModule.Delta.Vcdiff;

/// <summary>
/// xdelta3's djw secondary compression (VCD_DJW_ID = 1): static multi-table Huffman coding in
/// the style of bzip2 (up to 8 code tables, each chosen per sector of the section by an MTF +
/// 1/2-run coded selector list; the tables' code lengths are themselves prefix coded after MTF and
/// 1/2-run coding). Stateless between sections. Bits are read least-significant first; multi-bit
/// values most-significant bit first. Follows xdelta3-djw.h; every table index is bounds-checked,
/// so invalid input raises <see cref="DeltaFormatException"/>.
/// </summary>
internal sealed class DjwSecondaryDecoder : ISecondaryDecoder
{
    private const int Alpha = 256;
    private const int MaxCodeLen = 20;
    private const int TotalCodes = MaxCodeLen + 2;
    private const int Run1 = 1;
    private const int ExtraCodeBits = 4;
    private const int Extra12Offset = 5 + 2;
    private const int MaxGroups = 8;
    private const int GroupBits = 3;
    private const int SectorSizeMult = 5;
    private const int SectorSizeBits = 5;
    private const int MaxClcLen = 15;
    private const int ClcLenBits = 4;
    private const int MaxGbcLen = 7;
    private const int GbcLenBits = 3;

    private static readonly byte[] Encode12Extra = [9, 10, 3, 11, 2, 12, 13, 1, 14, 15, 16, 17, 18, 19, 20];
    private static readonly byte[] Encode12Basic = [4, 5, 6, 7, 8];

    private sealed class Decoder
    {
        public byte[] Inorder;
        public uint[] Base;
        public uint[] Limit;
        public uint MinLen;
        public uint MaxLen;

        public Decoder(int asize, int absMax)
        {
            Inorder = new byte[asize];
            Base = new uint[absMax + 2];
            Limit = new uint[absMax + 2];
        }
    }

    private ref struct Bits
    {
        public ReadOnlySpan<byte> Input;
        public int Pos;
        public int CurByte;
        public int CurMask;
        public long Offset;

        public DeltaFormatException Error(string reason) => new(Offset, $"djw section: {reason}");

        public void NextByte()
        {
            if (Pos >= Input.Length)
            {
                throw Error("ended before its declared size");
            }
            CurByte = Input[Pos++];
            CurMask = 1;
        }

        public uint Read(int nbits)
        {
            uint value = 0;
            uint vmask = 1u << nbits;
            while (true)
            {
                if (CurMask == 0x100)
                {
                    NextByte();
                }
                vmask >>= 1;
                if ((CurByte & CurMask) != 0)
                {
                    value |= vmask;
                }
                CurMask <<= 1;
                if (vmask == 1)
                {
                    return value;
                }
            }
        }
    }

    public void Decode(ReadOnlySpan<byte> input, Span<byte> output, long offset, CancellationToken ct)
    {
        var bits = new Bits { Input = input, Pos = 0, CurByte = 0, CurMask = 0x100, Offset = offset };
        int outputBytes = output.Length;
        if (outputBytes == 0)
        {
            throw bits.Error("empty output");
        }
        int groups = (int)bits.Read(GroupBits) + 1;
        int sectorSize = groups > 1 ? ((int)bits.Read(SectorSizeBits) + 1) * SectorSizeMult : outputBytes;
        int sectors = 1 + ((outputBytes - 1) / sectorSize);

        // Code-length decoder, then the code lengths of every group's table.
        var cl = new Decoder(TotalCodes, MaxClcLen);
        byte[] clMtf = new byte[TotalCodes];
        {
            int numCodes = (int)bits.Read(ExtraCodeBits) + Extra12Offset;
            byte[] clClen = new byte[TotalCodes];
            for (int i = 0; i < numCodes; i++)
            {
                clClen[i] = (byte)bits.Read(ClcLenBits);
            }
            Build(ref bits, clClen, TotalCodes, MaxClcLen, cl);
            int k = 0;
            clMtf[k++] = 0;
            foreach (byte b in Encode12Basic)
            {
                clMtf[k++] = b;
            }
            foreach (byte b in Encode12Extra)
            {
                clMtf[k++] = b;
            }
        }
        byte[] clen = new byte[Alpha * groups];
        Decode12(ref bits, cl, clMtf, Alpha * groups, Alpha, clen, TotalCodes);
        var tables = new Decoder[groups];
        for (int g = 0; g < groups; g++)
        {
            var span = clen.AsSpan(g * Alpha, Alpha);
            foreach (byte l in span)
            {
                if (l > MaxCodeLen)
                {
                    throw bits.Error("code length out of range");
                }
            }
            tables[g] = new Decoder(Alpha, MaxCodeLen);
            Build(ref bits, span, Alpha, MaxCodeLen, tables[g]);
        }

        byte[]? selGroup = null;
        if (groups > 1)
        {
            byte[] selClen = new byte[groups + 1];
            byte[] selMtf = new byte[MaxGroups + 2];
            for (int g = 0; g < groups + 1; g++)
            {
                selClen[g] = (byte)bits.Read(GbcLenBits);
                selMtf[g] = (byte)g;
            }
            var sel = new Decoder(MaxGroups + 2, MaxGbcLen);
            Build(ref bits, selClen, groups + 1, MaxGbcLen, sel);
            selGroup = new byte[sectors];
            Decode12(ref bits, sel, selMtf, sectors, 0, selGroup, groups + 1);
        }

        int outPos = 0;
        var t = tables[0];
        for (int c = 0; c < sectors; c++)
        {
            if (selGroup is not null)
            {
                int gp = selGroup[c];
                if (gp >= groups)
                {
                    throw bits.Error("invalid group selector");
                }
                t = tables[gp];
            }
            int n = Math.Min(sectorSize, outputBytes - outPos);
            for (int k = 0; k < n; k++)
            {
                output[outPos++] = (byte)DecodeSymbol(ref bits, t, Alpha);
            }
            if ((c & 0x3FF) == 0)
            {
                ct.ThrowIfCancellationRequested();
            }
        }
        if (bits.Pos != input.Length)
        {
            throw bits.Error($"{input.Length - bits.Pos} unused bytes");
        }
    }

    private static void Build(ref Bits bits, ReadOnlySpan<byte> clen, int asize, int absMax, Decoder d)
    {
        Span<uint> nr = stackalloc uint[TotalCodes + 1];
        Span<uint> tmpBase = stackalloc uint[TotalCodes + 1];
        nr.Clear();
        tmpBase.Clear();
        for (int i = 0; i < asize; i++)
        {
            if (clen[i] > absMax)
            {
                throw bits.Error("code length out of range");
            }
            nr[clen[i]]++;
        }
        int min = 1;
        while (min <= absMax && nr[min] == 0)
        {
            min++;
        }
        int max = absMax;
        while (max != 0 && nr[max] == 0)
        {
            max--;
        }
        if (max == 0)
        {
            // No codes at all: any symbol read from this table is invalid (DecodeSymbol sees MaxLen 0).
            d.MinLen = (uint)min;
            d.MaxLen = 0;
            return;
        }
        tmpBase[min] = 0;
        d.Base[min] = 0;
        d.Limit[min] = nr[min] - 1;
        for (int i = min + 1; i <= max; i++)
        {
            uint lastLimit = (d.Limit[i - 1] + 1) << 1;
            tmpBase[i] = tmpBase[i - 1] + nr[i - 1];
            d.Limit[i] = lastLimit + nr[i] - 1;
            d.Base[i] = lastLimit - tmpBase[i];
        }
        for (int i = 0; i < asize; i++)
        {
            int l = clen[i];
            if (l != 0)
            {
                uint at = tmpBase[l]++;
                if (at >= d.Inorder.Length)
                {
                    throw bits.Error("code table overflow");
                }
                d.Inorder[at] = (byte)i;
            }
        }
        d.MinLen = (uint)min;
        d.MaxLen = (uint)max;
    }

    private static int DecodeSymbol(ref Bits bits, Decoder d, int maxSym)
    {
        uint code = 0;
        uint n = 0;
        while (true)
        {
            if (bits.CurMask == 0x100)
            {
                bits.NextByte();
            }
            if (n == d.MaxLen)
            {
                throw bits.Error("invalid code");
            }
            n++;
            code <<= 1;
            if ((bits.CurByte & bits.CurMask) != 0)
            {
                code |= 1;
            }
            bits.CurMask <<= 1;
            if (n >= d.MinLen && code <= d.Limit[n])
            {
                break;
            }
        }
        if (d.Base[n] <= code)
        {
            uint off = code - d.Base[n];
            if (off <= (uint)maxSym && off < (uint)d.Inorder.Length)
            {
                return d.Inorder[off];
            }
        }
        throw bits.Error("invalid code");
    }

    /// <summary>MTF + 1/2-run decoding of <paramref name="elts"/> values.</summary>
    private static void Decode12(ref Bits bits, Decoder d, byte[] mtfVals, int elts, int skipOffset, Span<byte> values, int alphabet)
    {
        int n = 0, s = 0;
        long rep = 0;
        int mtf = 0;
        while (n < elts)
        {
            if (skipOffset != 0 && n >= skipOffset && values[n - skipOffset] == 0)
            {
                values[n++] = 0;
                continue;
            }
            if (rep != 0)
            {
                values[n++] = mtfVals[0];
                rep--;
                continue;
            }
            if (mtf != 0)
            {
                if (mtf >= alphabet || mtf >= mtfVals.Length)
                {
                    throw bits.Error("invalid move-to-front index");
                }
                byte sym = mtfVals[mtf];
                for (int k = mtf; k != 0; k--)
                {
                    mtfVals[k] = mtfVals[k - 1];
                }
                mtfVals[0] = sym;
                values[n++] = sym;
                mtf = 0;
                continue;
            }
            mtf = DecodeSymbol(ref bits, d, TotalCodes);
            if (mtf <= Run1)
            {
                if (s > 40)
                {
                    throw bits.Error("invalid repeat code");
                }
                rep = (long)(mtf + 1) << s;
                mtf = 0;
                s++;
            }
            else
            {
                mtf--;
                s = 0;
            }
        }
        if (rep != 0)
        {
            throw bits.Error("invalid repeat code");
        }
    }
}
