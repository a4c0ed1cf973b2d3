namespace AppModule.Delta.Vcdiff;

/// <summary>Cursor over one in-memory section of a window (data, instructions or addresses).</summary>
internal struct Section
{
    public byte[] Buffer;
    public int Pos;
    public int End;
    public string Name;
    public long WindowOffset;

    public Section(string name, byte[] buffer, int length, long windowOffset)
    {
        Name = name;
        Buffer = buffer;
        Pos = 0;
        End = length;
        WindowOffset = windowOffset;
    }

    public readonly int Remaining => End - Pos;

    public DeltaFormatException Error(string reason) =>
        new(WindowOffset, $"{reason} ({Name} section, index {Pos})");

    public byte ReadByte()
    {
        if (Pos >= End)
        {
            throw Error("section underflow");
        }
        return Buffer[Pos++];
    }

    /// <summary>Reads a variable-length integer that must fit in 32 bits (xdelta3's usize_t).</summary>
    public uint ReadSize()
    {
        ulong value = 0;
        for (int i = 0; i < 5; i++)
        {
            byte b = ReadByte();
            value = (value << 7) | (uint)(b & 0x7F);
            if ((b & 0x80) == 0)
            {
                if (value > uint.MaxValue)
                {
                    throw Error("integer overflows 32 bits");
                }
                return (uint)value;
            }
        }
        throw Error("integer overflows 32 bits");
    }
}

/// <summary>A secondary decompressor for one section kind; it keeps its state across windows.</summary>
internal interface ISecondaryDecoder
{
    /// <summary>Decodes <paramref name="input"/> entirely into exactly <paramref name="output"/>.</summary>
    void Decode(ReadOnlySpan<byte> input, Span<byte> output, long offset, CancellationToken ct);
}
