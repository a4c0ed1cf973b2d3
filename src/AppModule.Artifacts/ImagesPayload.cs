using System.Formats.Tar;
using System.Text;
using AppModule.Core.Archives;

namespace AppModule.Artifacts;

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
