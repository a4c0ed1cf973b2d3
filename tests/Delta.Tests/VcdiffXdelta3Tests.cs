using AppModule.Delta;

namespace Delta.Tests;

public sealed class VcdiffXdelta3Tests
{
    public static TheoryData<string?> Secondaries => new() { null, "none", "lzma", "fgk", "djw" };

    private static byte[] Random(int seed, int n)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Compressible text-like data, so secondary compression has something to do.</summary>
    private static byte[] Compressible(int seed, int n)
    {
        var r = new Random(seed);
        string[] words = ["layer", "tar", "docker", "image", "sha256", "mender", "update", "module", "\n", " ", "0", "1", "delta"];
        var ms = new MemoryStream();
        while (ms.Length < n)
        {
            var w = System.Text.Encoding.ASCII.GetBytes(words[r.Next(words.Length)]);
            ms.Write(w);
        }
        return ms.ToArray()[..n];
    }

    /// <summary>Edits: inserts, deletes, moves and byte flips.</summary>
    private static byte[] Edit(byte[] src, int seed)
    {
        var r = new Random(seed);
        var list = new List<byte>(src);
        for (int i = 0; i < 20 && list.Count > 100; i++)
        {
            int at = r.Next(list.Count);
            switch (r.Next(4))
            {
                case 0:
                    list.InsertRange(at, Random(seed + i, r.Next(1, 3000)));
                    break;
                case 1:
                    list.RemoveRange(at, Math.Min(r.Next(1, 3000), list.Count - at));
                    break;
                case 2:
                    {
                        int len = Math.Min(r.Next(1, 20000), list.Count - at);
                        var chunk = list.GetRange(at, len);
                        list.RemoveRange(at, len);
                        list.InsertRange(r.Next(list.Count), chunk);
                        break;
                    }
                default:
                    list[at] ^= 0x5A;
                    break;
            }
        }
        return [.. list];
    }

    private static VcdiffDecodeResult AssertRoundTrip(byte[] baseBytes, byte[] target, string? secondary, params string[] extra)
    {
        using var dir = new TempDir("vc");
        File.WriteAllBytes(dir["base"], baseBytes);
        File.WriteAllBytes(dir["target"], target);
        Tools.XdeltaEncode(dir["base"], dir["target"], dir["delta"], secondary, extra);
        using var src = File.OpenRead(dir["base"]);
        using var delta = File.OpenRead(dir["delta"]);
        var output = new MemoryStream();
        var result = VcdiffDecoder.Decode(src, delta, output, DeltaLimits.Default, CancellationToken.None);
        Assert.Equal(target.Length, output.Length);
        Assert.True(target.AsSpan().SequenceEqual(output.ToArray()), "decoded bytes differ from the target");
        Assert.Equal(target.Length, result.TargetBytes);
        Assert.True(result.PeakBufferBytes <= DeltaLimits.Default.MaxMemoryBytes);
        Assert.Equal(secondary is null ? "lzma" : secondary, result.SecondaryCompressor);
        return result;
    }

    [SkippableTheory]
    [MemberData(nameof(Secondaries))]
    public void Decodes_random_data_with_inserts_deletes_and_moves(string? secondary)
    {
        Tools.RequireXdelta3();
        var b = Random(1, 300_000);
        AssertRoundTrip(b, Edit(b, 7), secondary);
    }

    [SkippableTheory]
    [MemberData(nameof(Secondaries))]
    public void Decodes_compressible_data_with_edits(string? secondary)
    {
        Tools.RequireXdelta3();
        var b = Compressible(2, 400_000);
        var r = AssertRoundTrip(b, Compressible(3, 200_000).Concat(Edit(b, 9)).ToArray(), secondary);
        if (secondary != "none")
        {
            Assert.True(r.CompressedSections > 0, "xdelta3 did not use secondary compression; the test data is not compressible enough");
        }
    }

    [SkippableTheory]
    [InlineData(null)]
    [InlineData("none")]
    [InlineData("lzma")]
    [InlineData("djw")]
    public void Decodes_multi_window_deltas_over_8_MiB(string? secondary)
    {
        Tools.RequireXdelta3();
        var b = Compressible(4, 12_000_000);
        var t = Edit(b, 11).Concat(Compressible(5, 5_000_000)).ToArray();
        var r = AssertRoundTrip(b, t, secondary);
        Assert.True(r.Windows >= 2, $"expected several windows, got {r.Windows}");
    }

    [SkippableFact]
    public void Multi_window_fgk_deltas_decode_exactly_when_xdelta3_itself_can_decode_them()
    {
        Tools.RequireXdelta3();
        using var dir = new TempDir("fgk");
        var b = Compressible(4, 12_000_000);
        var t = Edit(b, 11).Concat(Compressible(5, 5_000_000)).ToArray();
        File.WriteAllBytes(dir["base"], b);
        File.WriteAllBytes(dir["target"], t);
        Tools.XdeltaEncode(dir["base"], dir["target"], dir["delta"], "fgk");
        bool xdelta3Decodes;
        try
        {
            Tools.Run(Tools.Xdelta3, "-d", "-f", "-s", dir["base"], dir["delta"], dir["x3out"]);
            xdelta3Decodes = File.ReadAllBytes(dir["x3out"]).AsSpan().SequenceEqual(t);
        }
        catch (InvalidOperationException)
        {
            xdelta3Decodes = false; // xdelta3 3.0.11: "secondary decoder garbage" on its own multi-window fgk output
        }
        using var src = File.OpenRead(dir["base"]);
        using var delta = File.OpenRead(dir["delta"]);
        var output = new MemoryStream();
        if (xdelta3Decodes)
        {
            VcdiffDecoder.Decode(src, delta, output, null, CancellationToken.None);
            Assert.Equal(t, output.ToArray());
        }
        else
        {
            Assert.Throws<DeltaFormatException>(() => VcdiffDecoder.Decode(src, delta, output, null, CancellationToken.None));
        }
    }

    [SkippableTheory]
    [InlineData(0, 1000)]
    [InlineData(1000, 0)]
    [InlineData(0, 0)]
    [InlineData(50_000, 200)]
    [InlineData(200, 50_000)]
    public void Decodes_empty_and_size_mismatched_inputs(int baseSize, int targetSize)
    {
        Tools.RequireXdelta3();
        var b = Random(21, baseSize);
        var t = targetSize <= baseSize ? b[..targetSize] : b.Concat(Random(22, targetSize - baseSize)).ToArray();
        AssertRoundTrip(b, t, null);
        AssertRoundTrip(b, t, "none");
    }

    [SkippableFact]
    public void Refuses_a_delta_that_xdelta3_made_on_externally_decompressed_gzip_input()
    {
        Tools.RequireXdelta3();
        using var dir = new TempDir("gz");
        var b = Compressible(31, 100_000);
        File.WriteAllBytes(dir["b"], b);
        File.WriteAllBytes(dir["t"], Edit(b, 3));
        Tools.Run("/usr/bin/gzip", "-k", dir["b"]);
        Tools.Run("/usr/bin/gzip", "-k", dir["t"]);
        Tools.XdeltaEncode(dir["b.gz"], dir["t.gz"], dir["d"]);
        using var src = File.OpenRead(dir["b.gz"]);
        using var delta = File.OpenRead(dir["d"]);
        var e = Assert.Throws<DeltaFormatException>(() => VcdiffDecoder.Decode(src, delta, Stream.Null, null, CancellationToken.None));
        Assert.Contains("-D -R", e.Message);

        // The same files encoded with -D decode to the exact compressed bytes.
        Tools.XdeltaEncode(dir["b.gz"], dir["t.gz"], dir["d2"], null, "-D", "-R");
        using var src2 = File.OpenRead(dir["b.gz"]);
        using var delta2 = File.OpenRead(dir["d2"]);
        var output = new MemoryStream();
        VcdiffDecoder.Decode(src2, delta2, output, null, CancellationToken.None);
        Assert.Equal(File.ReadAllBytes(dir["t.gz"]), output.ToArray());
    }

    [SkippableFact]
    public void Decodes_a_delta_made_without_a_source()
    {
        Tools.RequireXdelta3();
        using var dir = new TempDir("nosrc");
        var t = Compressible(6, 100_000);
        File.WriteAllBytes(dir["target"], t);
        Tools.XdeltaEncode("", dir["target"], dir["delta"]);
        using var delta = File.OpenRead(dir["delta"]);
        var output = new MemoryStream();
        VcdiffDecoder.Decode(null, delta, output, null, CancellationToken.None);
        Assert.Equal(t, output.ToArray());
    }
}
