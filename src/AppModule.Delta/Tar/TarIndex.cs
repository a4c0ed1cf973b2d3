using System.Formats.Tar;
using System.Text;
using AppModule.Core.Archives;

namespace AppModule.Delta.Tar;

/// <summary>One member of a tar archive, with its position in the (seekable) archive stream.</summary>
/// <param name="Name">Name as stored (may start with "./").</param>
/// <param name="Type">Typeflag: '0' file, '5' directory, '2' symlink, '1' hard link, ...</param>
/// <param name="HeaderStart">Offset of the first header block (including GNU long-name / pax blocks).</param>
/// <param name="DataStart">Offset of the data.</param>
/// <param name="Size">Data size.</param>
/// <param name="LinkName">Link target for links.</param>
internal sealed record TarItem(string Name, char Type, long HeaderStart, long DataStart, long Size, string LinkName)
{
    /// <summary>Name without a leading "./" or "/".</summary>
    public string Path => TarIndex.Normalize(Name);

    public bool IsFile => Type is '0' or '\0' or '7';

    /// <summary>End of this member, data padding included.</summary>
    public long End => DataStart + ((Size + 511) & ~511L);
}

/// <summary>Minimal tar reader (ustar, GNU long names, pax path/size) that records member offsets; entry types
/// follow <see cref="TarEntryPolicy.FilesDirectoriesAndLinks"/>, as every tar reader of the project does.</summary>
internal static class TarIndex
{
    public const int MaxMembers = 200_000;

    public static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }
        return name.TrimStart('/').TrimEnd('/');
    }

    public static List<TarItem> Read(Stream archive, string what, CancellationToken ct)
    {
        if (!archive.CanSeek)
        {
            throw new ArgumentException($"{what} must be a seekable stream", nameof(archive));
        }
        var items = new List<TarItem>();
        long length = archive.Length;
        long pos = 0;
        byte[] block = new byte[512];
        string? longName = null, longLink = null, paxPath = null, paxLink = null;
        long? paxSize = null;
        long headerStart = -1;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (pos + 512 > length)
            {
                if (pos == length && items.Count > 0)
                {
                    break; // tolerate archives without end-of-archive blocks
                }
                throw new DeltaFormatException(pos, $"{what}: truncated tar archive");
            }
            archive.Position = pos;
            archive.ReadExactly(block);
            if (block.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                break;
            }
            if (headerStart < 0)
            {
                headerStart = pos;
            }
            if (!ChecksumOk(block))
            {
                throw new DeltaFormatException(pos, $"{what}: tar header checksum mismatch (corrupted archive?)");
            }
            char type = (char)block[156];
            long size = ParseNumber(block.AsSpan(124, 12), pos, what);
            long dataStart = pos + 512;
            if (size < 0 || dataStart + size > length)
            {
                throw new DeltaFormatException(pos, $"{what}: tar member size {size} runs past the end of the archive");
            }
            long next = dataStart + ((size + 511) & ~511L);
            switch (type)
            {
                case 'L':
                case 'K':
                    {
                        if (size > 64 * 1024)
                        {
                            throw new DeltaFormatException(pos, $"{what}: tar long name too long");
                        }
                        var buf = new byte[size];
                        archive.ReadExactly(buf);
                        string s = Encoding.UTF8.GetString(buf).TrimEnd('\0');
                        if (type == 'L')
                        {
                            longName = s;
                        }
                        else
                        {
                            longLink = s;
                        }
                        pos = next;
                        continue;
                    }
                case 'x':
                    {
                        if (size > 1024 * 1024)
                        {
                            throw new DeltaFormatException(pos, $"{what}: tar pax header too long");
                        }
                        var buf = new byte[size];
                        archive.ReadExactly(buf);
                        ParsePax(buf, ref paxPath, ref paxLink, ref paxSize);
                        pos = next;
                        continue;
                    }
            }
            string name = paxPath ?? longName ?? UstarName(block);
            string link = paxLink ?? longLink ?? CString(block.AsSpan(157, 100));
            if (paxSize is long ps)
            {
                size = ps;
                if (dataStart + size > length)
                {
                    throw new DeltaFormatException(pos, $"{what}: tar member size {size} runs past the end of the archive");
                }
                next = dataStart + ((size + 511) & ~511L);
            }
            if (TarEntryPolicy.FilesDirectoriesAndLinks.Check(what, name, (TarEntryType)(byte)type) is { } refusal)
            {
                throw new DeltaFormatException(pos, refusal + ": a saved image (docker save, OCI layout) holds none; save the image again");
            }
            items.Add(new TarItem(name, type, headerStart, dataStart, size, link));
            if (items.Count > MaxMembers)
            {
                throw new DeltaFormatException(pos, $"{what}: more than {MaxMembers} tar members");
            }
            longName = longLink = paxPath = paxLink = null;
            paxSize = null;
            headerStart = -1;
            pos = next;
        }
        return items;
    }

    private static void ParsePax(byte[] buf, ref string? path, ref string? link, ref long? size)
    {
        int i = 0;
        while (i < buf.Length)
        {
            int sp = Array.IndexOf(buf, (byte)' ', i);
            if (sp < 0)
            {
                break;
            }
            if (!int.TryParse(Encoding.ASCII.GetString(buf, i, sp - i), out int len) || len <= 0 || i + len > buf.Length)
            {
                break;
            }
            string rec = Encoding.UTF8.GetString(buf, sp + 1, len - (sp - i) - 2);
            int eq = rec.IndexOf('=');
            if (eq > 0)
            {
                string key = rec[..eq], val = rec[(eq + 1)..];
                if (key == "path")
                {
                    path = val;
                }
                else if (key == "linkpath")
                {
                    link = val;
                }
                else if (key == "size" && long.TryParse(val, out long s))
                {
                    size = s;
                }
            }
            i += len;
        }
    }

    private static string UstarName(byte[] block)
    {
        string name = CString(block.AsSpan(0, 100));
        bool ustar = block[257] == 'u' && block[258] == 's' && block[259] == 't' && block[260] == 'a' && block[261] == 'r';
        if (ustar && block[262] == 0)
        {
            string prefix = CString(block.AsSpan(345, 155));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }
        return name;
    }

    private static string CString(ReadOnlySpan<byte> s)
    {
        int z = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(z >= 0 ? s[..z] : s);
    }

    private static long ParseNumber(ReadOnlySpan<byte> f, long pos, string what)
    {
        if ((f[0] & 0x80) != 0)
        {
            long v = f[0] & 0x7F;
            for (int i = 1; i < f.Length; i++)
            {
                if (v > (long.MaxValue >> 8))
                {
                    throw new DeltaFormatException(pos, $"{what}: tar number overflow");
                }
                v = (v << 8) | f[i];
            }
            return v;
        }
        long n = 0;
        foreach (byte b in f)
        {
            if (b == 0 || b == ' ')
            {
                if (n > 0)
                {
                    break;
                }
                continue;
            }
            if (b < '0' || b > '7')
            {
                throw new DeltaFormatException(pos, $"{what}: invalid tar number");
            }
            n = (n * 8) + (b - '0');
            if (n > (1L << 50))
            {
                throw new DeltaFormatException(pos, $"{what}: tar number overflow");
            }
        }
        return n;
    }

    private static bool ChecksumOk(byte[] block)
    {
        long stored = 0;
        bool any = false;
        for (int i = 148; i < 156; i++)
        {
            byte b = block[i];
            if (b >= '0' && b <= '7')
            {
                stored = (stored * 8) + (b - '0');
                any = true;
            }
            else if (any)
            {
                break;
            }
        }
        long sum = 0;
        for (int i = 0; i < 512; i++)
        {
            sum += i is >= 148 and < 156 ? ' ' : block[i];
        }
        return any && sum == stored;
    }
}

/// <summary>Writes tar members (ustar headers) to a forward-only stream.</summary>
internal sealed class TarOut
{
    private readonly Stream _out;
    private readonly byte[] _zeros = new byte[1024];

    public TarOut(Stream output) => _out = output;

    public Stream Stream => _out;

    /// <summary>Copies a member of another archive verbatim (headers, data, padding).</summary>
    public void CopyRaw(Stream archive, TarItem item, CancellationToken ct) =>
        CopyRange(archive, item.HeaderStart, item.End - item.HeaderStart, _out, ct);

    public void WriteFileHeader(string name, long size)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > 100)
        {
            // pax extended header with the path.
            string rec = PaxRecord("path", name);
            byte[] recBytes = Encoding.UTF8.GetBytes(rec);
            _out.Write(Header("././@PaxHeader", recBytes.Length, 'x'));
            _out.Write(recBytes);
            Pad(recBytes.Length);
            nameBytes = Encoding.UTF8.GetBytes(name[^Math.Min(name.Length, 99)..]);
        }
        _out.Write(Header(Encoding.UTF8.GetString(nameBytes), size, '0'));
    }

    public void Pad(long size)
    {
        int pad = (int)((512 - (size % 512)) % 512);
        _out.Write(_zeros, 0, pad);
    }

    public void Finish()
    {
        _out.Write(_zeros, 0, 1024);
        _out.Flush();
    }

    private static string PaxRecord(string key, string value)
    {
        int baseLen = Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(value) + 3;
        int len = baseLen + 1;
        while (len != baseLen + len.ToString().Length)
        {
            len = baseLen + len.ToString().Length;
        }
        return $"{len} {key}={value}\n";
    }

    private static byte[] Header(string name, long size, char type)
    {
        var h = new byte[512];
        Encoding.UTF8.GetBytes(name.Length > 100 ? name[..100] : name).CopyTo(h, 0);
        Octal(h, 100, 8, type == '5' ? 0x1ED : 0x1A4);
        Octal(h, 108, 8, 0);
        Octal(h, 116, 8, 0);
        Octal(h, 124, 12, size);
        Octal(h, 136, 12, 0);
        h[156] = (byte)type;
        "ustar\0"u8.CopyTo(h.AsSpan(257));
        "00"u8.CopyTo(h.AsSpan(263));
        for (int i = 148; i < 156; i++)
        {
            h[i] = (byte)' ';
        }
        long sum = 0;
        foreach (byte b in h)
        {
            sum += b;
        }
        Octal(h, 148, 7, sum);
        h[155] = (byte)' ';
        return h;
    }

    private static void Octal(byte[] h, int at, int width, long value)
    {
        string s = Convert.ToString(value, 8).PadLeft(width - 1, '0');
        if (s.Length > width - 1)
        {
            throw new InvalidOperationException($"tar field overflow ({value})");
        }
        Encoding.ASCII.GetBytes(s).CopyTo(h, at);
        h[at + width - 1] = 0;
    }

    public static void CopyRange(Stream src, long start, long length, Stream dst, CancellationToken ct)
    {
        byte[] buf = new byte[1 << 16];
        src.Position = start;
        while (length > 0)
        {
            ct.ThrowIfCancellationRequested();
            int n = src.Read(buf, 0, (int)Math.Min(buf.Length, length));
            if (n <= 0)
            {
                throw new EndOfStreamException("archive ended early");
            }
            dst.Write(buf, 0, n);
            length -= n;
        }
    }
}
