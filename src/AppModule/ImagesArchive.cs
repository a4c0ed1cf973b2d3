using AppModule.Artifacts;
using AppModule.Core.Install;

namespace AppModule;

/// <summary>
/// The payload files of an app artifact (files/images.tar.gz and files/manifests.tar.gz, or the
/// plain .tar variants), read with the Artifacts library's forward-only readers.
/// </summary>
public static class ImagesArchive
{
    /// <summary>The payload file <paramref name="baseName"/>.tar.gz or .tar in <paramref name="filesDir"/>.</summary>
    public static string Locate(string filesDir, string baseName)
    {
        foreach (var name in new[] { baseName + ".tar.gz", baseName + ".tgz", baseName + ".tar" })
        {
            var p = Path.Combine(filesDir, name);
            if (File.Exists(p))
            {
                return p;
            }
        }

        throw new ArtifactFormatException($"the artifact has no payload file {baseName}.tar.gz (or {baseName}.tar) in {filesDir}: regenerate it with app-gen");
    }

    private static Func<Stream> Opener(string path) =>
        () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);

    /// <summary>
    /// One pass over the payload: the image directories, classified and checked, and for each
    /// image.img what it carries (<see cref="SavedImage"/>: ID and platform; null for deltas and non-images).
    /// </summary>
    public static async Task<(IReadOnlyList<ImageEntry> Images, IReadOnlyDictionary<string, SavedImage?> Carried)> ScanAsync(string path, CancellationToken ct)
    {
        var carried = new Dictionary<string, SavedImage?>(StringComparer.Ordinal);
        var images = await ImagesPayload.ScanAsync(Opener(path), path, ct, (id, stream) =>
        {
            carried[id] = SavedImage.Read(stream, $"{path}: images/{id}/image.img", ct);
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        return (images, carried);
    }

    /// <summary>Hands each image.img (in archive order) to <paramref name="onImage"/> as a forward-only stream.</summary>
    public static Task ForEachPayloadAsync(string path, IReadOnlyList<ImageEntry> images, Func<ImageEntry, Stream, Task> onImage, CancellationToken ct) =>
        ImagesPayload.StreamImagesAsync(Opener(path), path, images, (e, s, _) => onImage(e, s), ct);

    /// <summary>The image ID of a saved image file.</summary>
    public static string? SavedImageIdOfFile(string path, CancellationToken ct) => SavedImageOfFile(path, ct)?.Id;

    /// <summary>What a saved image file carries (ID, platform); null when it is not a saved image.</summary>
    public static SavedImage? SavedImageOfFile(string path, CancellationToken ct)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return SavedImage.Read(fs, path, ct);
    }

    /// <summary>Extracts files/manifests.tar.gz into <paramref name="target"/> (safely: no escapes, no devices, bounded).</summary>
    public static void ExtractManifests(string path, string target, CancellationToken ct)
    {
        var files = ManifestsPayload.ExtractAsync(path, target, null, ct).GetAwaiter().GetResult();
        if (files.Count == 0)
        {
            throw new ArtifactFormatException($"{path} holds no manifest files: regenerate the artifact with app-gen and give it the application's manifests");
        }
    }
}
