using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using AppModule.Artifacts;

namespace ArtifactGen.Tests;

public sealed class GoJsonTests
{
    [Theory]
    [InlineData("12345678901234567890", "12345678901234567000")]
    [InlineData("1e21", "1e+21")]
    [InlineData("123456789012345678901234", "1.2345678901234569e+23")]
    [InlineData("0.0000001", "1e-7")]
    [InlineData("0.000001", "0.000001")]
    [InlineData("1.5", "1.5")]
    [InlineData("100", "100")]
    [InlineData("-0.25", "-0.25")]
    [InlineData("3", "3")]
    [InlineData("1e-10", "1e-10")]
    public void Numbers_are_written_like_Go_float64(string input, string expected) =>
        Assert.Equal(expected, GoJson.Serialize(JsonValue.Parse(input), true, false));

    [Fact]
    public void Strings_are_escaped_like_Go_with_html_escaping() =>
        Assert.Equal("\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\t\\u0001é\\u2028\"",
            GoJson.Serialize(new JsonString("a<b>&\"\\\n\t\u0001é\u2028"), true, false));

    [Fact]
    public void Maps_are_sorted_and_indented_like_MarshalIndent()
    {
        var v = JsonValue.Parse("{\"b\":[1,\"x\"],\"a\":{\"z\":[],\"y\":{}},\"c\":null}");
        Assert.Equal("{\n  \"a\": {\n    \"y\": {},\n    \"z\": []\n  },\n  \"b\": [\n    1,\n    \"x\"\n  ],\n  \"c\": null\n}", GoJson.Serialize(v, true, true));
        Assert.Equal("{\"a\":{\"y\":{},\"z\":[]},\"b\":[1,\"x\"],\"c\":null}", GoJson.Serialize(v, true, false));
    }
}

public sealed class MetadataTests
{
    private const string Id = "d6bf9764898394bd857e21238f91820b05fd7887708053312f015efd607db7eb";

    private static AppMetadata Good => new("myapp", "docker-compose", "linux/amd64", "1.0", [Id], new Dictionary<string, string> { ["K8S_NAMESPACE"] = "x" });

    [Fact]
    public void The_literal_null_means_no_meta_data() => Assert.Null(AppMetadata.Parse("null"));

    [Fact]
    public void The_clients_pretty_printed_form_parses_and_validates()
    {
        var text = "{\n  \"application_name\": \"myapp\",\n  \"env\": {\n    \"K8S_NAMESPACE\": \"x\"\n  },\n  \"images\": [\n    \"" + Id + "\"\n  ],\n  \"orchestrator\": \"docker-compose\",\n  \"platform\": \"linux/amd64\",\n  \"version\": \"1.0\"\n}";
        var m = AppMetadata.Parse(text)!;
        Assert.Equal("myapp", m.ApplicationName);
        Assert.Equal([Id], m.Images);
        Assert.Equal("x", m.Env!["K8S_NAMESPACE"]);
        Assert.Empty(MetadataValidator.Validate(m));
        Assert.Equal("{\"application_name\":\"myapp\",\"env\":{\"K8S_NAMESPACE\":\"x\"},\"images\":[\"" + Id + "\"],\"orchestrator\":\"docker-compose\",\"platform\":\"linux/amd64\",\"version\":\"1.0\"}", m.ToArtifactJson());
    }

    [Theory]
    [InlineData("my app", "application_name")]
    [InlineData("a/b", "application_name")]
    [InlineData("", "application_name")]
    public void A_bad_application_name_names_the_field_the_value_and_the_fix(string name, string field)
    {
        var e = Assert.Single(MetadataValidator.Validate(Good with { ApplicationName = name }));
        Assert.Contains($"\"{field}\"", e);
        Assert.Contains($"\"{name}\"", e);
        Assert.Contains("letters, digits", e);
        Assert.DoesNotContain('\n', e);
    }

    [Theory]
    [InlineData("../../bin/sh")]
    [InlineData("/usr/bin/docker-compose")]
    [InlineData(".hidden")]
    [InlineData("a..b")]
    [InlineData("docker compose")]
    [InlineData("")]
    public void An_orchestrator_that_is_not_a_plain_file_name_is_rejected(string o)
    {
        var e = Assert.Single(MetadataValidator.Validate(Good with { Orchestrator = o }));
        Assert.Contains("\"orchestrator\"", e);
        Assert.Contains("plain file name", e);
    }

    [Theory]
    [InlineData("docker-compose")]
    [InlineData("k8s")]
    [InlineData("my.orch_1")]
    public void Plain_orchestrator_names_are_accepted(string o) => Assert.Empty(MetadataValidator.Validate(Good with { Orchestrator = o }));

    [Fact]
    public void Env_names_and_values_are_checked()
    {
        var errors = MetadataValidator.Validate(Good with { Env = new Dictionary<string, string> { ["1BAD"] = "x", ["A;B"] = "y", ["OK"] = "a\0b" } });
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.Contains("\"1BAD\""));
        Assert.Contains(errors, e => e.Contains("\"A;B\""));
        Assert.Contains(errors, e => e.Contains("env.OK") && e.Contains("NUL"));
    }

    [Fact]
    public void Versions_other_than_1_x_and_bad_ids_and_platforms_are_rejected()
    {
        Assert.Contains("\"version\"", Assert.Single(MetadataValidator.Validate(Good with { Version = "2.0" })));
        Assert.Empty(MetadataValidator.Validate(Good with { Version = "1.3" }));
        Assert.Contains("images[0]", Assert.Single(MetadataValidator.Validate(Good with { Images = ["sha256:" + Id] })));
        Assert.Contains("\"platform\"", Assert.Single(MetadataValidator.Validate(Good with { Platform = "amd64" })));
        Assert.Empty(MetadataValidator.Validate(Good with { Platform = "linux/arm/v7" }));
    }

    [Fact]
    public void Wrong_types_are_one_line_format_errors()
    {
        var e = Assert.Throws<ArtifactFormatException>(() => AppMetadata.Parse("{\"application_name\":1,\"orchestrator\":\"x\",\"platform\":\"linux/amd64\",\"version\":\"1.0\"}"));
        Assert.Contains("\"application_name\" must be a string, got the number 1", e.Message);
        e = Assert.Throws<ArtifactFormatException>(() => AppMetadata.Parse("{\"orchestrator\":\"x\"}"));
        Assert.Contains("\"application_name\" is missing", e.Message);
        e = Assert.Throws<ArtifactFormatException>(() => AppMetadata.Parse("[1]"));
        Assert.Contains("must be a JSON object", e.Message);
        e = Assert.Throws<ArtifactFormatException>(() => AppMetadata.Parse("{\"a\":"));
        Assert.Contains("not valid JSON", e.Message);
        e = Assert.Throws<ArtifactFormatException>(() => AppMetadata.Parse("{\"application_name\":\"a\",\"orchestrator\":\"x\",\"platform\":\"linux/amd64\",\"version\":\"1.0\",\"env\":{\"A\":1}}"));
        Assert.Contains("env.A", e.Message);
    }
}

public sealed class ArtifactRoundTripTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private ArtifactSpec Spec(ArtifactCompression c, params (string Name, string Content)[] files)
    {
        var payloads = files.Select(f => new PayloadFile(f.Name, _dir.Write("src/" + f.Name, f.Content))).ToList();
        var meta = new AppMetadata("myapp", "docker-compose", "linux/amd64", "1.0", []).ToJson();
        return new ArtifactSpec(new HeaderInfo(["app"], "rt-1", "grp", ["dev-a"]),
            new TypeInfo("app", new Dictionary<string, string> { ["rootfs-image.myapp.version"] = "rt-1" }, ["rootfs-image.myapp.*"]),
            meta, payloads, c, DateTimeOffset.UnixEpoch);
    }

    [Theory]
    [InlineData(ArtifactCompression.None)]
    [InlineData(ArtifactCompression.Gzip)]
    [InlineData(ArtifactCompression.Lzma)]
    public async Task What_the_writer_writes_the_reader_reads_back_and_mender_artifact_validates(ArtifactCompression c)
    {
        var path = _dir["rt.mender"];
        var w = await ArtifactWriter.WriteFileAsync(Spec(c, ("a.txt", "alpha\n"), ("b.bin", new string('x', 100_000))), path, null, null, CancellationToken.None);
        Assert.Equal(new FileInfo(path).Length, w.Size);
        var r = Tools.Run(Tool.MenderArtifact, ["validate", path]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var got = new Dictionary<string, string>();
        var contents = await ArtifactReader.ReadFileAsync(path, new ArtifactReadOptions(), async (name, size, s, ct) =>
        {
            using var sr = new StreamReader(s, leaveOpen: true);
            got[name] = await sr.ReadToEndAsync(ct);
        }, CancellationToken.None);
        Assert.Equal("alpha\n", got["a.txt"]);
        Assert.Equal(100_000, got["b.bin"].Length);
        Assert.Equal(c, contents.Compression);
        Assert.Equal("rt-1", contents.Header.HeaderInfo.ArtifactName);
        Assert.Equal("grp", contents.Header.HeaderInfo.ArtifactGroup);
        Assert.Equal(["dev-a"], contents.Header.HeaderInfo.DeviceTypes);
        Assert.Equal("app", contents.Header.TypeInfo.Type);
        Assert.Equal("myapp", contents.Header.AppMetadata!.ApplicationName);
        Assert.Equal(["data/0000/a.txt", "data/0000/b.bin", "header.tar" + Compression.Suffix(c), "version"], contents.Manifest.Select(m => m.Path).ToArray());
        Assert.False(File.Exists(path + ".data"));
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public async Task A_payload_changed_after_signing_fails_its_checksum()
    {
        var path = _dir["t.mender"];
        await ArtifactWriter.WriteFileAsync(Spec(ArtifactCompression.None, ("a.txt", "ORIGINAL-PAYLOAD-CONTENT")), path, null, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(path);
        var at = Encoding.ASCII.GetString(bytes).IndexOf("ORIGINAL", StringComparison.Ordinal);
        bytes[at] = (byte)'X';
        File.WriteAllBytes(path, bytes);
        var e = await Assert.ThrowsAsync<ArtifactChecksumException>(() => ArtifactReader.ReadFileAsync(path, new ArtifactReadOptions(), null, CancellationToken.None));
        Assert.Contains("\"data/0000/a.txt\" has sha256", e.Message);
        Assert.Contains("tampered", e.Message);
        // mender-artifact agrees
        Assert.NotEqual(0, Tools.Run(Tool.MenderArtifact, ["validate", path]).ExitCode);
    }

    [Fact]
    public async Task A_signature_from_another_key_or_a_missing_signature_is_rejected()
    {
        var (priv, _) = Keys.Make(_dir, "ec");
        var (_, otherPub) = Keys.Make(_dir, "ec", "other");
        var (_, pub) = Keys.Make(_dir, "ec");
        var path = _dir["s.mender"];
        using (var signer = ArtifactSigner.FromPem(File.ReadAllText(priv), priv))
            await ArtifactWriter.WriteFileAsync(Spec(ArtifactCompression.Gzip, ("a.txt", "x")), path, signer, null, CancellationToken.None);
        using (var v = ArtifactVerifier.FromPem(File.ReadAllText(pub), pub))
            Assert.True((await ArtifactReader.ReadFileAsync(path, new ArtifactReadOptions(v), null, CancellationToken.None)).SignatureVerified);
        using (var v = ArtifactVerifier.FromPem(File.ReadAllText(otherPub), otherPub))
            await Assert.ThrowsAsync<ArtifactSignatureException>(() => ArtifactReader.ReadFileAsync(path, new ArtifactReadOptions(v), null, CancellationToken.None));
        var unsigned = _dir["u.mender"];
        await ArtifactWriter.WriteFileAsync(Spec(ArtifactCompression.Gzip, ("a.txt", "x")), unsigned, null, null, CancellationToken.None);
        using (var v = ArtifactVerifier.FromPem(File.ReadAllText(pub), pub))
        {
            var e = await Assert.ThrowsAsync<ArtifactSignatureException>(() => ArtifactReader.ReadFileAsync(unsigned, new ArtifactReadOptions(v), null, CancellationToken.None));
            Assert.Contains("not signed", e.Message);
        }
    }

    [Theory]
    [InlineData("none")]
    [InlineData("gzip")]
    [InlineData("lzma")]
    public async Task Artifacts_written_by_mender_artifact_are_read_and_give_the_clients_file_tree(string compression)
    {
        var a = _dir.Write("in/a.txt", "hello\n");
        var b = _dir.Write("in/b.bin", new string('b', 5000));
        var meta = _dir.Write("in/meta.json", "{\"version\":\"1.0\",\"application_name\":\"demo\",\"big\":12345678901234567890,\"orchestrator\":\"docker-compose\",\"platform\":\"linux/amd64\",\"images\":[],\"env\":{\"Z\":\"<z>\",\"A\":\"a\"}}");
        var (priv, pub) = Keys.Make(_dir, "rsa");
        var path = _dir["m.mender"];
        Tools.MustRun(Tool.MenderArtifact, "write", "module-image", "-T", "app", "-t", "test-device", "-n", "app-1", "-o", path, "-f", a, "-f", b,
            "--meta-data", meta, "--software-name", "demo", "--software-version", "1.2.3", "--compression", compression, "-k", priv, "-g", "grp-1");
        using var v = ArtifactVerifier.FromPem(File.ReadAllText(pub), pub);
        var tree = _dir["tree"];
        var c = await FileApiTree.WriteAsync(path, tree, new DeviceState("initial", "", "test-device"), new ArtifactReadOptions(v), CancellationToken.None);
        Assert.True(c.SignatureVerified);
        string T(string rel) => File.ReadAllText(Path.Combine(tree, rel));
        Assert.Equal("3", T("version"));
        Assert.Equal("initial", T("current_artifact_name"));
        Assert.Equal("", T("current_artifact_group"));
        Assert.Equal("test-device", T("current_device_type"));
        Assert.Equal("app-1", T("header/artifact_name"));
        Assert.Equal("grp-1", T("header/artifact_group"));
        Assert.Equal("app", T("header/payload_type"));
        Assert.Equal("{\n  \"payloads\": [\n    {\n      \"type\": \"app\"\n    }\n  ],\n  \"artifact_provides\": {\n    \"artifact_name\": \"app-1\",\n    \"artifact_group\": \"grp-1\"\n  },\n  \"artifact_depends\": {\n    \"device_type\": [\n      \"test-device\"\n    ]\n  }\n}", T("header/header-info"));
        Assert.Equal("{\n  \"type\": \"app\",\n  \"artifact_provides\": {\n    \"rootfs-image.demo.version\": \"1.2.3\"\n  },\n  \"clears_artifact_provides\": [\n    \"rootfs-image.demo.*\"\n  ]\n}", T("header/type-info"));
        Assert.Equal("{\n  \"application_name\": \"demo\",\n  \"big\": 12345678901234567000,\n  \"env\": {\n    \"A\": \"a\",\n    \"Z\": \"\\u003cz\\u003e\"\n  },\n  \"images\": [],\n  \"orchestrator\": \"docker-compose\",\n  \"platform\": \"linux/amd64\",\n  \"version\": \"1.0\"\n}", T("header/meta-data"));
        Assert.Equal("hello\n", T("files/a.txt"));
        Assert.Equal(5000, T("files/b.bin").Length);
        Assert.True(Directory.Exists(Path.Combine(tree, "tmp")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(tree, "files", "a.txt")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(tree, "header")));
    }

    [Fact]
    public async Task An_artifact_without_meta_data_gives_the_four_bytes_null()
    {
        var a = _dir.Write("in/a.txt", "x");
        var path = _dir["n.mender"];
        Tools.MustRun(Tool.MenderArtifact, "write", "module-image", "-T", "app", "-t", "d", "-n", "n-1", "-o", path, "-f", a);
        var tree = _dir["tree"];
        var c = await FileApiTree.WriteAsync(path, tree, new DeviceState("i", "", "d"), new ArtifactReadOptions(), CancellationToken.None);
        Assert.Equal("null", File.ReadAllText(Path.Combine(tree, "header", "meta-data")));
        Assert.Null(c.Header.AppMetadata);
    }

    [Fact]
    public async Task A_tree_is_removed_again_when_the_artifact_is_corrupt()
    {
        var path = _dir["c.mender"];
        await ArtifactWriter.WriteFileAsync(Spec(ArtifactCompression.None, ("a.txt", "ORIGINAL-PAYLOAD-CONTENT")), path, null, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(path);
        bytes[Encoding.ASCII.GetString(bytes).IndexOf("ORIGINAL", StringComparison.Ordinal)] ^= 1;
        File.WriteAllBytes(path, bytes);
        await Assert.ThrowsAsync<ArtifactChecksumException>(() => FileApiTree.WriteAsync(path, _dir["tree"], new DeviceState("i", "", "d"), new ArtifactReadOptions(), CancellationToken.None));
        Assert.False(Directory.Exists(_dir["tree"]));
    }

    [Theory]
    [InlineData(ArtifactCompression.None)]
    [InlineData(ArtifactCompression.Gzip)]
    [InlineData(ArtifactCompression.Lzma)]
    public async Task A_truncated_artifact_is_rejected(ArtifactCompression c)
    {
        var path = _dir["t.mender"];
        await ArtifactWriter.WriteFileAsync(Spec(c, ("a.txt", new string('a', 20_000)), ("b.txt", "b")), path, null, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 3000)]);
        var e = await Assert.ThrowsAnyAsync<ArtifactException>(() => ArtifactReader.ReadFileAsync(path, new ArtifactReadOptions(), null, CancellationToken.None));
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task A_file_that_is_not_an_artifact_is_a_format_error()
    {
        var p = _dir.Write("x.mender", "not a tar at all");
        await Assert.ThrowsAnyAsync<ArtifactException>(() => ArtifactReader.ReadFileAsync(p, new ArtifactReadOptions(), null, CancellationToken.None));
    }
}

public sealed class PayloadTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private const string IdA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string IdB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    private const string IdC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    private string MakeTar(string name, bool gzip, IEnumerable<(string Name, TarEntryType Type, string? Content, string? Link)> entries)
    {
        var path = _dir[name];
        using var fs = File.Create(path);
        using Stream s = gzip ? new GZipStream(fs, CompressionLevel.Fastest) : fs;
        using var w = new TarWriter(s, TarEntryFormat.Gnu);
        foreach (var (n, type, content, link) in entries)
        {
            var e = new GnuTarEntry(type, n) { Mode = (UnixFileMode)0b110_100_100 };
            if (content is not null) e.DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content));
            if (link is not null) e.LinkName = link;
            w.WriteEntry(e);
        }
        return path;
    }

    private static (string, TarEntryType, string?, string?) F(string n, string c) => (n, TarEntryType.RegularFile, c, null);

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public async Task Images_are_classified_and_streamed_whatever_the_order_of_their_files(bool smallFilesFirst, bool gzip)
    {
        var list = new List<(string, TarEntryType, string?, string?)>();
        void Image(string id, string urlNew, string urlCur, string cur, bool deep, string data)
        {
            var small = new List<(string, TarEntryType, string?, string?)>
            {
                F($"images/{id}/url-new.txt", urlNew + "\n"), F($"images/{id}/url-current.txt", urlCur + "\n"),
                F($"images/{id}/sums-new.txt", id + "\n"), F($"images/{id}/sums-current.txt", cur + "\n"),
            };
            if (deep) small.Add(F($"images/{id}/deep_delta", ""));
            var img = F($"images/{id}/image.img", data);
            if (smallFilesFirst) { list.AddRange(small); list.Add(img); }
            else { list.Add(img); list.AddRange(small); }
        }
        list.Add(("images/", TarEntryType.Directory, null, null));
        Image(IdA, "r/a:1", "r/a:1", IdA, false, "full-image");
        Image(IdB, "r/b:2", "r/b:1", IdC, false, "vcdiff");
        Image(IdC, "r/c:2", "r/c:1", IdA, true, "deep");
        var path = MakeTar(gzip ? "images.tar.gz" : "images.tar", gzip, list);
        var streamed = new Dictionary<string, string>();
        var entries = await ImagesPayload.ReadAsync(path, async (e, s, ct) =>
        {
            using var r = new StreamReader(s, leaveOpen: true);
            streamed[e.Id] = e.Kind + ":" + await r.ReadToEndAsync(ct);
        }, CancellationToken.None);
        Assert.Equal([ImageKind.Full, ImageKind.Delta, ImageKind.DeepDelta], entries.Select(e => e.Kind).ToArray());
        Assert.Equal("Full:full-image", streamed[IdA]);
        Assert.Equal("Delta:vcdiff", streamed[IdB]);
        Assert.Equal("DeepDelta:deep", streamed[IdC]);
        Assert.Equal("r/b:1", entries[1].UrlCurrent);
        Assert.Equal(IdC, entries[1].SumsCurrent);
    }

    [Fact]
    public async Task The_images_writer_puts_small_files_before_image_img()
    {
        var img = _dir.Write("img", "DATA");
        var path = _dir["images.tar.gz"];
        await using (var fs = File.Create(path))
            await ImagesPayloadWriter.WriteAsync([new ImageToWrite(new ImageEntry(IdA, "x:2", "x:1", IdA, IdB, true, 4), img)], fs, DateTimeOffset.UnixEpoch, null, CancellationToken.None);
        var names = new List<string>();
        await using (var fs = File.OpenRead(path))
        await using (var gz = new GZipStream(fs, CompressionMode.Decompress))
        await using (var t = new TarReader(gz))
            while (t.GetNextEntry() is { } e) names.Add(e.Name);
        Assert.Equal(["images/", $"images/{IdA}/", $"images/{IdA}/url-new.txt", $"images/{IdA}/url-current.txt", $"images/{IdA}/sums-new.txt",
            $"images/{IdA}/sums-current.txt", $"images/{IdA}/deep_delta", $"images/{IdA}/image.img"], names);
        var e2 = Assert.Single(await ImagesPayload.ReadAsync(path, (_, _, _) => Task.CompletedTask, CancellationToken.None));
        Assert.Equal(ImageKind.DeepDelta, e2.Kind);
    }

    [Fact]
    public async Task Images_written_by_app_gen_stream_in_one_pass_and_a_reference_style_delta_takes_two()
    {
        var img = _dir.Write("img", "DATA");
        var path = _dir["one.tar.gz"];
        await using (var fs = File.Create(path))
            await ImagesPayloadWriter.WriteAsync(
            [
                new ImageToWrite(new ImageEntry(IdA, "x:1", "x:1", IdA, IdA, false, 4), img),
                new ImageToWrite(new ImageEntry(IdB, "y:2", "y:1", IdB, IdA, false, 4, IdC), img),
                new ImageToWrite(new ImageEntry(IdC, "z:2", "z:1", IdC, IdA, true, 4), img),
            ], fs, DateTimeOffset.UnixEpoch, null, CancellationToken.None);
        int opens = 0;
        var got = new List<ImageKind>();
        var r = await ImagesPayload.ReadStreamingAsync(() => { opens++; return File.OpenRead(path); }, path, (e, s, ct) => { got.Add(e.Kind); return Task.CompletedTask; }, CancellationToken.None);
        Assert.Equal(1, r.Passes);
        Assert.Equal(1, opens);
        Assert.Equal([ImageKind.Full, ImageKind.Delta, ImageKind.DeepDelta], got);
        Assert.Equal(IdC, r.Images[1].BaseTarSha256);

        // a whole-image delta without image-current.sha256 (the reference generator's) is ambiguous until the
        // end of its directory: it is handed over in a second pass
        var refPath = MakeTar("ref.tar", false,
        [
            F($"images/{IdB}/url-new.txt", "y:2\n"), F($"images/{IdB}/url-current.txt", "y:1\n"),
            F($"images/{IdB}/sums-new.txt", IdB + "\n"), F($"images/{IdB}/sums-current.txt", IdA + "\n"), F($"images/{IdB}/image.img", "VCDIFF"),
        ]);
        got.Clear();
        r = await ImagesPayload.ReadStreamingAsync(() => File.OpenRead(refPath), refPath, (e, s, ct) => { got.Add(e.Kind); return Task.CompletedTask; }, CancellationToken.None);
        Assert.Equal(2, r.Passes);
        Assert.Equal([ImageKind.Delta], got);
    }

    [Theory]
    [InlineData("images/" + IdA + "/evil.sh", "unexpected file")]
    [InlineData("images/not-an-id/image.img", "not named by a 64-hex image ID")]
    [InlineData("../images/x", "outside images")]
    [InlineData("etc/passwd", "outside images")]
    public async Task Unexpected_entries_in_images_are_rejected(string name, string message)
    {
        var path = MakeTar("bad.tar.gz", true, [F(name, "x")]);
        var e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ImagesPayload.ScanAsync(() => File.OpenRead(path), path, CancellationToken.None));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task A_symlink_or_duplicate_in_images_is_rejected()
    {
        var path = MakeTar("l.tar", false, [($"images/{IdA}/image.img", TarEntryType.SymbolicLink, null, "/etc/shadow")]);
        await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ImagesPayload.ScanAsync(() => File.OpenRead(path), path, CancellationToken.None));
        path = MakeTar("d.tar", false, [F($"images/{IdA}/url-new.txt", "a"), F($"images/{IdA}/url-new.txt", "b")]);
        var e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ImagesPayload.ScanAsync(() => File.OpenRead(path), path, CancellationToken.None));
        Assert.Contains("twice", e.Message);
    }

    [Fact]
    public async Task An_image_without_its_text_files_is_incomplete()
    {
        var path = MakeTar("i.tar", false, [F($"images/{IdA}/image.img", "x")]);
        var e = await Assert.ThrowsAsync<ArtifactFormatException>(() => ImagesPayload.ScanAsync(() => File.OpenRead(path), path, CancellationToken.None));
        Assert.Contains("has no url-new.txt", e.Message);
    }

    [Fact]
    public async Task Manifests_extract_with_directories_and_inside_symlinks()
    {
        var path = MakeTar("manifests.tar.gz", true,
        [
            ("manifests/", TarEntryType.Directory, null, null), F("manifests/docker-compose.yml", "services: {}\n"),
            ("manifests/sub/", TarEntryType.Directory, null, null), F("manifests/sub/x.env", "A=1\n"),
            ("manifests/link.yml", TarEntryType.SymbolicLink, null, "docker-compose.yml"),
        ]);
        var files = await ManifestsPayload.ExtractAsync(path, _dir["out"], null, CancellationToken.None);
        Assert.Equal(["docker-compose.yml", "sub/x.env"], files);
        Assert.Equal("services: {}\n", File.ReadAllText(_dir["out/link.yml"]));
    }

    public static TheoryData<string, TarEntryType, string?, string> UnsafeManifests => new()
    {
        { "manifests/../escape.yml", TarEntryType.RegularFile, null, "'..'" },
        { "/etc/cron.d/evil", TarEntryType.RegularFile, null, "absolute path" },
        { "other/file.yml", TarEntryType.RegularFile, null, "outside manifests/" },
        { "manifests/link", TarEntryType.SymbolicLink, "/etc/passwd", "absolute or leaves its directory" },
        { "manifests/link", TarEntryType.SymbolicLink, "../../etc", "absolute or leaves its directory" },
        { "manifests/hard", TarEntryType.HardLink, "/etc/shadow", "outside manifests/" },
        { "manifests/dev", TarEntryType.CharacterDevice, null, "is a character device (tar type '3')" },
        { "manifests/fifo", TarEntryType.Fifo, null, "is a FIFO (tar type '6')" },
    };

    [Theory]
    [MemberData(nameof(UnsafeManifests))]
    public async Task Unsafe_manifest_entries_are_rejected(string name, TarEntryType type, string? link, string message)
    {
        var path = MakeTar("m.tar", false, [(name, type, type == TarEntryType.RegularFile ? "x" : null, link)]);
        var e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ManifestsPayload.ExtractAsync(path, _dir["out"], null, CancellationToken.None));
        Assert.Contains(message, e.Message);
        Assert.False(File.Exists(Path.Combine(_dir.Path, "escape.yml")));
    }

    [Fact]
    public async Task Duplicate_and_oversized_manifest_entries_are_rejected()
    {
        var path = MakeTar("dup.tar", false, [F("manifests/a.yml", "1"), F("manifests/a.yml", "2")]);
        var e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ManifestsPayload.ExtractAsync(path, _dir["o1"], null, CancellationToken.None));
        Assert.Contains("twice", e.Message);
        path = MakeTar("big.tar", false, [F("manifests/a.yml", new string('a', 2000))]);
        e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ManifestsPayload.ExtractAsync(path, _dir["o2"], new ExtractionLimits(MaxFileBytes: 1000), CancellationToken.None));
        Assert.Contains("more than the limit", e.Message);
        path = MakeTar("many.tar", false, Enumerable.Range(0, 20).Select(i => F($"manifests/{i}.yml", "x")));
        e = await Assert.ThrowsAsync<UnsafeArchiveEntryException>(() => ManifestsPayload.ExtractAsync(path, _dir["o3"], new ExtractionLimits(MaxEntries: 10), CancellationToken.None));
        Assert.Contains("more than 10 entries", e.Message);
    }

    [Fact]
    public async Task Writes_through_a_symlinked_directory_stay_inside()
    {
        var path = MakeTar("s.tar", false,
        [
            ("manifests/sub/", TarEntryType.Directory, null, null),
            ("manifests/alias", TarEntryType.SymbolicLink, null, "sub"),
            F("manifests/alias/f.yml", "x"),
        ]);
        await ManifestsPayload.ExtractAsync(path, _dir["out"], null, CancellationToken.None);
        Assert.Equal("x", File.ReadAllText(_dir["out/sub/f.yml"]));
    }
}
