using System.Text;
using AppModule.Artifacts;
using AppModule.Delta;
using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// Every tar reader of the project, given every entry type it does not support, fails with the project's own
/// error naming the entry and its type (TarEntryPolicy, one rule): never a NotSupportedException from
/// System.Formats.Tar (a GNU sparse file), never a device or FIFO passed on. The types a reader does accept
/// (links, for manifests and saved images) reach its own checks instead.
/// </summary>
public sealed class TarEntryTypeTests
{
    /// <summary>The type flag, how the error names it, and whether readers that take links accept it.</summary>
    public static readonly (char Flag, string Words, bool IsLink)[] Types =
    [
        ('S', "GNU sparse file", false),
        ('3', "character device", false),
        ('4', "block device", false),
        ('6', "FIFO", false),
        ('1', "hard link", true),
        ('2', "symbolic link", true),
        ('D', "GNU directory dump", false),
        ('M', "GNU multi-volume continuation", false),
        ('N', "GNU renamed-or-symlinked entry", false),
        ('V', "GNU tape volume header", false),
        ('Z', "entry of unknown type", false),
        ('g', "PAX global extended header", false), // one rule: refused by every reader of the project's own tars and saved images (docker save writes none)
    ];

    /// <summary>A reader: whether it accepts links, the entry name it is given, and how to run it on a tar
    /// holding that entry (it returns normally or throws).</summary>
    private sealed record Reader(bool TakesLinks, string Entry, Action<byte[], TempDir> Run);

    private static readonly CancellationToken Ct = CancellationToken.None;

    private static readonly string ImageId = new('a', 64);

    private static readonly Dictionary<string, Reader> Readers = new()
    {
        ["artifact (outer tar)"] = new(false, "version", (tar, _) =>
            ArtifactReader.ReadAsync(new MemoryStream(tar), new ArtifactReadOptions(), null, Ct).GetAwaiter().GetResult()),
        ["artifact header.tar"] = new(false, "header-info", (tar, _) =>
            ArtifactReader.ParseHeader(tar, ArtifactCompression.None)),
        ["artifact data/0000.tar"] = new(false, "images.tar.gz", (tar, dir) =>
        {
            var parts = ArtifactParts.Valid("tar-types", "web", new CorpusImage("web:1", ImageId, dir.Write("img", "x")), "services: {}\n") with
            {
                EditOuter = outer => outer.Select(e => e.Name == "data/0000.tar" ? e with { Data = tar } : e).ToList(),
            };
            ArtifactReader.ReadAsync(new MemoryStream(parts.Bytes()), new ArtifactReadOptions(), null, Ct).GetAwaiter().GetResult();
        }),
        ["images.tar.gz"] = new(false, $"images/{ImageId}/image.img", (tar, _) =>
            ImagesPayload.ScanAsync(() => new MemoryStream(tar), "images.tar.gz", Ct).GetAwaiter().GetResult()),
        ["manifests.tar.gz"] = new(true, "manifests/app.yaml", (tar, dir) =>
            ManifestsPayload.ExtractAsync(Save(dir, "manifests.tar", tar), dir.Dir("extracted"), null, Ct).GetAwaiter().GetResult()),
        ["image.img (saved image in the payload)"] = new(true, "manifest.json", (tar, _) =>
            SavedImage.Read(new MemoryStream(tar), "image.img", Ct)),
        ["base image (delta base)"] = new(true, "manifest.json", (tar, dir) =>
            BaseImageArchive.Open(Save(dir, "base.tar", tar), Ct).Dispose()),
        ["deep delta payload"] = new(true, "manifest.json", (tar, _) =>
            DeepDelta.Inspect(new MemoryStream(tar), Ct)),
        ["image tar (rebuilt from a delta)"] = new(true, "manifest.json", (tar, _) =>
            ImageTar.ReadImageIds(new MemoryStream(tar), Ct)),
        ["image streamed into LOAD from a delta"] = new(true, "manifest.json", (tar, _) =>
        {
            using var verified = new VerifiedImageWriter(Stream.Null, ImageId, hashLayers: true, omitted: _ => false, checkConfig: _ => { });
            verified.Write(tar);
        }),
    };

    public static TheoryData<string, char> Cases()
    {
        var data = new TheoryData<string, char>();
        foreach (var reader in Readers.Keys)
        {
            foreach (var t in Types)
            {
                data.Add(reader, t.Flag);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_reader_names_an_entry_type_it_does_not_support(string reader, char flag)
    {
        var r = Readers[reader];
        var type = Types.Single(t => t.Flag == flag);
        using var dir = new TempDir("tar-types");
        var tar = Tar(r.Entry, flag);

        Exception? error = null;
        try
        {
            r.Run(tar, dir);
        }
        catch (Exception e)
        {
            error = e;
        }

        var refusal = $"\"{r.Entry}\" is a {type.Words} (tar type '{flag}')";
        if (type.IsLink && r.TakesLinks)
        {
            // Accepted by the type rule: whatever the reader says next is not about the type.
            Assert.True(error is null || !error.Message.Contains("(tar type", StringComparison.Ordinal), $"{reader} refused a {type.Words} by type: {error}");
            Assert.False(error is NotSupportedException, error?.ToString());
            return;
        }

        Assert.NotNull(error);
        Assert.True(error is ArtifactException or DeltaFormatException, $"{reader} threw {error.GetType().Name}, not the project's error: {error}");
        Assert.Contains(refusal, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tar_inside_a_tar_cut_short_in_an_entrys_data_is_reported_as_truncated_naming_the_entry()
    {
        // The inner tar holds one 64 KiB file and is cut in the middle of it; the outer tar carries it whole, so
        // the inner reader gets a seekable stream that ends early (as data/0000.tar of a cut artifact does).
        var inner = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(inner, System.Formats.Tar.TarEntryFormat.Ustar, leaveOpen: true))
        {
            w.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "big.bin") { DataStream = new MemoryStream(new byte[64 * 1024]) });
        }

        var cut = inner.ToArray()[..(16 * 1024)];
        var outer = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(outer, System.Formats.Tar.TarEntryFormat.Ustar, leaveOpen: true))
        {
            w.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "data/0000.tar") { DataStream = new MemoryStream(cut) });
        }

        outer.Position = 0;
        using var outerReader = new System.Formats.Tar.TarReader(outer);
        var member = outerReader.GetNextEntry()!;
        Assert.True(member.DataStream!.CanSeek);
        using var reader = new AppModule.Core.Archives.CheckedTarReader(member.DataStream, "data/0000.tar", AppModule.Core.Archives.TarEntryPolicy.FilesAndDirectories, m => new ArtifactFormatException(m), leaveOpen: true);

        var error = Record.Exception(() =>
        {
            while (reader.GetNextEntry() is not null)
            {
            }
        });

        var eof = Assert.IsType<EndOfStreamException>(error);
        Assert.Equal("data/0000.tar ends inside the data of \"big.bin\": it is truncated", eof.Message);
    }

    private static string Save(TempDir dir, string name, byte[] bytes)
    {
        var path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A tar with a directory entry first (as real archives have) when the entry is in one, then the entry, then the end.</summary>
    private static byte[] Tar(string name, char flag)
    {
        var ms = new MemoryStream();
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0)
        {
            ms.Write(ArtifactParts.RawHeader(name[..(slash + 1)], 0, (byte)'5'));
        }

        ms.Write(ArtifactParts.RawHeader(name, 0, (byte)flag, flag is '1' or '2' ? "target" : null));
        ms.Write(new byte[1024]);
        return ms.ToArray();
    }
}
