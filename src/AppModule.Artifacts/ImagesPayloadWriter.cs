using System.Formats.Tar;
using System.Text;

namespace AppModule.Artifacts;

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
