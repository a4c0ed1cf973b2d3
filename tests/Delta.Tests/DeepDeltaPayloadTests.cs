using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using AppModule.Delta;
using CsCheck;

namespace Delta.Tests;

/// <summary>Deep-delta payload handling without an engine: structure errors and hostile payloads.</summary>
[Trait("Category", "Fuzz")]
public sealed class DeepDeltaPayloadTests : IClassFixture<DeepDeltaPayloadTests.Fixture>
{
    private readonly Fixture _f;

    public DeepDeltaPayloadTests(Fixture f) => _f = f;

    /// <summary>A small docker-archive style payload: one decoded layer, one from the base, one shipped.</summary>
    public sealed class Fixture
    {
        public Fixture()
        {
            var r = new Random(3);
            byte[] l1 = new byte[30_000], l2 = new byte[20_000], l3 = new byte[5_000];
            r.NextBytes(l1);
            r.NextBytes(l2);
            r.NextBytes(l3);
            byte[] l1New = [.. l1[..10_000], .. "changed"u8.ToArray(), .. l1[10_000..]];
            BaseLayers[Sha(l1)] = l1;
            BaseLayers[Sha(l2)] = l2;
            Available = Tools.Has(Tools.Xdelta3);
            byte[] vcdiff = [];
            if (Available)
            {
                using var dir = new TempDir("payload");
                File.WriteAllBytes(dir["b"], l1);
                File.WriteAllBytes(dir["t"], l1New);
                Tools.XdeltaEncode(dir["b"], dir["t"], dir["d"]);
                vcdiff = File.ReadAllBytes(dir["d"]);
            }
            string a = new('a', 64), b = new('b', 64), c = new('c', 64);
            NewLayerSums = [Sha(l1New), Sha(l2), Sha(l3)];
            Members =
            [
                ("./", null),
                ($"./{a}/", null),
                ($"./{a}/VERSION", "1.0"u8.ToArray()),
                ($"./{a}/layer.tar.vcdiff", vcdiff),
                ($"./{a}/layer.tar.current.sha256sum", Encoding.ASCII.GetBytes(Sha(l1) + "\n")),
                ($"./{a}/layer.tar.new.sha256sum", Encoding.ASCII.GetBytes(Sha(l1New) + "\n")),
                ($"./{b}/", null),
                ($"./{b}/layer.tar.sha256sum", Encoding.ASCII.GetBytes(Sha(l2) + "\n")),
                ($"./{c}/", null),
                ($"./{c}/layer.tar", l3),
                ("./manifest.json", Encoding.ASCII.GetBytes($$"""[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["{{a}}/layer.tar","{{b}}/layer.tar","{{c}}/layer.tar"]}]""")),
                ("./cfg.json", "{}"u8.ToArray()),
            ];
            Payload = Build(Members);
        }

        public bool Available { get; }
        public Dictionary<string, byte[]> BaseLayers { get; } = [];
        public string[] NewLayerSums { get; }
        public List<(string Name, byte[]? Data)> Members { get; }
        public byte[] Payload { get; }

        public Stream? Open(string digest) => BaseLayers.TryGetValue(digest, out var d) ? new MemoryStream(d, false) : null;
    }

    private static string Sha(byte[] d) => Convert.ToHexStringLower(SHA256.HashData(d));

    private static byte[] Build(IEnumerable<(string Name, byte[]? Data)> members)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Gnu, leaveOpen: true))
        {
            foreach (var (name, data) in members)
            {
                if (data is null)
                {
                    w.WriteEntry(new GnuTarEntry(TarEntryType.Directory, name));
                }
                else
                {
                    w.WriteEntry(new GnuTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
                }
            }
        }
        return ms.ToArray();
    }

    private static Dictionary<string, byte[]> ReadTar(byte[] tar)
    {
        var result = new Dictionary<string, byte[]>();
        using var r = new TarReader(new MemoryStream(tar));
        while (r.GetNextEntry() is { } e)
        {
            if (e.DataStream is not null)
            {
                var ms = new MemoryStream();
                e.DataStream.CopyTo(ms);
                result[e.Name] = ms.ToArray();
            }
        }
        return result;
    }

    [SkippableFact]
    public void Reconstruction_writes_every_layer_and_drops_the_delta_files()
    {
        Tools.RequireXdelta3();
        var output = new MemoryStream();
        var plan = DeepDelta.Reconstruct(new MemoryStream(_f.Payload), _f.Open, output, null, CancellationToken.None);
        Assert.Equal(2, plan.RequiredBaseDigests.Count);
        var files = ReadTar(output.ToArray());
        string a = new('a', 64), b = new('b', 64), c = new('c', 64);
        Assert.Equal(_f.NewLayerSums, new[] { a, b, c }.Select(d => Sha(files[$"./{d}/layer.tar"])));
        Assert.DoesNotContain(files.Keys, k => k.EndsWith(".vcdiff") || k.EndsWith(".sha256sum"));
        Assert.True(files.ContainsKey("./manifest.json") && files.ContainsKey($"./{a}/VERSION"));
    }

    [SkippableFact]
    public void A_missing_checksum_file_is_named_in_the_error()
    {
        Tools.RequireXdelta3();
        var payload = Build(_f.Members.Where(m => !m.Name.EndsWith(".new.sha256sum")));
        var e = Assert.Throws<DeltaFormatException>(() => DeepDelta.Inspect(new MemoryStream(payload), CancellationToken.None));
        Assert.Contains("layer.tar.new.sha256sum", e.Message);
    }

    [SkippableFact]
    public void A_manifest_layer_that_is_neither_shipped_nor_referenced_is_an_error()
    {
        Tools.RequireXdelta3();
        var payload = Build(_f.Members.Where(m => !m.Name.EndsWith("layer.tar.sha256sum")));
        var e = Assert.Throws<DeltaFormatException>(() => DeepDelta.Inspect(new MemoryStream(payload), CancellationToken.None));
        Assert.Contains(new string('b', 64) + "/layer.tar", e.Message);
    }

    [SkippableFact]
    public void A_wrong_expected_digest_names_the_layer()
    {
        Tools.RequireXdelta3();
        var members = _f.Members.Select(m => m.Name.EndsWith(".new.sha256sum") ? (m.Name, Encoding.ASCII.GetBytes(new string('0', 64))) : m);
        var e = Assert.Throws<DeltaFormatException>(() => DeepDelta.Reconstruct(new MemoryStream(Build(members)), _f.Open, Stream.Null, null, CancellationToken.None));
        Assert.Contains(new string('a', 64) + "/layer.tar", e.Message);
        Assert.Contains("differs from the expected", e.Message);
    }

    [SkippableFact]
    public void Mutated_payloads_fail_only_with_DeltaFormatException()
    {
        Tools.RequireXdelta3();
        Fuzz.Check(Gen.Select(Gen.Int[0, _f.Payload.Length - 1], Gen.Byte[1, 255], Gen.Int[1, 6], Gen.Bool), input =>
        {
            var (at, x, count, truncate) = input;
            byte[] p = (byte[])_f.Payload.Clone();
            if (truncate)
            {
                p = p[..at];
            }
            else
            {
                for (int k = 0; k < count; k++)
                {
                    p[(at + (k * 977)) % p.Length] ^= x;
                }
            }
            try
            {
                DeepDelta.Reconstruct(new MemoryStream(p), _f.Open, Stream.Null, null, CancellationToken.None);
            }
            catch (DeltaFormatException e)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Reason));
            }
        }, cases: 1500);
    }
}
