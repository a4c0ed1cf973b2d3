using AppModule.Delta;
using CsCheck;

namespace Delta.Tests;

/// <summary>
/// Hostile input: random and mutated deltas must end in success or DeltaFormatException, stay
/// within the memory bound of the limits, and terminate (a hang is turned into a failure by
/// cancellation, since every decoder loop observes the token).
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class VcdiffRobustnessTests : IClassFixture<VcdiffRobustnessTests.Samples>
{
    private static readonly DeltaLimits Tight = new()
    {
        MaxTargetWindowSize = 1 << 20,
        MaxEncodedWindowSize = 4 << 20,
        MaxLzmaDictionarySize = 8 << 20,
        MaxTargetSize = 64 << 20,
        SourceCacheSize = 64 << 10,
    };

    private readonly Samples _samples;

    public VcdiffRobustnessTests(Samples samples) => _samples = samples;

    /// <summary>Real xdelta3 deltas (lzma, -S none, -S fgk, -S djw) of a small base/target pair.</summary>
    public sealed class Samples
    {
        public Samples()
        {
            Base = new byte[40_000];
            new Random(5).NextBytes(Base);
            for (int i = 0; i < Base.Length; i += 7)
            {
                Base[i] = (byte)'a';
            }
            byte[] text = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 1500).Select(i => $"line {i % 37} of inserted text\n")));
            Target = [.. Base[..15_000], .. text, .. Base[16_000..], .. Base[100..2000]];
            if (!File.Exists(Tools.Xdelta3))
            {
                return;
            }
            using var dir = new TempDir("fuzz");
            File.WriteAllBytes(dir["b"], Base);
            File.WriteAllBytes(dir["t"], Target);
            foreach (var s in new[] { "lzma", "none", "fgk", "djw" })
            {
                Tools.XdeltaEncode(dir["b"], dir["t"], dir["d" + s], s);
                Deltas.Add(File.ReadAllBytes(dir["d" + s]));
                Names.Add(s);
            }
        }

        public byte[] Base { get; }
        public byte[] Target { get; }
        public List<byte[]> Deltas { get; } = [];
        public List<string> Names { get; } = [];
    }

    private static void DecodeHostile(byte[] baseBytes, byte[] delta)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            var r = VcdiffDecoder.Decode(new MemoryStream(baseBytes, false), new MemoryStream(delta, false), Stream.Null, Tight, cts.Token);
            Assert.True(r.PeakBufferBytes <= Tight.MaxMemoryBytes);
        }
        catch (DeltaFormatException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Reason));
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated <= (2 * Tight.MaxMemoryBytes) + (16 << 20), $"decoder allocated {allocated} bytes");
    }

    [Fact]
    public void Random_bytes_after_the_magic_fail_only_with_DeltaFormatException()
    {
        Fuzz.Check(Gen.Byte.Array[0, 400], tail =>
        {
            byte[] delta = [0xD6, 0xC3, 0xC4, 0x00, .. tail];
            DecodeHostile(_samples.Base, delta);
        }, cases: 3000);
    }

    [Fact]
    public void Random_window_headers_with_huge_declared_sizes_are_rejected_without_allocating_them()
    {
        var varint = Gen.ULong.Select(v => Varint(v >> Gen.Int[0, 63].Single()));
        Fuzz.Check(Gen.Select(Gen.Byte[0, 7], varint, varint, varint, varint, Gen.Byte[0, 7], Gen.Select(varint, varint, varint)), input =>
            {
                var (ind, cl, co, el, tl, di, secs) = input;
                byte[] delta = [0xD6, 0xC3, 0xC4, 0x00, 0x00, ind, .. cl, .. co, .. el, .. tl, di, .. secs.Item1, .. secs.Item2, .. secs.Item3, 1, 2, 3];
                DecodeHostile(_samples.Base, delta);
            }, cases: 3000);
    }

    [SkippableFact]
    public void Mutated_xdelta3_deltas_fail_only_with_DeltaFormatException_and_stay_bounded()
    {
        Tools.RequireXdelta3();
        var mutation = Gen.Select(Gen.Int[0, _samples.Deltas.Count - 1], Gen.Int[0, 3], Gen.Int[0, int.MaxValue], Gen.Byte, Gen.Int[1, 8]);
        Fuzz.Check(mutation, input =>
        {
            var (which, kind, at, value, count) = input;
            var d = _samples.Deltas[which].ToList();
            for (int k = 0; k < count; k++)
            {
                int i = at % d.Count;
                switch (kind)
                {
                    case 0: d[i] ^= (byte)(value | 1); break;
                    case 1: d.Insert(i, value); break;
                    case 2: d.RemoveAt(i); break;
                    default: d.RemoveRange(i, d.Count - i); break;
                }
                at = (at * 31) + 17;
                if (d.Count == 0)
                {
                    break;
                }
                at &= int.MaxValue;
            }
            DecodeHostile(_samples.Base, [.. d]);
        }, cases: 2000);
    }

    [SkippableFact]
    public void Fuzzing_every_single_byte_of_real_deltas_terminates_with_success_or_DeltaFormatException()
    {
        Tools.RequireXdelta3();
        foreach (var original in _samples.Deltas)
        {
            for (int i = 0; i < original.Length; i++)
            {
                foreach (byte x in new byte[] { 0x01, 0x80, 0xFF })
                {
                    var d = (byte[])original.Clone();
                    d[i] ^= x;
                    DecodeHostile(_samples.Base, d);
                }
            }
        }
    }

    [SkippableFact]
    public void Unmutated_samples_decode_to_the_target()
    {
        Tools.RequireXdelta3();
        for (int i = 0; i < _samples.Deltas.Count; i++)
        {
            var output = new MemoryStream();
            var r = VcdiffDecoder.Decode(new MemoryStream(_samples.Base), new MemoryStream(_samples.Deltas[i]), output, Tight, CancellationToken.None);
            Assert.Equal(_samples.Target, output.ToArray());
            Assert.Equal(_samples.Names[i], r.SecondaryCompressor);
            if (_samples.Names[i] != "none")
            {
                Assert.True(r.CompressedSections > 0, $"{_samples.Names[i]} sample has no compressed section, so fuzzing would not reach its decoder");
            }
        }
    }

    [Fact]
    public void A_target_window_larger_than_the_limit_is_rejected_with_its_offset()
    {
        byte[] delta = [0xD6, 0xC3, 0xC4, 0x00, 0x00, 0x00, .. Varint(10), .. Varint(100 << 20), 0, 0, 0, 0];
        var e = Assert.Throws<DeltaFormatException>(() => VcdiffDecoder.Decode(null, new MemoryStream(delta), Stream.Null, Tight, CancellationToken.None));
        Assert.Contains("exceeds the limit", e.Reason);
        Assert.Equal(7, e.Offset);
    }

    private static byte[] Varint(ulong v)
    {
        var bytes = new List<byte> { (byte)(v & 0x7F) };
        while ((v >>= 7) != 0)
        {
            bytes.Insert(0, (byte)(0x80 | (v & 0x7F)));
        }
        return [.. bytes];
    }
}
