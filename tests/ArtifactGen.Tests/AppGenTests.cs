using System.Formats.Tar;
using System.Text.Json;
using AppModule.Artifacts;

namespace ArtifactGen.Tests;

/// <summary>app-gen, the published executable, against the real engine and mender-artifact 3.9.</summary>
[Collection("images")]
public sealed class AppGenTests(ImagesFixture images) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string ComposeDir(params string[] imageRefs)
    {
        var services = string.Concat(imageRefs.Select((r, i) => $"  s{i}:\n    image: {r}\n"));
        _dir.Write("m/docker-compose.yml", "services:\n" + services);
        _dir.Write("m/docker-compose-dev.yml", "");
        return _dir["m"];
    }

    private RunResult Gen(string output, params string[] extra)
    {
        var args = new List<string> { "-n", "app-1", "-t", "dev-a", "-t", "dev-b", "-a", "myapp", "-r", "docker-compose", "-p", "linux/amd64", "-o", output };
        if (!extra.Contains("-m")) args.AddRange(["-m", _dir["m"]]);
        args.AddRange(extra);
        return Tools.Run(Tools.AppGen, args, cwd: _dir.Path);
    }

    private static void Validate(string artifact, string? pubKey = null)
    {
        var args = new List<string> { "validate" };
        if (pubKey is not null) args.AddRange(["-k", pubKey]);
        args.Add(artifact);
        var r = Tools.Run(Tool.MenderArtifact, args);
        Assert.True(r.ExitCode == 0, $"mender-artifact validate {artifact}: {r}");
        Assert.Contains("validated successfully", r.Stdout + r.Stderr);
    }

    private static string Read(string artifact) => Tools.MustRun(Tool.MenderArtifact, "read", artifact).Stdout;

    private void AssertNothingLeft(string output)
    {
        Assert.False(File.Exists(output), $"{output} must not exist after a failure");
        var leftovers = Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(output)!).Where(p => Path.GetFileName(p).StartsWith('.')).ToList();
        Assert.True(leftovers.Count == 0, "temporary files left behind: " + string.Join(", ", leftovers));
    }

    [Fact]
    public void Generates_an_artifact_from_the_compose_images_that_mender_artifact_validates_and_reads()
    {
        ComposeDir(images.Web, images.V1);
        var output = _dir["out/app-1.mender"];
        Directory.CreateDirectory(_dir["out"]);
        var r = Gen(output, "--json", "--provides", "custom.key:v1", "--depends", "custom.dep:yes", "--clears-provides", "custom.*");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var read = Read(output);
        Assert.Contains("Name: app-1", read);
        Assert.Contains("Compatible devices: '[dev-a dev-b]'", read);
        Assert.Contains("Type:   app", read);
        Assert.Contains("rootfs-image.myapp.version: app-1", read);
        Assert.Contains("custom.key: v1", read);
        Assert.Contains("custom.dep: yes", read);
        Assert.Contains("rootfs-image.myapp.*", read);
        Assert.Contains("\"application_name\": \"myapp\"", read);
        Assert.Contains("\"orchestrator\": \"docker-compose\"", read);
        Assert.Contains("\"platform\": \"linux/amd64\"", read);
        Assert.Contains("\"version\": \"1.0\"", read);
        var ids = new[] { images.ImageId(images.Web), images.ImageId(images.V1) }.Order(StringComparer.Ordinal).ToArray();
        foreach (var id in ids) Assert.Contains($"\"{id}\"", read);
        Assert.Contains("name:     images.tar.gz", read);
        Assert.Contains("name:     manifests.tar.gz", read);
        Assert.Contains("app-gen: saving", r.Stderr); // progress on stderr

        // --json summary on stdout only
        using var json = JsonDocument.Parse(r.Stdout);
        Assert.Equal(output, json.RootElement.GetProperty("output").GetString());
        Assert.Equal(Tools.Sha256File(output), json.RootElement.GetProperty("sha256").GetString());
        Assert.Equal(ids, json.RootElement.GetProperty("meta_data").GetProperty("images").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.All(json.RootElement.GetProperty("images").EnumerateArray(), e => Assert.Equal("full", e.GetProperty("kind").GetString()));
    }

    [Fact]
    public async Task The_payload_layout_is_what_the_app_module_expects_and_image_img_is_the_docker_save_tar()
    {
        ComposeDir(images.V1);
        var output = _dir["a.mender"];
        var r = Gen(output);
        Assert.True(r.ExitCode == 0, r.ToString());
        var tree = _dir["tree"];
        var contents = await FileApiTree.WriteAsync(output, tree, new DeviceState("old", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        Assert.Equal(["images.tar.gz", "manifests.tar.gz"], contents.Files.Select(f => f.Name).ToArray());
        var meta = contents.Header.AppMetadata!;
        Assert.Empty(MetadataValidator.Validate(meta));
        var id = images.ImageId(images.V1);
        Assert.Equal([id], meta.Images);
        var saved = _dir["v1.tar"];
        images.Save(images.V1, saved);
        string? streamedSha = null;
        var entries = await ImagesPayload.ReadAsync(Path.Combine(tree, "files", "images.tar.gz"), async (e, s, ct) =>
        {
            var ms = new MemoryStream();
            await s.CopyToAsync(ms, ct);
            streamedSha = ArtifactWriter.Sha256Hex(ms.ToArray());
        }, CancellationToken.None);
        var img = Assert.Single(entries);
        Assert.Equal(ImageKind.Full, img.Kind);
        Assert.Equal(id, img.Id);
        Assert.Equal(images.V1, img.UrlNew);
        Assert.Equal(images.V1, img.UrlCurrent);
        Assert.Equal(Tools.Sha256File(saved), streamedSha);
        var files = await ManifestsPayload.ExtractAsync(Path.Combine(tree, "files", "manifests.tar.gz"), _dir["manifests-out"], null, CancellationToken.None);
        Assert.Equal(["docker-compose-dev.yml", "docker-compose.yml"], files.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(File.ReadAllText(_dir["m/docker-compose.yml"]), File.ReadAllText(_dir["manifests-out/docker-compose.yml"]));
    }

    [Theory]
    [InlineData("none", "rsa")]
    [InlineData("gzip", "ec")]
    [InlineData("lzma", "rsa")]
    [InlineData("lzma", "ec")]
    public async Task Signed_artifacts_in_every_compression_validate_with_the_public_key(string compression, string keyKind)
    {
        ComposeDir(images.Web);
        var (priv, pub) = Keys.Make(_dir, keyKind);
        var output = _dir[$"a-{compression}-{keyKind}.mender"];
        var r = Gen(output, "--compression", compression, "--key", priv);
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output, pub);
        Assert.Contains("Signature: signed", Read(output));
        // and without the key mender-artifact refuses it ("missing verifier" needs -k; unsigned check with -k is the inverse)
        var (_, otherPub) = Keys.Make(_dir, keyKind == "rsa" ? "ec" : "rsa", "other");
        Assert.NotEqual(0, Tools.Run(Tool.MenderArtifact, ["validate", "-k", otherPub, output]).ExitCode);
        using var verifier = ArtifactVerifier.FromPem(File.ReadAllText(pub), pub);
        var c = await ArtifactReader.ReadFileAsync(output, new ArtifactReadOptions(verifier), null, CancellationToken.None);
        Assert.True(c.SignatureVerified);
        Assert.Equal(compression switch { "none" => ArtifactCompression.None, "gzip" => ArtifactCompression.Gzip, _ => ArtifactCompression.Lzma }, c.Compression);
    }

    [Fact]
    public void Two_runs_on_the_same_inputs_give_identical_bytes()
    {
        ComposeDir(images.Web, images.V1);
        var (priv, _) = Keys.Make(_dir, "rsa");
        Assert.Equal(0, Gen(_dir["one.mender"], "--compression", "lzma", "--key", priv).ExitCode);
        Assert.Equal(0, Gen(_dir["two.mender"], "--compression", "lzma", "--key", priv).ExitCode);
        Assert.Equal(File.ReadAllBytes(_dir["one.mender"]), File.ReadAllBytes(_dir["two.mender"]));
    }

    [Fact]
    public async Task Skip_images_ships_the_manifests_only_and_meta_data_has_no_image_list()
    {
        ComposeDir(images.Web);
        var output = _dir["skip.mender"];
        var r = Gen(output, "--skip-images");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var c = await ArtifactReader.ReadFileAsync(output, new ArtifactReadOptions(), null, CancellationToken.None);
        Assert.Equal(["manifests.tar.gz"], c.Files.Select(f => f.Name).ToArray());
        Assert.DoesNotContain("images", c.Header.MetaDataJson!);
        Assert.Empty(c.Header.AppMetadata!.Images);
    }

    [Fact]
    public async Task Compose_image_names_are_interpolated_from_the_environment_and_dot_env()
    {
        _dir.Write("m/docker-compose.yml", "services:\n  a:\n    image: ${REPO}:${TAG:-nope}\n  b:\n    image: ${OTHER:-appmodule/web:1.0}\n");
        _dir.Write("m/.env", "REPO=appmodule/web\nTAG=2.0\n");
        var output = _dir["i.mender"];
        var r = Gen(output, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var json = JsonDocument.Parse(r.Stdout);
        var urls = json.RootElement.GetProperty("images").EnumerateArray().Select(e => e.GetProperty("url_new").GetString()!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["appmodule/web:1.0", "appmodule/web:2.0"], urls);
        await Task.CompletedTask;

        _dir.Write("m/docker-compose.yml", "services:\n  a:\n    image: ${UNSET_ARTIFACTS_TEST_VAR}\n");
        r = Gen(_dir["j.mender"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("UNSET_ARTIFACTS_TEST_VAR", r.Stderr);
        Assert.Contains("not set", r.Stderr);
    }

    [Fact]
    public void A_service_without_an_image_and_deep_deltas_for_k8s_are_refused()
    {
        _dir.Write("m/docker-compose.yml", "services:\n  built:\n    build: .\n");
        var r = Gen(_dir["x.mender"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("service \"built\"", r.Stderr);
        Assert.Contains("has no image", r.Stderr);
        r = Tools.Run(Tools.AppGen, ["-n", "x", "-t", "d", "-a", "app", "-r", "k8s", "-p", "linux/amd64", "-m", _dir["m"], "-o", _dir["x.mender"],
            "--image", $"{images.V1},{images.V2}", "--deep-delta"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("deep deltas are not supported with the k8s orchestrator", r.Stderr);
        Assert.False(File.Exists(_dir["x.mender"]));
    }

    [Fact]
    public void An_unknown_image_is_a_clear_error_and_leaves_no_output()
    {
        ComposeDir("artifacts-test/does-not-exist:9.9");
        var output = _dir["out/x.mender"];
        Directory.CreateDirectory(_dir["out"]);
        var r = Gen(output);
        Assert.Equal(4, r.ExitCode);
        Assert.Contains("image artifacts-test/does-not-exist:9.9 is not in the local Docker engine", r.Stderr);
        Assert.Equal("", r.Stdout);
        AssertNothingLeft(output);
    }

    [Fact]
    public void A_bad_application_name_is_a_clear_error_and_leaves_no_output()
    {
        ComposeDir(images.Web);
        var output = _dir["out/x.mender"];
        Directory.CreateDirectory(_dir["out"]);
        var r = Tools.Run(Tools.AppGen, ["-n", "x", "-t", "d", "-a", "my app;rm", "-r", "docker-compose", "-p", "linux/amd64", "-m", _dir["m"], "-o", output]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("application name \"my app;rm\" is invalid", r.Stderr);
        AssertNothingLeft(output);
    }

    [Fact]
    public void An_empty_manifests_directory_is_a_clear_error_and_leaves_no_output()
    {
        Directory.CreateDirectory(_dir["empty"]);
        var output = _dir["out/x.mender"];
        Directory.CreateDirectory(_dir["out"]);
        var r = Gen(output, "-m", _dir["empty"], "--image", images.Web);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains($"manifests directory {_dir["empty"]} is empty", r.Stderr);
        AssertNothingLeft(output);
    }

    [Fact]
    public void An_unreadable_key_is_a_clear_error_and_leaves_no_output()
    {
        ComposeDir(images.Web);
        var output = _dir["out/x.mender"];
        Directory.CreateDirectory(_dir["out"]);
        var r = Gen(output, "--key", _dir["no-such-key.pem"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("signing key", r.Stderr);
        Assert.Contains("no-such-key.pem", r.Stderr);
        AssertNothingLeft(output);

        var garbage = _dir.Write("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        r = Gen(output, "--key", garbage);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("holds no private key", r.Stderr);
        AssertNothingLeft(output);
    }

    [Fact]
    public void A_platform_mismatch_names_both_platforms()
    {
        ComposeDir(images.Web);
        var output = _dir["x.mender"];
        var r = Tools.Run(Tools.AppGen, ["-n", "x", "-t", "d", "-a", "app", "-r", "docker-compose", "-p", "linux/arm64", "-m", _dir["m"], "-o", output]);
        Assert.Equal(4, r.ExitCode);
        Assert.Contains("is for platform linux/amd64, but --platform is linux/arm64", r.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Usage_errors_exit_2_and_name_the_missing_option()
    {
        var r = Tools.Run(Tools.AppGen, ["-n", "x"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("device type not specified", r.Stderr);
        r = Tools.Run(Tools.AppGen, ["--bogus"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("unknown option --bogus", r.Stderr);
        r = Tools.Run(Tools.AppGen, ["--help"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--artifact-name", r.Stdout);
    }

    [Fact]
    public async Task Images_come_from_a_docker_archive_tar_and_an_OCI_layout_without_the_engine()
    {
        _dir.Write("m/docker-compose.yml", "services:\n  a:\n    image: offline/one:1\n  b:\n    image: offline/two:1\n");
        var tar = _dir["one.tar"];
        var tagged = "offline/one:1";
        // docker-archive named offline/one:1 (tag it, save, untag: the engine no longer knows it)
        Tools.MustRun(Tools.Docker, "tag", images.V1, tagged);
        try { images.Save(tagged, tar); }
        finally { Tools.Run(Tools.Docker, ["rmi", tagged]); }
        var oci = _dir["two-oci"];
        Tools.MustRun(Tool.Skopeo, ["copy", "--quiet", .. DockerEngine.SkopeoSource(images.Web), $"oci:{oci}:offline/two:1"]);
        var output = _dir["offline.mender"];
        var r = Tools.Run(Tools.AppGen, ["-n", "off-1", "-t", "d", "-a", "app", "-r", "docker-compose", "-p", "linux/amd64", "-m", _dir["m"], "-o", output,
            "--image-file", tar, "--image-file", oci], env: new Dictionary<string, string> { ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock" });
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var c = await FileApiTree.WriteAsync(output, _dir["tree"], new DeviceState("x", "", "d"), new ArtifactReadOptions(), CancellationToken.None);
        var ociConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(oci, "index.json"))).RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(oci, "blobs", "sha256", ociConfig[7..])));
        var ociId = manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()![7..];
        Assert.Equal(new[] { images.ImageId(images.V1), ociId }.Order(StringComparer.Ordinal), c.Header.AppMetadata!.Images);
        var entries = await ImagesPayload.ReadAsync(Path.Combine(_dir["tree"], "files", "images.tar.gz"), async (e, s, ct) =>
        {
            // both are tars: a docker-archive (manifest.json) and an OCI layout (oci-layout, index.json)
            var names = new List<string>();
            await using var t = new TarReader(s, leaveOpen: true);
            while (await t.GetNextEntryAsync(false, ct) is { } te) names.Add(PayloadArchive.Normalize(te.Name));
            Assert.Contains(e.UrlNew == "offline/one:1" ? "manifest.json" : "oci-layout", names);
        }, CancellationToken.None);
        Assert.Equal(2, entries.Count);
    }

    [Fact]
    public async Task From_an_image_file_holding_several_images_only_the_requested_image_is_shipped()
    {
        ComposeDir(images.V1);
        var multi = _dir["multi.tar"];
        Tools.MustRun(Tools.Docker, "save", "-o", multi, images.V1, images.Web);
        var output = _dir["multi.mender"];
        var r = Gen(output, "--image-file", multi, "--image", images.V1);
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        await FileApiTree.WriteAsync(output, _dir["tree"], new DeviceState("x", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        var img = _dir["image.img"];
        await ImagesPayload.ReadAsync(Path.Combine(_dir["tree"], "files", "images.tar.gz"), async (e, s, ct) =>
        {
            await using var fs = File.Create(img);
            await s.CopyToAsync(fs, ct);
        }, CancellationToken.None);
        var x = _dir["x"];
        Directory.CreateDirectory(x);
        await TarFile.ExtractToDirectoryAsync(img, x, false);
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(x, "manifest.json"))).RootElement;
        Assert.Equal(1, manifest.GetArrayLength());
        Assert.Equal(images.ImageId(images.V1) + ".json", manifest[0].GetProperty("Config").GetString());
        Assert.False(File.Exists(Path.Combine(x, images.ImageId(images.Web) + ".json")));
        Assert.Equal(3, Directory.GetFiles(x, "layer.tar", SearchOption.AllDirectories).Length);
        // and the engine loads it as that image
        var load = Tools.MustRun(Tools.Docker, "load", "-i", img);
        Assert.Contains(images.V1, load.Stdout);
    }

    [Fact]
    public async Task K8s_manifests_give_the_image_list_and_the_namespace_goes_into_meta_data_env()
    {
        _dir.Write("k/deploy/app.yaml", $"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: init\n        image: {images.V1}\n      containers:\n      - name: web\n        image: {images.Web}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n");
        var output = _dir["k.mender"];
        var r = Tools.Run(Tools.AppGen, ["-n", "k-1", "-t", "d", "-a", "kapp", "-r", "k8s", "-p", "linux/amd64", "-m", _dir["k"], "-o", output,
            "--k8s-namespace", "prod", "--k8s-ctr-address", "/run/k3s/containerd/containerd.sock", "--compression", "none"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var c = await ArtifactReader.ReadFileAsync(output, new ArtifactReadOptions(), null, CancellationToken.None);
        var meta = c.Header.AppMetadata!;
        Assert.Equal("k8s", meta.Orchestrator);
        Assert.Equal("prod", meta.Env!["K8S_NAMESPACE"]);
        Assert.Equal("/run/k3s/containerd/containerd.sock", meta.Env!["K8S_CTR_ADDRESS"]);
        Assert.Equal(new[] { images.ImageId(images.V1), images.ImageId(images.Web) }.Order(StringComparer.Ordinal), meta.Images);
    }

    [Fact]
    public async Task Of_several_compose_files_the_images_come_from_the_one_compose_reads_with_its_override()
    {
        _dir.Write("c/compose.yaml", $"services:\n  web:\n    image: {images.Web}\n");
        _dir.Write("c/docker-compose.yml", "services:\n  old:\n    image: not/read:1\n");
        _dir.Write("c/compose.override.yml", $"services:\n  extra:\n    image: {images.V1}\n");
        var output = _dir["c.mender"];
        var r = Gen(output, "-m", _dir["c"], "--compression", "none");
        Assert.True(r.ExitCode == 0, r.ToString());
        var c = await ArtifactReader.ReadFileAsync(output, new ArtifactReadOptions(), null, CancellationToken.None);
        Assert.Equal(new[] { images.ImageId(images.V1), images.ImageId(images.Web) }.Order(StringComparer.Ordinal), c.Header.AppMetadata!.Images);
    }

    [Fact]
    public void K8s_manifests_are_read_as_the_sub_modules_read_them_and_a_bad_object_is_named_with_its_file()
    {
        _dir.Write("kl/list.yaml", $"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n  spec:\n    containers:\n    - name: c\n      image: {images.Web}\n");
        _dir.Write("kl/z-bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n");
        var r = Tools.Run(Tools.AppGen, ["-n", "k-2", "-t", "d", "-a", "kapp", "-r", "k8s", "-p", "linux/amd64", "-m", _dir["kl"], "-o", _dir["kl.mender"]]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains($"{_dir["kl/z-bad.yaml"]}:1: ConfigMap has no metadata.name", r.Stderr, StringComparison.Ordinal);
        AssertNothingLeft(_dir["kl.mender"]);
    }

    [Fact]
    public async Task Podman_takes_the_image_list_from_the_same_kubernetes_manifests_and_refuses_deep_deltas()
    {
        _dir.Write("p/web.yaml", $"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: {images.Web}\n        volumeMounts:\n        - name: data\n          mountPath: /data\n      volumes:\n      - name: data\n        persistentVolumeClaim:\n          claimName: data\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n");
        var output = _dir["p.mender"];
        var r = Tools.Run(Tools.AppGen, ["-n", "p-1", "-t", "d", "-a", "papp", "-r", "podman", "-p", "linux/amd64", "-m", _dir["p"], "-o", output, "--compression", "none"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var c = await ArtifactReader.ReadFileAsync(output, new ArtifactReadOptions(), null, CancellationToken.None);
        Assert.Equal("podman", c.Header.AppMetadata!.Orchestrator);
        Assert.Equal([images.ImageId(images.Web)], c.Header.AppMetadata!.Images);

        var deep = Tools.Run(Tools.AppGen, ["-n", "p-2", "-t", "d", "-a", "papp", "-r", "podman", "-p", "linux/amd64", "-m", _dir["p"], "-o", _dir["p2.mender"],
            "--image", $"{images.V1},{images.Web}", "--deep-delta"]);
        Assert.NotEqual(0, deep.ExitCode);
        Assert.Contains("deep deltas are not supported with the podman orchestrator", deep.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_whole_image_delta_decodes_with_xdelta3_to_the_exact_new_saved_tar()
    {
        ComposeDir(images.V2);
        var output = _dir["d.mender"];
        var r = Gen(output, "--image", $"{images.V1},{images.V2}", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var tree = _dir["tree"];
        var c = await FileApiTree.WriteAsync(output, tree, new DeviceState("x", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        Assert.Equal(new[] { images.ImageId(images.V1), images.ImageId(images.V2) }.Order(StringComparer.Ordinal), c.Header.AppMetadata!.Images);
        var vcdiff = _dir["image.vcdiff"];
        var entries = await ImagesPayload.ReadAsync(Path.Combine(tree, "files", "images.tar.gz"), async (e, s, ct) =>
        {
            await using var fs = File.Create(vcdiff);
            await s.CopyToAsync(fs, ct);
        }, CancellationToken.None);
        var e = Assert.Single(entries);
        Assert.Equal(ImageKind.Delta, e.Kind);
        Assert.Equal(images.ImageId(images.V2), e.SumsNew);
        Assert.Equal(images.ImageId(images.V1), e.SumsCurrent);
        Assert.Equal(images.V1, e.UrlCurrent);
        var cur = _dir["cur.tar"];
        var nw = _dir["new.tar"];
        images.Save(images.V1, cur);
        images.Save(images.V2, nw);
        Assert.Equal(Tools.Sha256File(cur), e.BaseTarSha256);
        Assert.Equal([0xD6, 0xC3, 0xC4, 0x00], File.ReadAllBytes(vcdiff)[..4]);
        // the reference generator's application header (file names), so reference devices see the same
        Assert.Contains("image-new.img//image-current.img/", System.Text.Encoding.Latin1.GetString(File.ReadAllBytes(vcdiff)[..200]));
        Tools.MustRun(Tool.Xdelta3, "-d", "-s", cur, vcdiff, _dir["decoded.tar"]);
        Assert.Equal(Tools.Sha256File(nw), Tools.Sha256File(_dir["decoded.tar"]));
        Assert.True(new FileInfo(vcdiff).Length < new FileInfo(nw).Length / 2, "the delta should be much smaller than the image");
    }

    [Fact]
    public async Task A_deep_delta_pairs_layers_by_content_and_decodes_with_xdelta3_to_the_exact_new_layers()
    {
        ComposeDir(images.V2);
        var output = _dir["dd.mender"];
        var r = Gen(output, "--image", $"{images.V1},{images.V2}", "--deep-delta");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        var tree = _dir["tree"];
        await FileApiTree.WriteAsync(output, tree, new DeviceState("x", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        var ddTar = _dir["dd.tar"];
        var entries = await ImagesPayload.ReadAsync(Path.Combine(tree, "files", "images.tar.gz"), async (e, s, ct) =>
        {
            await using var fs = File.Create(ddTar);
            await s.CopyToAsync(fs, ct);
        }, CancellationToken.None);
        Assert.Equal(ImageKind.DeepDelta, Assert.Single(entries).Kind);

        // The reference layout: entries "./...", one dir per layer.
        var dd = _dir["dd"];
        Directory.CreateDirectory(dd);
        await TarFile.ExtractToDirectoryAsync(ddTar, dd, false);
        using (var t = new TarReader(File.OpenRead(ddTar)))
            Assert.StartsWith("./", t.GetNextEntry()!.Name);

        // Current and new layers from the engine, by file sha256.
        var cur = Extract(images.V1, "cur");
        var nw = Extract(images.V2, "new");
        var curLayers = Directory.GetFiles(cur, "layer.tar", SearchOption.AllDirectories).ToDictionary(Tools.Sha256File, p => p);
        var newLayers = Directory.GetFiles(nw, "layer.tar", SearchOption.AllDirectories).ToDictionary(p => Path.GetFileName(Path.GetDirectoryName(p)!), Tools.Sha256File);
        Assert.Equal(4, newLayers.Count);
        int unchanged = 0, decoded = 0;
        foreach (var (layerDir, newSum) in newLayers)
        {
            var d = Path.Combine(dd, layerDir);
            Assert.False(File.Exists(Path.Combine(d, "layer.tar")), $"layer {layerDir} must not be shipped whole");
            if (File.Exists(Path.Combine(d, "layer.tar.sha256sum")))
            {
                var sum = File.ReadAllText(Path.Combine(d, "layer.tar.sha256sum")).Trim();
                Assert.Equal(newSum, sum);
                Assert.True(curLayers.ContainsKey(sum), "an unchanged layer must exist in the current image");
                unchanged++;
                continue;
            }
            var curSum = File.ReadAllText(Path.Combine(d, "layer.tar.current.sha256sum")).Trim();
            Assert.Equal(newSum, File.ReadAllText(Path.Combine(d, "layer.tar.new.sha256sum")).Trim());
            var outFile = Path.Combine(_dir.Path, layerDir + ".decoded");
            Tools.MustRun(Tool.Xdelta3, "-d", "-s", curLayers[curSum], Path.Combine(d, "layer.tar.vcdiff"), outFile);
            Assert.Equal(newSum, Tools.Sha256File(outFile));
            decoded++;
        }
        // base and b.bin are unchanged (b.bin moved from position 3 to 3 of 4 after an inserted layer);
        // c.txt (inserted) and a.bin (changed) are encoded.
        Assert.Equal(2, unchanged);
        Assert.Equal(2, decoded);
        // The changed a.bin layer was encoded against the current a.bin layer (same path), not by position.
        var aDir = newLayers.Keys.Single(k => File.Exists(Path.Combine(dd, k, "layer.tar.vcdiff")) &&
            new FileInfo(Path.Combine(dd, k, "layer.tar.vcdiff")).Length < 100_000 && LayerHas(Path.Combine(nw, k, "layer.tar"), "a.bin"));
        var src = curLayers[File.ReadAllText(Path.Combine(dd, aDir, "layer.tar.current.sha256sum")).Trim()];
        Assert.True(LayerHas(src, "a.bin"), "the changed layer must be paired with the current layer holding the same file");
        // metadata files kept
        Assert.True(File.Exists(Path.Combine(dd, "manifest.json")));
    }

    [Fact]
    public async Task A_deep_delta_works_when_the_current_image_has_more_layers_than_the_new_one()
    {
        ComposeDir(images.V1);
        var output = _dir["back.mender"];
        var r = Gen(output, "--image", $"{images.V2},{images.V1}", "--deep-delta", "--compression", "none");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        await FileApiTree.WriteAsync(output, _dir["tree"], new DeviceState("x", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        var ddTar = _dir["dd.tar"];
        await ImagesPayload.ReadAsync(Path.Combine(_dir["tree"], "files", "images.tar.gz"), async (e, s, ct) =>
        {
            await using var fs = File.Create(ddTar);
            await s.CopyToAsync(fs, ct);
        }, CancellationToken.None);
        var dd = _dir["dd"];
        Directory.CreateDirectory(dd);
        await TarFile.ExtractToDirectoryAsync(ddTar, dd, false);
        // base and b.bin exist in v2 (b.bin at another position): referenced; a.bin is encoded against v2's
        // changed a.bin layer; v2's extra c.txt layer is simply not used. Nothing is shipped whole.
        Assert.Equal(2, Directory.GetFiles(dd, "layer.tar.sha256sum", SearchOption.AllDirectories).Length);
        Assert.Single(Directory.GetFiles(dd, "layer.tar.vcdiff", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(dd, "layer.tar", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task An_OCI_deep_delta_names_the_source_blob_and_decodes_with_xdelta3_to_the_exact_new_blobs()
    {
        ComposeDir(images.V2);
        var oci1 = _dir["oci1"];
        var oci2 = _dir["oci2"];
        Tools.MustRun(Tool.Skopeo, ["copy", "--quiet", .. DockerEngine.SkopeoSource(images.V1), $"oci:{oci1}:oci/app:1"]);
        Tools.MustRun(Tool.Skopeo, ["copy", "--quiet", .. DockerEngine.SkopeoSource(images.V2), $"oci:{oci2}:oci/app:2"]);
        var output = _dir["oci.mender"];
        var r = Gen(output, "--image-file", oci1, "--image-file", oci2, "--image", "oci/app:1,oci/app:2", "--deep-delta", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Validate(output);
        await FileApiTree.WriteAsync(output, _dir["tree"], new DeviceState("x", "", "dev-a"), new ArtifactReadOptions(), CancellationToken.None);
        var ddTar = _dir["dd.tar"];
        var entry = Assert.Single(await ImagesPayload.ReadAsync(Path.Combine(_dir["tree"], "files", "images.tar.gz"), async (e, s, ct) =>
        {
            await using var fs = File.Create(ddTar);
            await s.CopyToAsync(fs, ct);
        }, CancellationToken.None));
        Assert.Equal(ImageKind.DeepDelta, entry.Kind);
        var dd = _dir["dd"];
        Directory.CreateDirectory(dd);
        await TarFile.ExtractToDirectoryAsync(ddTar, dd, false);
        Assert.True(File.Exists(Path.Combine(dd, "oci-layout")));
        var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(oci2, "index.json")));
        var mdigest = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()![7..];
        var layers = JsonDocument.Parse(File.ReadAllText(Path.Combine(oci2, "blobs", "sha256", mdigest))).RootElement
            .GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()![7..]).ToList();
        Assert.Equal(4, layers.Count);
        // What app-gen chose per blob: a changed gzip'd blob compresses no better as a VCDIFF than as itself, so it goes whole.
        var chosen = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("images")[0].GetProperty("layers").EnumerateArray()
            .ToDictionary(l => l.GetProperty("path").GetString()!, l => l);
        Assert.Contains(chosen.Values, l => l.GetProperty("chosen").GetString() == "unchanged");
        Assert.Contains(chosen.Values, l => l.GetProperty("chosen").GetString() == "whole");
        foreach (var d in layers.Distinct())
        {
            var blob = Path.Combine(dd, "blobs", "sha256", d);
            var choice = chosen[$"blobs/sha256/{d}"];
            if (choice.GetProperty("chosen").GetString() == "whole")
            {
                Assert.True(choice.GetProperty("delta_bytes").GetInt64() >= choice.GetProperty("bytes").GetInt64(), choice.ToString());
                Assert.Equal(d, Tools.Sha256File(blob));
                Assert.False(File.Exists(blob + ".vcdiff"), $"blob {d} is shipped whole, without a delta");
                continue;
            }

            Assert.False(File.Exists(blob), $"layer blob {d} must not be shipped whole");
            var source = File.ReadAllText(blob + ".source").Trim();
            Assert.StartsWith("blobs/sha256/", source);
            var decoded = _dir[d + ".decoded"];
            // -D: the blobs are gzip'd; without it xdelta3 would gunzip the source before decoding
            Tools.MustRun(Tool.Xdelta3, "-d", "-D", "-s", Path.Combine(oci1, source), blob + ".vcdiff", decoded);
            Assert.Equal(d, Tools.Sha256File(decoded));
        }
    }

    private static bool LayerHas(string layerTar, string name)
    {
        using var t = new TarReader(File.OpenRead(layerTar));
        while (t.GetNextEntry() is { } e) if (PayloadArchive.Normalize(e.Name) == name) return true;
        return false;
    }

    private string Extract(string image, string name)
    {
        var tar = _dir[name + ".tar"];
        images.Save(image, tar);
        var d = _dir[name];
        Directory.CreateDirectory(d);
        TarFile.ExtractToDirectory(tar, d, false);
        return d;
    }

    [Fact]
    public void A_missing_xdelta3_is_a_clear_error_for_deltas()
    {
        ComposeDir(images.V2);
        var output = _dir["x.mender"];
        var r = Tools.Run(Tools.AppGen, ["-n", "x", "-t", "d", "-a", "app", "-r", "docker-compose", "-p", "linux/amd64", "-m", _dir["m"], "-o", output,
            "--image", $"{images.V1},{images.V2}"], env: new Dictionary<string, string> { ["XDELTA_COMMAND"] = "/nonexistent/xdelta3" });
        Assert.Equal(5, r.ExitCode);
        Assert.Contains("is not installed on this build machine", r.Stderr);
        AssertNothingLeft(output);
    }
}

public static class Keys
{
    /// <summary>PKCS#1 RSA 3072 or SEC1 EC P-256 private key and its SPKI public key, made with openssl.</summary>
    public static (string Private, string Public) Make(TempDir dir, string kind, string name = "key")
    {
        var priv = dir[$"{name}-{kind}.pem"];
        var pub = dir[$"{name}-{kind}.pub"];
        if (File.Exists(priv)) return (priv, pub);
        if (kind == "rsa")
        {
            Tools.MustRun(Tool.Openssl, "genrsa", "-traditional", "-out", priv, "3072");
            Tools.MustRun(Tool.Openssl, "rsa", "-in", priv, "-pubout", "-out", pub);
            Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----", File.ReadAllText(priv));
        }
        else
        {
            Tools.MustRun(Tool.Openssl, "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", priv);
            Tools.MustRun(Tool.Openssl, "ec", "-in", priv, "-pubout", "-out", pub);
            Assert.StartsWith("-----BEGIN EC PRIVATE KEY-----", File.ReadAllText(priv));
        }
        return (priv, pub);
    }
}
