using System.Formats.Tar;
using System.Text.Json;
using AppModule.Artifacts;
using AppModule.Core.Archives;
using AppModule.Core.Images;
using Docker.DotNet;

namespace ArtifactGen;

public enum SavedFormat { DockerArchive, Oci }

/// <summary>An image resolved to its ID and platform.</summary>
public sealed record ResolvedImage(string Reference, string Id, string Os, string Architecture, string? Variant, string Origin)
{
    public string PlatformText => Variant is { Length: > 0 } ? $"{Os}/{Architecture}/{Variant}" : $"{Os}/{Architecture}";
}

/// <summary>Something that can resolve image references and save them as a tar.</summary>
public interface IImageSource
{
    Task<ResolvedImage?> TryResolveAsync(string reference, CancellationToken ct);
    /// <summary>Writes the saved image (docker-archive or OCI tar) to <paramref name="path"/>.</summary>
    Task<SavedFormat> SaveAsync(ResolvedImage image, string path, IProgress<long>? progress, CancellationToken ct);
}

/// <summary>The local Docker engine through its API (no docker CLI).</summary>
public sealed class EngineSource : IImageSource, IDisposable
{
    private IDockerClient? _client;

    private IDockerClient Client => _client ??= new DockerClientBuilder().Build();

    private static string Endpoint => Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } h ? h : "unix:///var/run/docker.sock";

    public async Task<ResolvedImage?> TryResolveAsync(string reference, CancellationToken ct)
    {
        try
        {
            var r = await Client.Images.InspectImageAsync(reference, ct).ConfigureAwait(false);
            return new ResolvedImage(reference, StripSha(r.ID), r.Os ?? "", r.Architecture ?? "", r.Variant, "docker engine");
        }
        catch (DockerImageNotFoundException) { return null; }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound) { return null; }
        catch (Exception e) when (e is HttpRequestException or System.Net.Sockets.SocketException or IOException or TimeoutException)
        {
            throw new ImageException($"cannot reach the Docker engine at {Endpoint} to find image {reference} ({e.Message.ReplaceLineEndings(" ")}): start the engine, set DOCKER_HOST, or give the image with --image-file");
        }
    }

    public async Task<SavedFormat> SaveAsync(ResolvedImage image, string path, IProgress<long>? progress, CancellationToken ct)
    {
        try
        {
            await using var s = await Client.Images.SaveImageAsync(image.Reference, ct).ConfigureAwait(false);
            await using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await new ProgressStream(s, progress).CopyToAsync(fs, 1 << 16, ct).ConfigureAwait(false);
            }
        }
        catch (DockerApiException e)
        {
            throw new ImageException($"the Docker engine could not save image {image.Reference}: {e.Message.ReplaceLineEndings(" ")}");
        }
        return await SavedImage.DetectFormatAsync(path, ct).ConfigureAwait(false);
    }

    internal static string StripSha(string id) => id.StartsWith("sha256:", StringComparison.Ordinal) ? id[7..] : id;

    public void Dispose() => _client?.Dispose();
}

/// <summary>Images given as files: docker-archive tars (docker save) or OCI image layout directories (or tars of them).</summary>
public sealed class ImageFileSource : IImageSource
{
    /// <param name="Keep">when the file holds more than this image: the paths (or path prefixes ending in '/') that belong to it</param>
    /// <param name="Index">when the file holds more than this image: the manifest.json / index.json to write instead</param>
    private sealed record FileImage(string Path, bool IsDir, SavedFormat Format, string Id, IReadOnlyList<string> Refs, string Os, string Arch, string? Variant,
        IReadOnlyList<string>? Keep = null, (string Name, string Json)? Index = null);

    private readonly List<FileImage> _images = [];

    public IReadOnlyList<string> AllReferences => _images.SelectMany(i => i.Refs.Take(1)).ToArray();

    public static async Task<ImageFileSource> LoadAsync(IEnumerable<string> paths, CancellationToken ct)
    {
        var src = new ImageFileSource();
        foreach (var p in paths)
        {
            try { src._images.AddRange(await ReadAsync(p, ct).ConfigureAwait(false)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidDataException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InputException($"--image-file {p} cannot be read as a docker-archive tar or OCI layout ({e.Message.ReplaceLineEndings(" ")}): give a file made by 'docker save' or a directory made by 'skopeo copy ... oci:DIR'");
            }
        }
        return src;
    }

    private static async Task<IEnumerable<FileImage>> ReadAsync(string path, CancellationToken ct)
    {
        if (Directory.Exists(path))
        {
            if (!File.Exists(Path.Combine(path, "index.json")))
                throw new InputException($"--image-file {path} is a directory without index.json: give an OCI image layout directory");
            return await ReadOciAsync(rel => File.ReadAllBytesAsync(Path.Combine(path, rel), ct), path, isDir: true, ct).ConfigureAwait(false);
        }
        if (!File.Exists(path)) throw new InputException($"--image-file {path} does not exist");
        var files = await SavedImage.ReadSmallFilesAsync(path, n => n is "manifest.json" or "index.json" or "oci-layout" || n.EndsWith(".json", StringComparison.Ordinal) || n.StartsWith("blobs/", StringComparison.Ordinal), 16 << 20, ct).ConfigureAwait(false);
        if (files.ContainsKey("index.json") && files.ContainsKey("oci-layout"))
        {
            return await ReadOciAsync(rel => Task.FromResult(files.TryGetValue(rel, out var b) ? b : throw new InputException($"--image-file {path}: {rel} is missing or too large")), path, isDir: false, ct).ConfigureAwait(false);
        }
        if (!files.TryGetValue("manifest.json", out var manifest))
            throw new InputException($"--image-file {path} has no manifest.json: give a tar made by 'docker save' or an OCI layout");
        var list = new List<FileImage>();
        using var doc = JsonDocument.Parse(manifest);
        int count = doc.RootElement.GetArrayLength();
        foreach (var m in doc.RootElement.EnumerateArray())
        {
            IReadOnlyList<string>? keep = null;
            (string, string)? index = null;
            if (count > 1)
            {
                var k = new List<string> { m.GetProperty("Config").GetString()! };
                foreach (var l in m.GetProperty("Layers").EnumerateArray())
                {
                    var lp = l.GetString()!;
                    k.Add(lp.Contains('/') && !lp.StartsWith("blobs/", StringComparison.Ordinal) ? lp[..(lp.IndexOf('/') + 1)] : lp);
                }
                keep = k;
                index = ("manifest.json", "[" + m.GetRawText() + "]");
            }
            var cfg = m.GetProperty("Config").GetString()!;
            var cfgBytes = files[cfg];
            var id = ArtifactWriter.Sha256Hex(cfgBytes);
            var refs = m.TryGetProperty("RepoTags", out var rt) && rt.ValueKind == JsonValueKind.Array ? rt.EnumerateArray().Select(x => x.GetString()!).ToList() : [];
            var (os, arch, variant) = Platform(cfgBytes);
            list.Add(new FileImage(path, false, SavedFormat.DockerArchive, id, refs, os, arch, variant, keep, index));
        }
        return list;
    }

    private static async Task<IEnumerable<FileImage>> ReadOciAsync(Func<string, Task<byte[]>> read, string path, bool isDir, CancellationToken ct)
    {
        var list = new List<FileImage>();
        using var index = JsonDocument.Parse(await read("index.json").ConfigureAwait(false));
        int count = index.RootElement.GetProperty("manifests").GetArrayLength();
        foreach (var d in index.RootElement.GetProperty("manifests").EnumerateArray())
        {
            var refs = new List<string>();
            if (d.TryGetProperty("annotations", out var ann))
            {
                if (ann.TryGetProperty("io.containerd.image.name", out var n)) refs.Add(n.GetString()!);
                if (ann.TryGetProperty("org.opencontainers.image.ref.name", out var r)) refs.Add(r.GetString()!);
            }
            var mdigest = d.GetProperty("digest").GetString()!;
            using var man = JsonDocument.Parse(await read(BlobPath(mdigest)).ConfigureAwait(false));
            if (man.RootElement.TryGetProperty("manifests", out _))
                throw new InputException($"--image-file {path} holds a multi-platform index: copy one platform only (skopeo copy --override-arch ...)");
            var cdigest = man.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
            var cfgBytes = await read(BlobPath(cdigest)).ConfigureAwait(false);
            var (os, arch, variant) = Platform(cfgBytes);
            IReadOnlyList<string>? keep = null;
            (string, string)? single = null;
            if (count > 1)
            {
                var k = new List<string> { "oci-layout", BlobPath(mdigest), BlobPath(cdigest) };
                k.AddRange(man.RootElement.GetProperty("layers").EnumerateArray().Select(l => BlobPath(l.GetProperty("digest").GetString()!)));
                keep = k;
                single = ("index.json", "{\"schemaVersion\":2,\"manifests\":[" + d.GetRawText() + "]}");
            }
            list.Add(new FileImage(path, isDir, SavedFormat.Oci, EngineSource.StripSha(cdigest), refs, os, arch, variant, keep, single));
        }
        _ = ct;
        return list;
    }

    internal static string BlobPath(string digest)
    {
        var parts = digest.Split(':');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0 || parts[1].Contains('/') || parts[1].Contains(".."))
            throw new InputException($"invalid OCI digest \"{digest}\"");
        return $"blobs/{parts[0]}/{parts[1]}";
    }

    private static (string Os, string Arch, string? Variant) Platform(byte[] config)
    {
        using var c = JsonDocument.Parse(config);
        string Get(string k) => c.RootElement.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        return (Get("os"), Get("architecture"), Get("variant") is { Length: > 0 } v ? v : null);
    }

    public Task<ResolvedImage?> TryResolveAsync(string reference, CancellationToken ct)
    {
        var want = ImageReference.ToFamiliar(reference); // docker.io/library/x:latest == x == x:latest == library/x
        foreach (var i in _images)
        {
            if (i.Refs.Any(r => ImageReference.ToFamiliar(r) == want) || i.Id == EngineSource.StripSha(reference))
                return Task.FromResult<ResolvedImage?>(new ResolvedImage(reference, i.Id, i.Os, i.Arch, i.Variant, i.Path));
        }
        return Task.FromResult<ResolvedImage?>(null);
    }

    public async Task<SavedFormat> SaveAsync(ResolvedImage image, string path, IProgress<long>? progress, CancellationToken ct)
    {
        var i = _images.First(x => x.Id == image.Id && x.Path == image.Origin);
        if (i.Keep is not null && i.Index is { } idx)
        {
            // The file holds other images too: write only this one's files, with a one-image index.
            await SavedImage.FilterAsync(i.Path, i.IsDir, path, i.Keep, idx.Name, idx.Json, ct).ConfigureAwait(false);
            return i.Format;
        }
        if (i.IsDir)
        {
            await SavedImage.TarDirectoryAsync(i.Path, path, prefix: "", ct).ConfigureAwait(false);
            return SavedFormat.Oci;
        }
        await using var src = new FileStream(i.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        await using var dst = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        await new ProgressStream(src, progress).CopyToAsync(dst, 1 << 16, ct).ConfigureAwait(false);
        return i.Format;
    }
}

public static class SavedImage
{
    public static async Task<SavedFormat> DetectFormatAsync(string tarPath, CancellationToken ct)
    {
        var files = await ReadSmallFilesAsync(tarPath, n => n is "oci-layout" or "manifest.json", 1 << 20, ct).ConfigureAwait(false);
        return files.ContainsKey("oci-layout") ? SavedFormat.Oci : SavedFormat.DockerArchive;
    }

    /// <summary>A saved image's tar under the project's entry type rule: a device, FIFO, sparse file... is an <see cref="InputException"/> naming it.</summary>
    private static CheckedTarReader Reader(Stream stream, string path) =>
        new(stream, path, TarEntryPolicy.FilesDirectoriesAndLinks,
            m => new InputException(m + ": an image saved by 'docker save' or 'skopeo copy' holds none; save the image again"), leaveOpen: true);

    /// <summary>Reads every header of a saved image's tar (data is skipped): its entry types follow the rule of <see cref="Reader"/>.</summary>
    public static async Task CheckEntriesAsync(string tarPath, CancellationToken ct)
    {
        await using var fs = new FileStream(tarPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        await using var tar = Reader(fs, tarPath);
        while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is not null)
        {
        }
    }

    /// <summary>Reads the regular files whose (normalized) names match, up to maxBytes each.</summary>
    public static async Task<Dictionary<string, byte[]>> ReadSmallFilesAsync(string tarPath, Func<string, bool> want, long maxBytes, CancellationToken ct)
    {
        var d = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        await using var fs = new FileStream(tarPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        await using var tar = Reader(fs, tarPath);
        while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
        {
            var n = PayloadArchive.Normalize(e.Name);
            if (TarEntryPolicy.IsRegularFile(e.EntryType) && e.Length <= maxBytes && want(n) && e.DataStream is not null)
            {
                var ms = new MemoryStream();
                await e.DataStream.CopyToAsync(ms, ct).ConfigureAwait(false);
                d[n] = ms.ToArray();
            }
        }
        return d;
    }

    /// <summary>Writes a tar with only the entries of <paramref name="source"/> (a tar or a directory) that
    /// <paramref name="keep"/> names (exact paths, or prefixes ending in '/'), plus <paramref name="indexName"/>
    /// with <paramref name="indexJson"/> as content, deterministically.</summary>
    public static async Task FilterAsync(string source, bool isDir, string tarPath, IReadOnlyList<string> keep, string indexName, string indexJson, CancellationToken ct)
    {
        var mtime = DateTimeOffset.UnixEpoch;
        bool Wanted(string n) => keep.Any(k => k.EndsWith('/') ? n.StartsWith(k, StringComparison.Ordinal) || n + "/" == k : n == k);
        await using var fs = new FileStream(tarPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        await using var tar = new TarWriter(fs, TarEntryFormat.Gnu, leaveOpen: true);
        var idx = PayloadArchive.Entry(TarEntryType.RegularFile, indexName, PayloadArchive.FileMode644, mtime);
        idx.DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(indexJson));
        await tar.WriteEntryAsync(idx, ct).ConfigureAwait(false);
        if (isDir)
        {
            foreach (var f in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(source, f)).Order(StringComparer.Ordinal))
            {
                if (!Wanted(f)) continue;
                var e = PayloadArchive.Entry(TarEntryType.RegularFile, f, PayloadArchive.FileMode644, mtime);
                await using var src = new FileStream(Path.Combine(source, f), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
                e.DataStream = src;
                await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
            }
            return;
        }
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        await using var reader = Reader(input, source);
        while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
        {
            var n = PayloadArchive.Normalize(e.Name);
            if (n == indexName || !Wanted(n)) continue;
            await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Tars a directory deterministically (ordinal order, root owner, fixed mtime, modes 0644/0755).
    /// With prefix "./", entries are "./" and "./..." like `tar -C dir .`.</summary>
    public static async Task TarDirectoryAsync(string dir, string tarPath, string prefix, CancellationToken ct)
    {
        var mtime = DateTimeOffset.UnixEpoch;
        await using var fs = new FileStream(tarPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        await using var tar = new TarWriter(fs, TarEntryFormat.Gnu, leaveOpen: true);
        if (prefix.Length > 0)
            await tar.WriteEntryAsync(PayloadArchive.Entry(TarEntryType.Directory, prefix, PayloadArchive.FileMode755, mtime), ct).ConfigureAwait(false);
        await Walk(dir, "");

        async Task Walk(string full, string rel)
        {
            foreach (var p in Directory.EnumerateFileSystemEntries(full).OrderBy(Path.GetFileName, StringComparer.Ordinal))
            {
                ct.ThrowIfCancellationRequested();
                var name = rel + Path.GetFileName(p);
                var fi = new FileInfo(p);
                if (fi.LinkTarget is { } target)
                {
                    var e = PayloadArchive.Entry(TarEntryType.SymbolicLink, prefix + name, (UnixFileMode)0b111_111_111, mtime);
                    e.LinkName = target;
                    await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
                }
                else if (Directory.Exists(p))
                {
                    await tar.WriteEntryAsync(PayloadArchive.Entry(TarEntryType.Directory, prefix + name + "/", PayloadArchive.FileMode755, mtime), ct).ConfigureAwait(false);
                    await Walk(p, name + "/");
                }
                else
                {
                    var e = PayloadArchive.Entry(TarEntryType.RegularFile, prefix + name, PayloadArchive.FileMode644, mtime);
                    await using var src = new FileStream(p, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
                    e.DataStream = src;
                    await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
                }
            }
        }
    }
}
