using AppModule.Delta;

namespace Delta.Tests;

/// <summary>
/// Deltas decoded straight into <c>docker load</c> (what the device's LOAD of a delta does, through a FIFO):
/// the <see cref="VerifiedImageWriter"/> checks the rebuilt image on the way, a deep delta leaves out the layers
/// whose chain the engine holds, and a refused image is cut so the engine registers nothing.
/// </summary>
public sealed class StreamedLoadTests
{
    // COPY only (no RUN): building needs no container network.
    private const string Current = """
        FROM appmodule/busybox:base
        COPY d1 /d1
        COPY d2 /d2
        """;

    private static string Build(string name, string dockerfile, TempDir dir)
    {
        var ctx = dir["ctx-" + name.Replace(':', '-')];
        Directory.CreateDirectory(ctx);
        File.WriteAllText(Path.Combine(ctx, "Dockerfile"), dockerfile.Replace("\r", ""));
        foreach (var (file, from, to) in new[] { ("d1", 1, 30000), ("d2", 5, 40000), ("added", 3, 1000), ("x", 1, 20000) })
        {
            File.WriteAllText(Path.Combine(ctx, file), string.Join("\n", Enumerable.Range(from, to - from + 1)) + "\n");
            File.SetLastWriteTimeUtc(Path.Combine(ctx, file), DateTime.UnixEpoch);
        }

        var psi = new System.Diagnostics.ProcessStartInfo(Tools.Docker) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.Environment["DOCKER_BUILDKIT"] = "0";
        foreach (var a in new[] { "build", "-q", "-t", name, ctx })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, "docker build failed: " + err.Result);
        return name;
    }

    private static string Id(string reference) => Tools.Run(Tools.Docker, "image", "inspect", "-f", "{{.Id}}", reference).Trim();

    private static bool Loads(string tar)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(Tools.Docker) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "load", "-q", "-i", tar })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = System.Diagnostics.Process.Start(psi)!;
        p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    private static bool Has(string id) =>
        System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(Tools.Docker, ["image", "inspect", id]) { RedirectStandardOutput = true, RedirectStandardError = true })! is var p
        && p.WaitForExit(60_000) && p.ExitCode == 0;

    [SkippableFact]
    public void A_deep_delta_of_an_added_layer_sends_only_that_layer_and_loads_with_the_new_image_id()
    {
        Tools.RequireEngine();
        using var dir = new TempDir("streamed");
        var repo = "appmodule-streamed-test-" + Guid.NewGuid().ToString("n")[..10];
        var cur = Build(repo + ":cur", Current, dir);
        var nw = Build(repo + ":new", "FROM " + cur + "\nCOPY added /added\n", dir);
        try
        {
            Tools.Run(Tools.Docker, "save", cur, "-o", dir["cur.tar"]);
            Tools.Run(Tools.Docker, "save", nw, "-o", dir["new.tar"]);
            var newId = Id(nw);
            var payload = DeepDeltaMaker.DockerArchive(dir["cur.tar"], dir["new.tar"], dir.Path);
            Tools.Run(Tools.Docker, "rmi", nw);

            IReadOnlySet<string> shared;
            using (var p = File.OpenRead(payload))
            using (var b = File.OpenRead(dir["cur.tar"]))
            {
                shared = SavedLayout.Read(p, "payload", CancellationToken.None)!.SharedChainWith(SavedLayout.Read(b, "base", CancellationToken.None)!);
            }

            Assert.Equal(3, shared.Count); // busybox and the two COPY layers: the whole current image
            byte[]? config = null;
            using (var payloadStream = File.OpenRead(payload))
            using (var baseArchive = BaseImageArchive.Open(dir["cur.tar"], CancellationToken.None))
            using (var output = File.Create(dir["streamed.tar"]))
            using (var verified = new VerifiedImageWriter(output, newId["sha256:".Length..], hashLayers: false, shared.Contains, c => config = c))
            {
                DeepDelta.Reconstruct(payloadStream, baseArchive.OpenLayer, verified, null, l => shared.Contains(l.Path), CancellationToken.None);
                Assert.True(verified.Verified);
            }

            Assert.NotNull(config);
            // Only the added layer's data went to the engine: far less than the new image.
            Assert.True(new FileInfo(dir["streamed.tar"]).Length < new FileInfo(dir["new.tar"]).Length / 4,
                $"streamed {new FileInfo(dir["streamed.tar"]).Length} bytes of a {new FileInfo(dir["new.tar"]).Length}-byte image");
            Assert.True(Loads(dir["streamed.tar"]), "docker load takes the layers it holds from the engine");
            Assert.Equal(newId, Id(nw));
        }
        finally
        {
            Tools.Run(Tools.Docker, "rmi", "-f", nw, cur);
        }
    }

    [SkippableFact]
    public void A_rebuilt_image_with_another_ID_or_a_changed_layer_is_refused_and_the_cut_stream_loads_nothing()
    {
        Tools.RequireEngine();
        using var dir = new TempDir("refused");
        var repo = "appmodule-streamed-test-" + Guid.NewGuid().ToString("n")[..10];
        var img = Build(repo + ":x", "FROM appmodule/busybox:base\nCOPY x /x\n", dir);
        Tools.Run(Tools.Docker, "save", img, "-o", dir["x.tar"]);
        var id = Id(img)["sha256:".Length..];
        Tools.Run(Tools.Docker, "rmi", img);
        try
        {
            // The right image passes through unchanged, byte for byte.
            using (var output = File.Create(dir["same.tar"]))
            using (var verified = new VerifiedImageWriter(output, id, hashLayers: true, _ => false, _ => { }))
            {
                using var input = File.OpenRead(dir["x.tar"]);
                input.CopyTo(verified, 4096);
                Assert.True(verified.Verified);
            }

            Assert.Equal(File.ReadAllBytes(dir["x.tar"]), File.ReadAllBytes(dir["same.tar"]));

            // Another expected ID: refused at the end of the archive, before manifest.json reaches the engine.
            var wrongId = Refuse(dir, File.ReadAllBytes(dir["x.tar"]), new string('a', 64), "wrong-id.tar");
            Assert.Contains("sums-new.txt says " + new string('a', 64), wrongId.Message);

            // One byte of a layer changed: the layer's digest no longer matches the config's diff ID.
            var bytes = File.ReadAllBytes(dir["x.tar"]);
            using (var t = File.OpenRead(dir["x.tar"]))
            {
                var layout = SavedLayout.Read(t, "x.tar", CancellationToken.None)!;
                var at = FindData(bytes, layout.LayerPaths[^1]);
                bytes[at + 1000] ^= 0x20;
            }

            var changed = Refuse(dir, bytes, id, "changed.tar");
            Assert.Contains("its config says", changed.Message);
            Assert.False(Has("sha256:" + id), "nothing of the refused image is in the engine");
        }
        finally
        {
            Tools.Run(Tools.Docker, "rmi", "-f", "sha256:" + id);
        }
    }

    private static DeltaFormatException Refuse(TempDir dir, byte[] tar, string expectedId, string name)
    {
        DeltaFormatException e;
        using (var output = File.Create(dir[name]))
        {
            var verified = new VerifiedImageWriter(output, expectedId, hashLayers: true, _ => false, _ => { });
            e = Assert.Throws<DeltaFormatException>(() => verified.Write(tar));
            verified.Abort();
        }

        Assert.False(Loads(dir[name]), $"docker load must fail on the cut stream {name}");
        return e;
    }

    /// <summary>Offset of the data of the tar member <paramref name="path"/> (ustar names, as docker save writes them).</summary>
    private static int FindData(byte[] tar, string path)
    {
        for (int pos = 0; pos + 512 <= tar.Length;)
        {
            var name = System.Text.Encoding.ASCII.GetString(tar, pos, 100).TrimEnd('\0');
            var size = Convert.ToInt64(System.Text.Encoding.ASCII.GetString(tar, pos + 124, 11).Trim('\0', ' '), 8);
            if (name == path)
            {
                return pos + 512;
            }

            pos += 512 + (int)((size + 511) & ~511L);
        }

        throw new InvalidOperationException($"{path} is not in the tar");
    }

    [Theory]
    [InlineData(System.Formats.Tar.TarEntryFormat.Gnu)]
    [InlineData(System.Formats.Tar.TarEntryFormat.Ustar)]
    [InlineData(System.Formats.Tar.TarEntryFormat.Pax)]
    public void A_saved_image_passes_the_writer_unchanged_and_verified_in_each_tar_format(System.Formats.Tar.TarEntryFormat format)
    {
        // app-gen writes GNU headers, whose bytes 345.. hold atime/ctime (a POSIX ustar prefix there would mangle every name).
        var layer = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(layer, System.Formats.Tar.TarEntryFormat.Ustar, leaveOpen: true))
        {
            w.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "hello") { DataStream = new MemoryStream("hello\n"u8.ToArray()) });
        }

        var layerBytes = layer.ToArray();
        var diffId = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(layerBytes));
        var config = System.Text.Encoding.UTF8.GetBytes($$$"""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:{{{diffId}}}"]}}""");
        var id = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(config));
        var manifest = System.Text.Encoding.UTF8.GetBytes($$"""[{"Config":"{{id}}.json","RepoTags":["t:1"],"Layers":["{{diffId}}/layer.tar"]}]""");
        var image = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(image, format, leaveOpen: true))
        {
            System.Formats.Tar.TarEntry Entry(System.Formats.Tar.TarEntryType type, string name, byte[]? data)
            {
                System.Formats.Tar.TarEntry e = format switch
                {
                    System.Formats.Tar.TarEntryFormat.Gnu => new System.Formats.Tar.GnuTarEntry(type, name) { AccessTime = DateTimeOffset.UnixEpoch.AddDays(1), ChangeTime = DateTimeOffset.UnixEpoch.AddDays(1) },
                    System.Formats.Tar.TarEntryFormat.Ustar => new System.Formats.Tar.UstarTarEntry(type, name),
                    _ => new System.Formats.Tar.PaxTarEntry(type, name),
                };
                if (data is not null)
                {
                    e.DataStream = new MemoryStream(data);
                }

                return e;
            }

            w.WriteEntry(Entry(System.Formats.Tar.TarEntryType.Directory, "./", null));
            w.WriteEntry(Entry(System.Formats.Tar.TarEntryType.RegularFile, $"./{id}.json", config));
            w.WriteEntry(Entry(System.Formats.Tar.TarEntryType.Directory, $"./{diffId}/", null));
            w.WriteEntry(Entry(System.Formats.Tar.TarEntryType.RegularFile, $"./{diffId}/layer.tar", layerBytes));
            w.WriteEntry(Entry(System.Formats.Tar.TarEntryType.RegularFile, "./manifest.json", manifest));
        }

        var input = image.ToArray();
        var output = new MemoryStream();
        using var verified = new VerifiedImageWriter(output, id, hashLayers: true, omitted: _ => false, checkConfig: _ => { });
        foreach (var chunk in input.Chunk(700))
        {
            verified.Write(chunk);
        }

        Assert.True(verified.Verified);
        Assert.Equal(input, output.ToArray());
        Assert.Equal([($"sha256:{diffId}", (long?)layerBytes.Length)], verified.ManifestLayers);
    }
}
