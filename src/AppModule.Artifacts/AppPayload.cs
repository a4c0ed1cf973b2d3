using System.Formats.Tar;
using System.Text;
using AppModule.Core.Archives;

namespace AppModule.Artifacts;

/// <summary>How an image travels in images.tar.gz (spec section 9).</summary>
public enum ImageKind
{
    /// <summary>url-current == url-new: image.img is a saved image (docker-archive or OCI tar).</summary>
    Full,
    /// <summary>urls differ, no deep_delta marker: image.img is a VCDIFF of the new saved tar against the current one.</summary>
    Delta,
    /// <summary>deep_delta marker present: image.img is a tar of the new image with layers replaced by deltas or references.</summary>
    DeepDelta,
}

/// <summary>One <c>images/&lt;id&gt;/</c> directory of images.tar.gz.</summary>
/// <param name="BaseTarSha256">sha256 of the current image's saved tar a whole-image delta was made against
/// (file <c>image-current.sha256</c>, written by app-gen; absent in reference artifacts).</param>
public sealed record ImageEntry(
    string Id,
    string UrlNew,
    string UrlCurrent,
    string SumsNew,
    string SumsCurrent,
    bool DeepDeltaMarker,
    long ImageSize,
    string? BaseTarSha256 = null)
{
    public ImageKind Kind => DeepDeltaMarker ? ImageKind.DeepDelta : UrlNew == UrlCurrent ? ImageKind.Full : ImageKind.Delta;
}

/// <summary>The images read, and how many passes over the archive it took (1 or 2).</summary>
public sealed record ImagesReadResult(IReadOnlyList<ImageEntry> Images, int Passes);

/// <summary>The file names of the payload layout.</summary>
public static class AppPayloadNames
{
    public const string ImagesArchive = "images.tar.gz";
    public const string ManifestsArchive = "manifests.tar.gz";
    public const string ImageFile = "image.img";
    public const string UrlNew = "url-new.txt";
    public const string UrlCurrent = "url-current.txt";
    public const string SumsNew = "sums-new.txt";
    public const string SumsCurrent = "sums-current.txt";
    public const string DeepDelta = "deep_delta";
    public const string BaseTarSha256 = "image-current.sha256";

    /// <summary>The order app-gen writes an image directory in: every small file first, image.img last,
    /// so a reader can classify the image before its data arrives. (The reference generator's order is
    /// whatever its file system's readdir returns; readers must not rely on any order.)</summary>
    public static readonly string[] WriteOrder = [UrlNew, UrlCurrent, SumsNew, SumsCurrent, BaseTarSha256, DeepDelta, ImageFile];

    internal static readonly HashSet<string> Known = [.. WriteOrder];
}

/// <summary>
/// Reads images.tar.gz (or .tar) forward-only without extracting anything to disk. Because the small
/// text files of an image may come before or after image.img, <see cref="ReadAsync"/> makes two passes:
/// the first reads only the small files (skipping image data), the second hands each image.img to the
/// callback as a stream, with its <see cref="ImageEntry"/> fully known.
/// </summary>
public static class ImagesPayload
{
    private const long MaxSmallFile = 4096;

    /// <summary>
    /// Pass 1: the images, classified and checked. <paramref name="open"/> opens the archive afresh.
    /// <paramref name="onImageData"/>, when given, reads each image.img (by image directory) in the same
    /// pass, e.g. to check what it carries; what it leaves unread is skipped.
    /// </summary>
    public static async Task<IReadOnlyList<ImageEntry>> ScanAsync(Func<Stream> open, string source, CancellationToken ct, Func<string, Stream, Task>? onImageData = null)
    {
        var dirs = new SortedDictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await ForEachEntryAsync(open, source, async (id, file, entry) =>
        {
            var d = Enter(dirs, seen, id, file, source);
            if (file == AppPayloadNames.ImageFile)
            {
                sizes[id] = entry.Length;
                if (onImageData is not null && entry.DataStream is not null) await onImageData(id, entry.DataStream).ConfigureAwait(false);
                return;
            }
            d[file] = await ReadSmallAsync(entry, id, file, source, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);

        return Build(dirs, sizes, source);
    }


    /// <summary>The text files seen so far of image directory <paramref name="id"/>; a second entry for the same file is refused.</summary>
    private static Dictionary<string, string> Enter(IDictionary<string, Dictionary<string, string>> dirs, HashSet<string> seen, string id, string file, string source)
    {
        if (!seen.Add(id + "/" + file))
            throw new UnsafeArchiveEntryException($"{source}: entry images/{id}/{file} appears twice: the artifact is damaged or hostile; rebuild it");
        if (!dirs.TryGetValue(id, out var d)) dirs[id] = d = new Dictionary<string, string>(StringComparer.Ordinal);
        return d;
    }

    /// <summary>A small text file of an image directory (url-new.txt, sums-new.txt, ...), bounded in size.</summary>
    private static async Task<string> ReadSmallAsync(TarEntry entry, string id, string file, string source, CancellationToken ct)
    {
        if (entry.Length > MaxSmallFile)
            throw new UnsafeArchiveEntryException($"{source}: images/{id}/{file} is {entry.Length} bytes, more than {MaxSmallFile}: the artifact is damaged or hostile; rebuild it");
        var ms = new MemoryStream();
        if (entry.DataStream is not null) await entry.DataStream.CopyToAsync(ms, ct).ConfigureAwait(false);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static List<ImageEntry> Build(IDictionary<string, Dictionary<string, string>> dirs, Dictionary<string, long> sizes, string source)
    {
        var list = new List<ImageEntry>();
        foreach (var (id, d) in dirs.OrderBy(x => x.Key, StringComparer.Ordinal))
        {
            string Need(string f) => d.TryGetValue(f, out var v) ? v.Trim() :
                throw new ArtifactFormatException($"{source}: images/{id}/ has no {f}: the artifact is incomplete; rebuild it with app-gen");
            if (!sizes.TryGetValue(id, out var size))
                throw new ArtifactFormatException($"{source}: images/{id}/ has no {AppPayloadNames.ImageFile}: the artifact is incomplete; rebuild it with app-gen");
            var e = new ImageEntry(id, Need(AppPayloadNames.UrlNew), Need(AppPayloadNames.UrlCurrent), Need(AppPayloadNames.SumsNew),
                Need(AppPayloadNames.SumsCurrent), d.ContainsKey(AppPayloadNames.DeepDelta), size,
                d.TryGetValue(AppPayloadNames.BaseTarSha256, out var b) ? b.Trim() : null);
            if (e.UrlNew.Length == 0 || e.UrlNew.Contains('\n'))
                throw new ArtifactFormatException($"{source}: images/{id}/url-new.txt is {MetadataValidator.Q(e.UrlNew)}: it must hold one image reference; rebuild the artifact");
            if (e.UrlCurrent.Length == 0 || e.UrlCurrent.Contains('\n'))
                throw new ArtifactFormatException($"{source}: images/{id}/url-current.txt is {MetadataValidator.Q(e.UrlCurrent)}: it must hold one image reference; rebuild the artifact");
            if (e.SumsNew != id)
                throw new ArtifactFormatException($"{source}: images/{id}/sums-new.txt is {MetadataValidator.Q(e.SumsNew)} but the directory is named after the new image ID {id}: rebuild the artifact");
            if (!MetadataValidator.IsValidImageId(e.SumsCurrent))
                throw new ArtifactFormatException($"{source}: images/{id}/sums-current.txt is {MetadataValidator.Q(e.SumsCurrent)}: it must be a 64-hex image ID; rebuild the artifact");
            if (e.DeepDeltaMarker && e.UrlNew == e.UrlCurrent)
                throw new ArtifactFormatException($"{source}: images/{id}/ has a deep_delta marker but url-current equals url-new ({e.UrlNew}): a delta needs a different base image; rebuild the artifact");
            if (e.BaseTarSha256 is not null && !MetadataValidator.IsValidImageId(e.BaseTarSha256))
                throw new ArtifactFormatException($"{source}: images/{id}/{AppPayloadNames.BaseTarSha256} is not a sha256 hex digest: rebuild the artifact");
            list.Add(e);
        }
        return list;
    }

    /// <summary>Pass 2: hands each image.img of <paramref name="images"/> (in archive order) to <paramref name="onImage"/> as a forward-only stream.</summary>
    public static async Task StreamImagesAsync(Func<Stream> open, string source, IReadOnlyList<ImageEntry> images,
        Func<ImageEntry, Stream, CancellationToken, Task> onImage, CancellationToken ct)
    {
        var byId = images.ToDictionary(i => i.Id, StringComparer.Ordinal);
        await ForEachEntryAsync(open, source, async (id, file, entry) =>
        {
            if (file != AppPayloadNames.ImageFile) return;
            if (!byId.TryGetValue(id, out var img)) return; // not asked for (e.g. already handed over in the first pass)
            await onImage(img, entry.DataStream ?? Stream.Null, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Reads a file on disk; see <see cref="ReadStreamingAsync"/>.</summary>
    public static async Task<IReadOnlyList<ImageEntry>> ReadAsync(string path, Func<ImageEntry, Stream, CancellationToken, Task> onImage, CancellationToken ct) =>
        (await ReadStreamingAsync(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan),
            path, onImage, ct).ConfigureAwait(false)).Images;

    /// <summary>
    /// Streams every image.img to <paramref name="onImage"/> with a fully classified entry, in as few
    /// passes as the archive's order allows. In the first pass an image.img is handed over at once when its
    /// text files came before it and its kind is already certain: url-new == url-current (full), a
    /// <c>deep_delta</c> marker (deep delta) or an <c>image-current.sha256</c> (app-gen's whole-image delta).
    /// app-gen writes every image that way, so its archives take one pass. Images that arrive before their
    /// text files, or a delta without either marker (reference generator), are handed over in a second
    /// pass. Like payload data in Download, handed-over data is only trustworthy once this returns.
    /// </summary>
    public static async Task<ImagesReadResult> ReadStreamingAsync(Func<Stream> open, string source,
        Func<ImageEntry, Stream, CancellationToken, Task> onImage, CancellationToken ct)
    {
        var dirs = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var handed = new Dictionary<string, ImageEntry>(StringComparer.Ordinal);
        await ForEachEntryAsync(open, source, async (id, file, entry) =>
        {
            var d = Enter(dirs, seen, id, file, source);
            if (file == AppPayloadNames.ImageFile)
            {
                sizes[id] = entry.Length;
                var early = Decidable(id, d, entry.Length, source);
                if (early is not null)
                {
                    handed[id] = early;
                    await onImage(early, entry.DataStream ?? Stream.Null, ct).ConfigureAwait(false);
                }
                return;
            }
            if (handed.ContainsKey(id))
                throw new ArtifactFormatException($"{source}: images/{id}/{file} comes after image.img although the image was already classified: the artifact is damaged; rebuild it");
            d[file] = await ReadSmallAsync(entry, id, file, source, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        var images = Build(dirs, sizes, source);
        foreach (var img in images)
        {
            if (handed.TryGetValue(img.Id, out var h) && h != img)
                throw new ArtifactFormatException($"{source}: images/{img.Id}/ changed after it was classified: the artifact is damaged; rebuild it");
        }
        var deferred = images.Where(i => !handed.ContainsKey(i.Id)).ToList();
        if (deferred.Count == 0) return new ImagesReadResult(images, 1);
        await StreamImagesAsync(open, source, deferred, onImage, ct).ConfigureAwait(false);
        return new ImagesReadResult(images, 2);
    }

    private static ImageEntry? Decidable(string id, Dictionary<string, string> d, long size, string source)
    {
        if (!d.TryGetValue(AppPayloadNames.UrlNew, out var urlNew) || !d.TryGetValue(AppPayloadNames.UrlCurrent, out var urlCurrent) ||
            !d.ContainsKey(AppPayloadNames.SumsNew) || !d.ContainsKey(AppPayloadNames.SumsCurrent)) return null;
        bool equalUrls = urlNew.Trim() == urlCurrent.Trim();
        bool certain = equalUrls || d.ContainsKey(AppPayloadNames.DeepDelta) || d.ContainsKey(AppPayloadNames.BaseTarSha256);
        if (!certain) return null;
        return Build(new Dictionary<string, Dictionary<string, string>> { [id] = d }, new Dictionary<string, long> { [id] = size }, source)[0];
    }

    private static async Task ForEachEntryAsync(Func<Stream> open, string source, Func<string, string, TarEntry, Task> onFile, CancellationToken ct)
    {
        var raw = open();
        await using (raw.ConfigureAwait(false))
        {
            var compression = await PayloadArchive.DetectAsync(raw, source, ct).ConfigureAwait(false);
            await using var dec = Compression.Decompress(raw, compression);
            var tar = new CheckedTarReader(dec, source, TarEntryPolicy.FilesAndDirectories,
                m => new UnsafeArchiveEntryException(m + ": only regular files belong in images/; the artifact is damaged or hostile, rebuild it with app-gen"), leaveOpen: true);
            await using (tar.ConfigureAwait(false))
            {
                try
                {
                    while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
                    {
                        var name = PayloadArchive.Normalize(e.Name);
                        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries);
                        if (name.StartsWith('/') || parts.Length == 0 || parts[0] != "images" || parts.Length > 3 || parts.Any(p => p is "." or ".."))
                            throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" is outside images/<id>/: the artifact is damaged or hostile; rebuild it");
                        if (parts.Length >= 2 && !MetadataValidator.IsValidImageId(parts[1]))
                            throw new UnsafeArchiveEntryException($"{source}: directory images/{parts[1]} is not named by a 64-hex image ID: rebuild the artifact with app-gen");
                        if (e.EntryType == TarEntryType.Directory)
                        {
                            if (parts.Length == 3) throw new UnsafeArchiveEntryException($"{source}: unexpected directory \"{e.Name}\" inside an image directory");
                            continue;
                        }
                        if (parts.Length != 3 || !AppPayloadNames.Known.Contains(parts[2]))
                            throw new UnsafeArchiveEntryException($"{source}: unexpected file \"{e.Name}\": images/<id>/ holds only {string.Join(", ", AppPayloadNames.WriteOrder)}");
                        await onFile(parts[1], parts[2], e).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or OverflowException)
                {
                    throw new ArtifactFormatException($"{source} cannot be read ({AppModule.Core.RuntimeMessages.For(ex)}): the artifact is damaged");
                }
            }
        }
    }
}

/// <summary>Limits for extracting manifests.tar.gz.</summary>
public sealed record ExtractionLimits(int MaxEntries = 10_000, long MaxFileBytes = 64L << 20, long MaxTotalBytes = 256L << 20);

/// <summary>Safe extraction of manifests.tar.gz (or .tar) into a directory.</summary>
public static class ManifestsPayload
{
    /// <summary>
    /// Extracts the entries under <c>manifests/</c> into <paramref name="destDir"/> (created; must be
    /// empty or absent). Rejects absolute paths, <c>..</c>, entries outside <c>manifests/</c>, symlinks
    /// that are absolute or contain <c>..</c>, hard links to anything not extracted before, device nodes
    /// and FIFOs, duplicate entries, and archives beyond <paramref name="limits"/>. Returns the relative
    /// paths of the files written.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ExtractAsync(string archivePath, string destDir, ExtractionLimits? limits, CancellationToken ct)
    {
        limits ??= new ExtractionLimits();
        string source = archivePath;
        Directory.CreateDirectory(destDir);
        if (Directory.EnumerateFileSystemEntries(destDir).Any())
            throw new ArtifactException($"cannot extract {source}: destination {destDir} is not empty");
        var root = Path.GetFullPath(destDir).TrimEnd('/');
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var files = new List<string>();
        int count = 0;
        long total = 0;
        await using var raw = new FileStream(archivePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        var compression = await PayloadArchive.DetectAsync(raw, source, ct).ConfigureAwait(false);
        await using var dec = Compression.Decompress(raw, compression);
        var tar = new CheckedTarReader(dec, source, TarEntryPolicy.FilesDirectoriesAndLinks,
            m => new UnsafeArchiveEntryException(m + ": manifests may hold only files, directories and links; rebuild the artifact with app-gen"), leaveOpen: true);
        await using (tar.ConfigureAwait(false))
        {
            try
            {
                while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
                {
                    if (++count > limits.MaxEntries)
                        throw new UnsafeArchiveEntryException($"{source} has more than {limits.MaxEntries} entries: the artifact is damaged or hostile");
                    string rel = CheckedRelative(e.Name, source);
                    if (rel.Length == 0)
                    {
                        if (e.EntryType != TarEntryType.Directory) throw new UnsafeArchiveEntryException($"{source}: \"{e.Name}\" must be a directory");
                        continue;
                    }
                    if (!seen.Add(rel.TrimEnd('/')))
                        throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" appears twice: the artifact is damaged or hostile; rebuild it");
                    var target = Path.Combine(root, rel);
                    var parent = Path.GetDirectoryName(target)!;
                    try
                    {
                        EnsureInside(root, parent, source, e.Name);
                        Directory.CreateDirectory(parent);
                        var mode = e.Mode & (UnixFileMode)0b111_111_111;
                        switch (e.EntryType)
                        {
                            case TarEntryType.Directory:
                                Unix.CreateDirectory(target, mode | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                                break;
                            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                                if (e.Length > limits.MaxFileBytes)
                                    throw new UnsafeArchiveEntryException($"{source}: \"{e.Name}\" is {e.Length} bytes, more than the limit of {limits.MaxFileBytes}");
                                total += e.Length;
                                if (total > limits.MaxTotalBytes)
                                    throw new UnsafeArchiveEntryException($"{source} holds more than {limits.MaxTotalBytes} bytes of manifests: the artifact is damaged or hostile");
                                await using (var fs = Unix.CreateFile(target, mode | UnixFileMode.UserRead | UnixFileMode.UserWrite, async: true))
                                {
                                    if (e.DataStream is not null) await e.DataStream.CopyToAsync(fs, ct).ConfigureAwait(false);
                                }
                                files.Add(rel);
                                break;
                            case TarEntryType.SymbolicLink:
                                var link = e.LinkName;
                                if (link.Length == 0 || link.StartsWith('/') || link.Split('/').Any(p => p == ".."))
                                    throw new UnsafeArchiveEntryException($"{source}: symlink \"{e.Name}\" points to \"{link}\", which is absolute or leaves its directory: only links that stay inside manifests/ without '..' are allowed");
                                File.CreateSymbolicLink(target, link);
                                break;
                            case TarEntryType.HardLink:
                                string linkRel;
                                try { linkRel = CheckedRelative(e.LinkName, source); }
                                catch (UnsafeArchiveEntryException) { throw new UnsafeArchiveEntryException($"{source}: hard link \"{e.Name}\" points to \"{e.LinkName}\", outside manifests/"); }
                                if (!files.Contains(linkRel))
                                    throw new UnsafeArchiveEntryException($"{source}: hard link \"{e.Name}\" points to \"{e.LinkName}\", which is not a file extracted before it");
                                File.Copy(Path.Combine(root, linkRel), target);
                                files.Add(rel);
                                break;
                            default:
                                throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" is a {e.EntryType}; manifests may hold only files, directories and symlinks");
                        }
                    }
                    catch (IOException ex) when (ex is not EndOfStreamException)
                    {
                        throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" cannot be created ({AppModule.Core.RuntimeMessages.For(ex)}): it clashes with an earlier entry (a file or link where a directory is needed), or the disk is full; rebuild the artifact or free space");
                    }
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or OverflowException)
            {
                throw new ArtifactFormatException($"{source} cannot be read ({AppModule.Core.RuntimeMessages.For(ex)}): the artifact is damaged");
            }
        }
        return files;
    }

    private static string CheckedRelative(string name, string source)
    {
        if (name.StartsWith('/'))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" has an absolute path: the artifact is damaged or hostile");
        var n = PayloadArchive.Normalize(name);
        var parts = n.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Any(p => p is ".." or "."))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" contains '..' or '.': the artifact is damaged or hostile");
        if (parts.Length == 0 || parts[0] != "manifests")
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" is outside manifests/: the artifact is damaged or hostile");
        if (parts.Any(p => p.Contains('\0')))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" contains NUL");
        return string.Join('/', parts.Skip(1));
    }

    private static void EnsureInside(string root, string dir, string source, string name)
    {
        // Every existing ancestor must resolve (through symlinks) inside root.
        var full = Path.GetFullPath(dir);
        if (full != root && !full.StartsWith(root + "/", StringComparison.Ordinal))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" would be written outside the destination");
        var probe = full;
        while (probe.Length > root.Length)
        {
            var info = new DirectoryInfo(probe);
            if (info.LinkTarget is not null)
            {
                var resolved = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? "";
                if (resolved != root && !resolved.StartsWith(root + "/", StringComparison.Ordinal))
                    throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" would be written through a link leaving the destination");
            }
            probe = Path.GetDirectoryName(probe)!;
        }
    }
}

/// <summary>Shared helpers for payload archives, and the deterministic writers app-gen uses.</summary>
public static class PayloadArchive
{
    /// <summary>Strips a leading "./" and trailing "/".</summary>
    public static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name.TrimEnd('/');
    }

    /// <summary>gzip (1f 8b), xz (fd 37 7a 58 5a) or plain tar, by magic bytes (the stream must be seekable) or else by name.</summary>
    public static async Task<ArtifactCompression> DetectAsync(Stream s, string name, CancellationToken ct)
    {
        if (!s.CanSeek) return Compression.FromName(name);
        var buf = new byte[6];
        long pos = s.Position;
        int n = 0;
        while (n < buf.Length)
        {
            int r = await s.ReadAsync(buf.AsMemory(n), ct).ConfigureAwait(false);
            if (r == 0) break;
            n += r;
        }
        s.Position = pos;
        if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) return ArtifactCompression.Gzip;
        if (n >= 6 && buf[0] == 0xfd && buf[1] == 0x37 && buf[2] == 0x7a && buf[3] == 0x58 && buf[4] == 0x5a && buf[5] == 0) return ArtifactCompression.Lzma;
        return ArtifactCompression.None;
    }

    /// <summary>A GNU tar entry with fixed owner, times and mode (reproducible).</summary>
    public static GnuTarEntry Entry(TarEntryType type, string name, UnixFileMode mode, DateTimeOffset mtime) => new(type, name)
    {
        Mode = mode,
        Uid = 0,
        Gid = 0,
        UserName = "root",
        GroupName = "root",
        ModificationTime = mtime,
        AccessTime = mtime,
        ChangeTime = mtime,
    };

    public const UnixFileMode FileMode644 = (UnixFileMode)0b110_100_100;
    public const UnixFileMode FileMode755 = (UnixFileMode)0b111_101_101;

    /// <summary>Writes manifests.tar.gz from a directory: entries <c>manifests/...</c> in ordinal order,
    /// files 0644 (0755 when executable by the owner), directories 0755, symlinks kept, owner root,
    /// mtime fixed. Throws when the directory holds no file at all.</summary>
    public static async Task WriteManifestsAsync(string manifestsDir, Stream output, DateTimeOffset mtime, CancellationToken ct)
    {
        if (!Directory.Exists(manifestsDir))
            throw new ArtifactException($"manifests directory {manifestsDir} does not exist: give --manifests-dir a directory holding your compose file or k8s manifests");
        var root = Path.GetFullPath(manifestsDir);
        var all = Walk(root).ToList();
        if (!all.Any(p => File.Exists(Path.Combine(root, p)) && new FileInfo(Path.Combine(root, p)).LinkTarget is null))
            throw new ArtifactException($"manifests directory {manifestsDir} is empty: put your docker-compose.yml (or k8s manifests) in it");
        await using var gz = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true);
        await using var tar = new TarWriter(gz, TarEntryFormat.Gnu, leaveOpen: true);
        await tar.WriteEntryAsync(Entry(TarEntryType.Directory, "manifests/", FileMode755, mtime), ct).ConfigureAwait(false);
        foreach (var rel in all)
        {
            var full = Path.Combine(root, rel);
            var fi = new FileInfo(full);
            if (fi.LinkTarget is { } lt)
            {
                var e = Entry(TarEntryType.SymbolicLink, "manifests/" + rel, (UnixFileMode)0b111_111_111, mtime);
                e.LinkName = lt;
                await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
            }
            else if (Directory.Exists(full))
            {
                await tar.WriteEntryAsync(Entry(TarEntryType.Directory, "manifests/" + rel + "/", FileMode755, mtime), ct).ConfigureAwait(false);
            }
            else
            {
                bool exec = (Unix.GetMode(full) & UnixFileMode.UserExecute) != 0;
                var e = Entry(TarEntryType.RegularFile, "manifests/" + rel, exec ? FileMode755 : FileMode644, mtime);
                await using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
                e.DataStream = fs;
                await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
            }
        }
    }

    private static IEnumerable<string> Walk(string root, string rel = "")
    {
        var dir = rel.Length == 0 ? root : Path.Combine(root, rel);
        foreach (var full in Directory.EnumerateFileSystemEntries(dir).OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal))
        {
            var name = Path.GetFileName(full);
            var r = rel.Length == 0 ? name : rel + "/" + name;
            var fi = new FileInfo(full);
            if (fi.LinkTarget is null && !File.Exists(full) && !Directory.Exists(full)) continue;
            var attrs = File.GetAttributes(full);
            if (fi.LinkTarget is null && (attrs & FileAttributes.Directory) == 0 && (attrs & (FileAttributes.Device | FileAttributes.ReparsePoint)) != 0)
                throw new ArtifactException($"manifests directory entry {full} is not a regular file, directory or symlink: remove it");
            yield return r;
            if (fi.LinkTarget is null && Directory.Exists(full))
                foreach (var sub in Walk(root, r)) yield return sub;
        }
    }
}

/// <summary>One image to put into images.tar.gz.</summary>
/// <param name="ImagePath">the file that becomes image.img (saved image, VCDIFF or deep-delta tar).</param>
public sealed record ImageToWrite(ImageEntry Entry, string ImagePath);

public static class ImagesPayloadWriter
{
    /// <summary>Writes images.tar.gz: <c>images/</c>, then per image (sorted by ID) its directory and the
    /// files in <see cref="AppPayloadNames.WriteOrder"/> (text files "\n"-terminated like the reference),
    /// owner root, mode 0644/0755, mtime fixed.</summary>
    public static async Task WriteAsync(IReadOnlyList<ImageToWrite> images, Stream output, DateTimeOffset mtime, IProgress<long>? progress, CancellationToken ct)
    {
        await using var gz = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true);
        await using var tar = new TarWriter(gz, TarEntryFormat.Gnu, leaveOpen: true);
        await tar.WriteEntryAsync(PayloadArchive.Entry(TarEntryType.Directory, "images/", PayloadArchive.FileMode755, mtime), ct).ConfigureAwait(false);
        foreach (var img in images.OrderBy(i => i.Entry.Id, StringComparer.Ordinal))
        {
            var e = img.Entry;
            var dir = $"images/{e.Id}/";
            await tar.WriteEntryAsync(PayloadArchive.Entry(TarEntryType.Directory, dir, PayloadArchive.FileMode755, mtime), ct).ConfigureAwait(false);
            foreach (var f in AppPayloadNames.WriteOrder)
            {
                string? text = f switch
                {
                    AppPayloadNames.UrlNew => e.UrlNew + "\n",
                    AppPayloadNames.UrlCurrent => e.UrlCurrent + "\n",
                    AppPayloadNames.SumsNew => e.SumsNew + "\n",
                    AppPayloadNames.SumsCurrent => e.SumsCurrent + "\n",
                    AppPayloadNames.BaseTarSha256 => e.BaseTarSha256 is null ? null : e.BaseTarSha256 + "\n",
                    AppPayloadNames.DeepDelta => e.DeepDeltaMarker ? "" : null,
                    _ => null,
                };
                if (f == AppPayloadNames.ImageFile)
                {
                    await using var fs = new FileStream(img.ImagePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
                    var entry = PayloadArchive.Entry(TarEntryType.RegularFile, dir + f, PayloadArchive.FileMode644, mtime);
                    entry.DataStream = new ProgressStream(fs, progress);
                    await tar.WriteEntryAsync(entry, ct).ConfigureAwait(false);
                }
                else if (text is not null)
                {
                    var entry = PayloadArchive.Entry(TarEntryType.RegularFile, dir + f, PayloadArchive.FileMode644, mtime);
                    entry.DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text));
                    await tar.WriteEntryAsync(entry, ct).ConfigureAwait(false);
                }
            }
        }
    }
}
