using AppModule.Delta;

namespace Delta.Tests;

/// <summary>
/// Builds real multi-layer images on the shared engine, makes deep deltas with real xdelta3,
/// reconstructs them with the library from the current image's `docker save`, loads the result
/// into the engine and checks the image ID.
/// </summary>
public sealed class DeepDeltaDockerTests
{
    private const string Current = """
        FROM appmodule/busybox:base
        RUN busybox seq 1 30000 > /d1
        RUN busybox seq 5 40000 > /d2
        RUN busybox seq 7 50000 > /d3
        """;


    private sealed class Images : IDisposable
    {
        private readonly List<string> _tags = [];

        public Images() => Repo = "appmodule-delta-test-" + Guid.NewGuid().ToString("n")[..10];

        public string Repo { get; }

        public string Build(string tag, string dockerfile, TempDir dir)
        {
            string ctx = dir["ctx-" + tag];
            Directory.CreateDirectory(ctx);
            File.WriteAllText(Path.Combine(ctx, "Dockerfile"), dockerfile.Replace("\r", ""));
            string name = $"{Repo}:{tag}";
            var psi = new System.Diagnostics.ProcessStartInfo(Tools.Docker) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            psi.Environment["DOCKER_BUILDKIT"] = "0";
            // --network none: the RUN steps need no network, and a build must not depend on the engine's bridge.
            foreach (var a in new[] { "build", "--network", "none", "-q", "-t", name, ctx })
            {
                psi.ArgumentList.Add(a);
            }
            using (var p = System.Diagnostics.Process.Start(psi)!)
            {
                var err = p.StandardError.ReadToEndAsync();
                p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                Assert.True(p.ExitCode == 0, "docker build failed: " + err.Result);
            }
            _tags.Add(name);
            return name;
        }

        public static string Id(string reference) => Tools.Run(Tools.Docker, "image", "inspect", "-f", "{{.Id}}", reference).Trim();

        public void Dispose()
        {
            foreach (var t in _tags)
            {
                try
                {
                    Tools.Run(Tools.Docker, "rmi", "-f", t);
                }
                catch (InvalidOperationException)
                {
                }
            }
        }
    }

    private static string Dockerfile(params string[] runs) =>
        "FROM appmodule/busybox:base\n" + string.Join("\n", runs.Select(r => "RUN " + r)) + "\n";

    private static void RoundTrip(string newDockerfile)
    {
        Tools.RequireEngine();
        using var dir = new TempDir("deep");
        using var images = new Images();
        string cur = images.Build("cur", Current, dir);
        string nw = images.Build("new", newDockerfile, dir);
        Tools.Run(Tools.Docker, "save", cur, "-o", dir["cur.tar"]);
        Tools.Run(Tools.Docker, "save", nw, "-o", dir["new.tar"]);
        string newId = Images.Id(nw);
        string payload = DeepDeltaMaker.DockerArchive(dir["cur.tar"], dir["new.tar"], dir.Path);

        using (var payloadStream = File.OpenRead(payload))
        using (var baseArchive = BaseImageArchive.Open(dir["cur.tar"], CancellationToken.None))
        {
            var plan = DeepDelta.Inspect(payloadStream, CancellationToken.None);
            Assert.Equal(DeepDeltaLayout.DockerArchive, plan.Layout);
            Assert.Empty(plan.MissingBaseDigests(baseArchive.Contains));
            Assert.Contains(plan.Layers, l => l.Origin == LayerOrigin.FromBase);
            Assert.Contains(plan.Layers, l => l.Origin == LayerOrigin.Decoded);
        }

        Tools.Run(Tools.Docker, "rmi", nw);
        DeepDelta.ReconstructFile(payload, dir["cur.tar"], dir["out.tar"], null, CancellationToken.None);
        using (var outTar = File.OpenRead(dir["out.tar"]))
        {
            Assert.Equal(["sha256:" + ImageTar.ReadImageIds(outTar, CancellationToken.None).Single()], [newId]);
        }
        Tools.Run(Tools.Docker, "load", "-i", dir["out.tar"]);
        Assert.Equal(newId, Images.Id(nw));
    }

    [SkippableTheory]
    [InlineData(null)]
    [InlineData("none")]
    public void Whole_image_xdelta3_delta_applies_to_a_fresh_save_and_loads_with_the_new_image_id(string? secondary)
    {
        Tools.RequireEngine();
        using var dir = new TempDir("whole");
        using var images = new Images();
        string cur = images.Build("cur", Current, dir);
        string nw = images.Build("new", Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 5 40001 > /d2", "busybox seq 7 50000 > /d3"), dir);
        Tools.Run(Tools.Docker, "save", cur, "-o", dir["cur.tar"]);
        Tools.Run(Tools.Docker, "save", nw, "-o", dir["new.tar"]);
        string newId = Images.Id(nw);
        Tools.XdeltaEncode(dir["cur.tar"], dir["new.tar"], dir["image.img"], secondary);
        string baseSum;
        using (var f = File.OpenRead(dir["cur.tar"]))
        {
            baseSum = Digests.Sha256Hex(f);
        }
        Tools.Run(Tools.Docker, "rmi", nw);

        // On the device: a fresh SAVE of the current image, checked against the artifact's base digest.
        Tools.Run(Tools.Docker, "save", cur, "-o", dir["fresh.tar"]);
        using (var save = File.OpenRead(dir["fresh.tar"]))
        using (var delta = File.OpenRead(dir["image.img"]))
        using (var output = File.Create(dir["decoded.tar"]))
        {
            WholeImageDelta.Apply(save, delta, output, baseSum + "\n", null, CancellationToken.None);
        }
        Assert.Equal(File.ReadAllBytes(dir["new.tar"]), File.ReadAllBytes(dir["decoded.tar"]));
        using (var decoded = File.OpenRead(dir["decoded.tar"]))
        {
            Assert.Equal("sha256:" + ImageTar.ReadImageIds(decoded, CancellationToken.None).Single(), newId);
        }
        Tools.Run(Tools.Docker, "load", "-i", dir["decoded.tar"]);
        Assert.Equal(newId, Images.Id(nw));

        // A different base is refused before decoding, naming both digests.
        using var wrong = File.OpenRead(dir["new.tar"]);
        using var delta2 = File.OpenRead(dir["image.img"]);
        var e = Assert.Throws<BaseMismatchException>(() => WholeImageDelta.Apply(wrong, delta2, Stream.Null, baseSum, null, CancellationToken.None));
        Assert.Contains(baseSum, e.Message);
    }

    [SkippableFact]
    public void Changed_middle_layer_is_reconstructed_and_loads_with_the_new_image_id() =>
        RoundTrip(Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 5 40001 > /d2", "busybox seq 7 50000 > /d3"));

    [SkippableFact]
    public void Reordered_layers_are_paired_by_content() =>
        RoundTrip(Dockerfile("busybox seq 7 50000 > /d3", "busybox seq 1 30000 > /d1", "busybox seq 5 40000 > /d2"));

    [SkippableFact]
    public void Inserted_layer_is_reconstructed() =>
        RoundTrip(Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 9 20000 > /dx", "busybox seq 5 40000 > /d2", "busybox seq 7 50000 > /d3"));

    // The last layer changes too: a layer whose content and mtime (1 s resolution in the tar) match
    // the base's is rightly taken from the base, so an unchanged /d3 built within the same second as
    // the current image's would leave nothing to decode.
    [SkippableFact]
    public void Removed_layer_is_reconstructed() =>
        RoundTrip(Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 7 50001 > /d3"));

    [SkippableTheory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Oci_layout_from_skopeo_is_reconstructed_and_loads_with_the_new_image_id(bool positional, bool baseFromDockerSave)
    {
        Tools.RequireEngine();
        _ = Tool.Skopeo; // skips or fails (CI) before any image is built
        using var dir = new TempDir("oci");
        using var images = new Images();
        string cur = images.Build("cur", Current, dir);
        string nw = images.Build("new", Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 5 40001 > /d2", "busybox seq 7 50000 > /d3", "busybox seq 3 1000 > /d4"), dir);
        string newLayers = Tools.Run(Tools.Docker, "image", "inspect", "-f", "{{json .RootFS.Layers}}", nw).Trim();
        Tools.Run(Tool.Skopeo, ["copy", "-q", "--dest-oci-accept-uncompressed-layers", .. DockerEngine.SkopeoSource(cur), $"oci:{dir["cur-oci"]}:cur"]);
        Tools.Run(Tool.Skopeo, ["copy", "-q", "--dest-oci-accept-uncompressed-layers", .. DockerEngine.SkopeoSource(nw), $"oci:{dir["new-oci-src"]}:new"]);
        Tools.Run("/usr/bin/tar", "-cf", dir["cur-oci.tar"], "-C", dir["cur-oci"], ".");
        string payload = DeepDeltaMaker.Oci(dir["cur-oci"], dir["new-oci-src"], dir.Path, positional);

        // skopeo rewrites the config as an OCI config, so the new image's ID is its config digest.
        string newId = "sha256:" + DeepDeltaMaker.OciConfigDigest(dir["new-oci-src"]);

        // The device's base is a `docker save` (layer.tar files, found by content digest) or the OCI tar.
        Tools.Run(Tools.Docker, "save", cur, "-o", dir["cur.tar"]);
        Tools.Run(Tools.Docker, "rmi", nw);
        var plan = DeepDelta.ReconstructFile(payload, baseFromDockerSave ? dir["cur.tar"] : dir["cur-oci.tar"], dir["out.tar"], null, CancellationToken.None);
        Assert.Equal(DeepDeltaLayout.Oci, plan.Layout);
        Assert.Contains(plan.Layers, l => l.Origin == LayerOrigin.Decoded);
        if (!positional)
        {
            Assert.Contains(plan.Layers, l => l.Origin == LayerOrigin.FromBase);
        }
        Tools.Run(Tools.Docker, "load", "-i", dir["out.tar"]);
        try
        {
            Assert.Equal(newId, Images.Id(newId));
            Assert.Equal(newLayers, Tools.Run(Tools.Docker, "image", "inspect", "-f", "{{json .RootFS.Layers}}", newId).Trim());
        }
        finally
        {
            Tools.Run(Tools.Docker, "rmi", "-f", newId);
        }
    }

    [SkippableFact]
    public void Missing_base_layer_and_corrupted_delta_fail_clearly_and_nothing_is_loaded()
    {
        Tools.RequireEngine();
        using var dir = new TempDir("deepbad");
        using var images = new Images();
        string cur = images.Build("cur", Current, dir);
        string nw = images.Build("new", Dockerfile("busybox seq 1 30000 > /d1", "busybox seq 5 40001 > /d2", "busybox seq 7 50000 > /d3"), dir);
        string other = images.Build("other", Dockerfile("busybox seq 2 100 > /o1"), dir);
        Tools.Run(Tools.Docker, "save", cur, "-o", dir["cur.tar"]);
        Tools.Run(Tools.Docker, "save", nw, "-o", dir["new.tar"]);
        Tools.Run(Tools.Docker, "save", other, "-o", dir["other.tar"]);
        string payload = DeepDeltaMaker.DockerArchive(dir["cur.tar"], dir["new.tar"], dir.Path);
        string newId = Images.Id(nw);
        Tools.Run(Tools.Docker, "rmi", nw);

        // Wrong base: the pre-check names what is missing, and Reconstruct refuses before writing.
        using (var p = File.OpenRead(payload))
        using (var wrongBase = BaseImageArchive.Open(dir["other.tar"], CancellationToken.None))
        {
            var plan = DeepDelta.Inspect(p, CancellationToken.None);
            var missing = plan.MissingBaseDigests(wrongBase.Contains);
            Assert.NotEmpty(missing);
            var output = new MemoryStream();
            var e = Assert.Throws<MissingBaseLayerException>(() => DeepDelta.Reconstruct(p, wrongBase.OpenLayer, output, null, CancellationToken.None));
            Assert.Equal(missing, e.Digests);
            Assert.Contains(missing[0], e.Message);
            Assert.Equal(0, output.Length);
        }

        // Corrupted delta: flip bytes inside a layer's vcdiff → clear error naming the layer.
        string corrupt = dir["corrupt.tar"];
        File.Copy(payload, corrupt);
        using (var p = File.OpenRead(payload))
        {
            var plan = DeepDelta.Inspect(p, CancellationToken.None);
            var decoded = plan.Layers.First(l => l.Origin == LayerOrigin.Decoded);
            long at = FindMember(payload, decoded.Path + ".vcdiff");
            using var f = new FileStream(corrupt, FileMode.Open, FileAccess.ReadWrite);
            long size = FindMemberSize(payload, decoded.Path + ".vcdiff");
            for (long i = size / 2; i < size / 2 + 8 && i < size; i++)
            {
                f.Position = at + i;
                int b = f.ReadByte();
                f.Position = at + i;
                f.WriteByte((byte)(b ^ 0xA5));
            }
            f.Flush();
            var ex = Assert.ThrowsAny<DeltaFormatException>(() => DeepDelta.ReconstructFile(corrupt, dir["cur.tar"], dir["out-bad.tar"], null, CancellationToken.None));
            Assert.Contains(decoded.Path, ex.Message);
        }
        Assert.Throws<InvalidOperationException>(() => Images.Id(newId));
    }

    private static long FindMember(string tar, string path) => Member(tar, path).DataStart;

    private static long FindMemberSize(string tar, string path) => Member(tar, path).Size;

    private static (long DataStart, long Size) Member(string tar, string path)
    {
        using var f = File.OpenRead(tar);
        var r = new System.Formats.Tar.TarReader(f);
        long pos = 0;
        var buf = new byte[512];
        f.Position = 0;
        while (true)
        {
            f.Position = pos;
            f.ReadExactly(buf);
            string name = System.Text.Encoding.ASCII.GetString(buf, 0, 100).TrimEnd('\0');
            long size = Convert.ToInt64(System.Text.Encoding.ASCII.GetString(buf, 124, 11).Trim('\0', ' '), 8);
            if (name.TrimStart('.', '/') == path)
            {
                return (pos + 512, size);
            }
            if (buf.All(b => b == 0))
            {
                throw new InvalidOperationException("member not found: " + path);
            }
            pos += 512 + ((size + 511) & ~511L);
        }
    }
}
