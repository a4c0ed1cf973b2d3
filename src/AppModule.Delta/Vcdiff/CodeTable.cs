namespace AppModule.Delta.Vcdiff;

internal enum InstType : byte
{
    Noop = 0,
    Add = 1,
    Run = 2,
    Copy = 3,
}

/// <summary>The default instruction code table of RFC 3284, section 5.6.</summary>
internal static class CodeTable
{
    // Per opcode: type1, size1, mode1, type2, size2, mode2.
    public static readonly InstType[] Type1 = new InstType[256];
    public static readonly byte[] Size1 = new byte[256];
    public static readonly byte[] Mode1 = new byte[256];
    public static readonly InstType[] Type2 = new InstType[256];
    public static readonly byte[] Size2 = new byte[256];
    public static readonly byte[] Mode2 = new byte[256];

    static CodeTable()
    {
        int i = 0;
        Set(i++, InstType.Run, 0, 0);
        for (int size = 0; size <= 17; size++)
        {
            Set(i++, InstType.Add, (byte)size, 0);
        }
        for (int mode = 0; mode <= 8; mode++)
        {
            Set(i++, InstType.Copy, 0, (byte)mode);
            for (int size = 4; size <= 18; size++)
            {
                Set(i++, InstType.Copy, (byte)size, (byte)mode);
            }
        }
        for (int mode = 0; mode <= 5; mode++)
        {
            for (int addSize = 1; addSize <= 4; addSize++)
            {
                for (int copySize = 4; copySize <= 6; copySize++)
                {
                    Set(i, InstType.Add, (byte)addSize, 0);
                    Set2(i++, InstType.Copy, (byte)copySize, (byte)mode);
                }
            }
        }
        for (int mode = 6; mode <= 8; mode++)
        {
            for (int addSize = 1; addSize <= 4; addSize++)
            {
                Set(i, InstType.Add, (byte)addSize, 0);
                Set2(i++, InstType.Copy, 4, (byte)mode);
            }
        }
        for (int mode = 0; mode <= 8; mode++)
        {
            Set(i, InstType.Copy, 4, (byte)mode);
            Set2(i++, InstType.Add, 1, 0);
        }
        if (i != 256)
        {
            throw new InvalidOperationException("code table construction error");
        }
    }

    private static void Set(int i, InstType t, byte size, byte mode)
    {
        Type1[i] = t;
        Size1[i] = size;
        Mode1[i] = mode;
    }

    private static void Set2(int i, InstType t, byte size, byte mode)
    {
        Type2[i] = t;
        Size2[i] = size;
        Mode2[i] = mode;
    }
}
