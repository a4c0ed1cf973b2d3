using System.Formats.Tar;
using AppModule.Artifacts;
using AppModule.Runtime;
using CsCheck;
using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// Property tests (CsCheck, bounded iterations): the artifact reader, the payload tar/gzip readers,
/// the safe extraction, the meta-data parser and the config reader never crash with anything but
/// their documented exception types, never allocate without bound, and never write outside the tree.
/// (The VCDIFF decoder's fuzzing lives in tests/Delta.Tests/VcdiffRobustnessTests.)
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class FuzzTests : IClassFixture<LibraryCorpusTests.Fixture>
{
    private readonly LibraryCorpusTests.Fixture _fixture;
    private readonly byte[] _artifact;
    private readonly byte[] _images;
    private readonly byte[] _manifests;

    public FuzzTests(LibraryCorpusTests.Fixture fixture)
    {
        _fixture = fixture;
        var valid = fixture.Base.Valid("fuzz");
        _artifact = valid.Bytes();
        _images = ArtifactParts.Gzip(ArtifactParts.TarBytes(valid.Images));
        _manifests = ArtifactParts.Gzip(ArtifactParts.TarBytes(
        [
            TarSpec.Dir("manifests/"), TarSpec.File("manifests/docker-compose.yml", fixture.Base.Compose(fixture.Base.Image.Url)),
            TarSpec.Dir("manifests/conf/"), TarSpec.File("manifests/conf/a.env", "A=1\n"),
            new TarSpec("manifests/link", TarEntryType.SymbolicLink, Link: "conf/a.env"),
        ]));
    }

    /// <summary>A mutation: flip bytes, overwrite a range, truncate, or insert bytes, at a position.</summary>
    private static Gen<byte[]> Mutated(byte[] original) =>
        Gen.Select(Gen.Int[0, 3], Gen.Int[0, original.Length - 1], Gen.Byte.Array[1, 16]).Select((kind, at, bytes) =>
        {
            var b = (byte[])original.Clone();
            switch (kind)
            {
                case 0:
                    for (var i = 0; i < bytes.Length && at + i < b.Length; i++)
                    {
                        b[at + i] ^= (byte)(bytes[i] | 1);
                    }

                    return b;
                case 1:
                    for (var i = 0; i < bytes.Length && at + i < b.Length; i++)
                    {
                        b[at + i] = bytes[i];
                    }

                    return b;
                case 2:
                    return b[..at];
                default:
                    return [.. b[..at], .. bytes, .. b[at..]];
            }
        });

    private static long Allocated() => GC.GetTotalAllocatedBytes(precise: false);

    [Fact]
    public void Mutated_artifacts_are_read_or_rejected_with_an_ArtifactException_and_leave_no_partial_tree()
    {
        Fuzz.Check(Mutated(_artifact), bytes =>
        {
            using var work = new TempDir("hardening-fuzz");
            var path = work.File("a.mender");
            File.WriteAllBytes(path, bytes);
            var tree = work.File("tree");
            try
            {
                FileApiTree.WriteAsync(path, tree, new DeviceState("v1", string.Empty, "test-device"), new ArtifactReadOptions(), CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (ArtifactException e)
            {
                Assert.DoesNotContain('\n', e.Message);
                Assert.False(Directory.Exists(tree), "a partial tree was left behind");
            }

            LibraryPipeline.AssertNothingOutside(work.Path);
        }, cases: 400);
    }

    [Fact]
    public void Random_bytes_are_never_a_valid_artifact_and_fail_only_with_ArtifactException()
    {
        Fuzz.Check(Gen.Byte.Array[0, 4096], bytes =>
        {
            var e = Assert.ThrowsAny<ArtifactException>(() =>
                ArtifactReader.ReadAsync(new MemoryStream(bytes), new ArtifactReadOptions(), null, CancellationToken.None).GetAwaiter().GetResult());
            Assert.NotEmpty(e.Message);
        }, cases: 2000);
    }

    [Fact]
    public void Mutated_images_payloads_are_scanned_or_rejected_with_an_ArtifactException()
    {
        Fuzz.Check(Mutated(_images), bytes =>
        {
            try
            {
                ImagesPayload.ScanAsync(() => new MemoryStream(bytes), "images.tar.gz", CancellationToken.None).GetAwaiter().GetResult();
                ImagesPayload.StreamImagesAsync(() => new MemoryStream(bytes), "images.tar.gz",
                    ImagesPayload.ScanAsync(() => new MemoryStream(bytes), "images.tar.gz", CancellationToken.None).GetAwaiter().GetResult(),
                    (_, s, ct) => s.CopyToAsync(Stream.Null, ct), CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (ArtifactException e)
            {
                Assert.DoesNotContain('\n', e.Message);
            }
        }, cases: 1500, regressions:
        [
            "2d2CgJahSo_2", // a GNU sparse entry: System.Formats.Tar's NotSupportedException escaped (issue 14; now TarEntryPolicy names it)
        ]);
    }

    [Fact]
    public void Mutated_manifests_payloads_extract_inside_the_destination_or_fail_with_an_ArtifactException()
    {
        Fuzz.Check(Mutated(_manifests), ExtractHostile, cases: 600);
    }

    /// <summary>Names and link targets built from the pieces attacks use.</summary>
    private static readonly Gen<string> PathPiece = Gen.OneOf("manifests", "..", ".", "", "/", "etc", "a", "b", "manifests/..", "x.yml", "\u00e9", "a b");

    private static readonly Gen<string> HostilePath = PathPiece.Array[1, 5].Select(p => string.Join('/', p));

    private static readonly Gen<TarSpec> HostileEntry = Gen.Select(
        Gen.OneOf(TarEntryType.RegularFile, TarEntryType.Directory, TarEntryType.SymbolicLink, TarEntryType.HardLink, TarEntryType.CharacterDevice, TarEntryType.Fifo),
        HostilePath, HostilePath, Gen.Bool).Select((type, name, link, prefix) =>
            new TarSpec(prefix ? "manifests/" + name : name, type, type == TarEntryType.RegularFile ? "data"u8.ToArray() : null, type is TarEntryType.SymbolicLink or TarEntryType.HardLink ? link : null));

    [Fact]
    public void Random_hostile_tar_entries_never_write_outside_the_destination()
    {
        Fuzz.Check(HostileEntry.Array[1, 8], entries =>
        {
            var tar = ArtifactParts.TarBytes(entries.Where(e => e.Name.Length > 0 && e.Name.Length < 100 && e.Link is not "").ToList());
            ExtractHostile(ArtifactParts.Gzip(tar));
        }, cases: 800);
    }

    private static void ExtractHostile(byte[] gz)
    {
        using var work = new TempDir("hardening-fuzz");
        var archive = work.File("manifests.tar.gz");
        File.WriteAllBytes(archive, gz);
        var dest = Path.Combine(work.Path, "sandbox", "dest");
        var before = Allocated();
        try
        {
            ManifestsPayload.ExtractAsync(archive, dest, new ExtractionLimits(MaxEntries: 100, MaxFileBytes: 1 << 20, MaxTotalBytes: 4 << 20), CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (ArtifactException e)
        {
            Assert.DoesNotContain('\n', e.Message);
        }

        Assert.True(Allocated() - before < 256L << 20, "extraction allocated more than 256 MiB");
        File.Delete(archive);
        LibraryPipeline.AssertNothingOutside(work.Path);
    }

    private static readonly Gen<string> JsonScalar = Gen.OneOf(
        Gen.OneOf("null", "true", "1", "-0.5e3", "\"\"", "\"web\"", "\"linux/amd64\"", "\"1.0\"", "\"docker-compose\"", "\"a\\u0000b\"", "\"$(reboot)\""),
        Gen.String.Select(s => System.Text.Json.JsonSerializer.Serialize(s)));

    private static readonly Gen<string> JsonKey = Gen.OneOf("application_name", "orchestrator", "platform", "version", "images", "env", "extra", "LD_PRELOAD", "A=B", "");

    private static Gen<string> JsonAt(int depth) => depth > 2
        ? JsonScalar
        : Gen.Frequency(
            (3, JsonScalar),
            (1, JsonAt(depth + 1).Array[0, 4].Select(items => "[" + string.Join(',', items) + "]")),
            (2, Gen.Select(JsonKey, JsonAt(depth + 1)).Array[0, 7].Select(m => "{" + string.Join(',', m.Select(kv => System.Text.Json.JsonSerializer.Serialize(kv.Item1) + ":" + kv.Item2)) + "}")));

    private static readonly Gen<string> Json = JsonAt(0);

    [Fact]
    public void The_meta_data_parser_returns_or_throws_ArtifactFormatException_and_validation_never_throws()
    {
        Fuzz.Check(Gen.OneOf(Json, Gen.String, Json.Select(j => j[..(j.Length / 2)])), text =>
        {
            AppMetadata? m;
            try
            {
                m = AppMetadata.Parse(text);
            }
            catch (ArtifactFormatException e)
            {
                Assert.DoesNotContain('\n', e.Message);
                return;
            }

            if (m is null)
            {
                return;
            }

            var errors = MetadataValidator.Validate(m);
            Assert.All(errors, e => Assert.DoesNotContain('\n', e));
            var again = AppMetadata.Parse(m.ToArtifactJson());
            Assert.NotNull(again);
            Assert.Equal(m.ApplicationName, again.ApplicationName);
            Assert.Equal(m.Images, again.Images);
        }, cases: 5000);
    }

    [Fact]
    public void Valid_meta_data_round_trips_and_no_accepted_value_carries_shell_or_path_syntax()
    {
        var name = Gen.String[Gen.Char["a-zA-Z0-9_-;$`/. \n"], 1, 12];
        Fuzz.Check(Gen.Select(name, name, name, Gen.Dictionary(name, Gen.String[0, 8])[0, 3]), input =>
        {
            var (app, orchestrator, _, env) = input;
            var m = new AppMetadata(app, orchestrator, "linux/amd64", "1.0", [new string('a', 64)], env);
            var errors = MetadataValidator.Validate(m);
            if (errors.Count == 0)
            {
                Assert.DoesNotContain(app, ch => ";$`/ .\n".Contains(ch));
                Assert.DoesNotContain(orchestrator, ch => ";$`/ \n".Contains(ch));
                Assert.NotEqual("..", orchestrator);
                Assert.All(env.Keys, k => Assert.False(MetadataValidator.IsReservedEnvName(k)));
                var again = AppMetadata.Parse(m.ToArtifactJson())!;
                Assert.Equal(m.Env is { Count: > 0 } ? m.Env : null, again.Env);
            }
        }, cases: 5000);
    }

    private static readonly Gen<string> ConfigLine = Gen.OneOf(
        Gen.OneOf("persistent_store = \"/data/x\"", "PERSISTENT_STORE=/data/x", "export A=\"b\"", "[table]", "[[arr]]", "a.b = 1", "x = [1, 2]",
            "k = true", "k = 1979-05-27T07:32:00Z", "# c", "", "=", "\"", "k = \"unterminated", "k = '''", "k = { a = 1 }", "A=$(reboot)", "A=`id`"),
        Gen.String);

    [Fact]
    public void The_config_reader_returns_values_or_throws_ConfigException()
    {
        Fuzz.Check(ConfigLine.Array[0, 8], lines =>
        {
            ConfigFile f;
            try
            {
                f = ConfigFile.Parse(string.Join('\n', lines), "fuzz.conf");
            }
            catch (ConfigException e)
            {
                Assert.NotEmpty(e.Message);
                return;
            }

            foreach (var key in f.Values.Keys.Take(4))
            {
                try
                {
                    _ = f.GetInt(key, 1, 0, 100);
                }
                catch (ConfigException)
                {
                }

                try
                {
                    _ = f.GetBool(key, false);
                }
                catch (ConfigException)
                {
                }

                try
                {
                    _ = f.GetSeconds(key, TimeSpan.FromSeconds(1));
                }
                catch (ConfigException)
                {
                }
            }
        }, cases: 5000);
    }

    [Fact]
    public void A_missing_config_file_is_an_empty_config()
    {
        using var dir = new TempDir("hardening-conf");
        Assert.Empty(ConfigFile.Load(dir.File("missing.conf")).Values);
    }
}
