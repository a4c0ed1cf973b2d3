using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AppModule.Artifacts;
using AppModule.Core.Install;

namespace AppModule;

/// <summary>
/// The payload files of an app artifact (files/images.tar.gz and files/manifests.tar.gz, or the
/// plain .tar variants), read with the Artifacts library's forward-only readers, plus the check that
/// a saved image is the image its sums-new.txt names.
/// </summary>
public static class ImagesArchive
{
    private const long SmallFile = 1 << 20;

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
    /// image.img the image ID it carries (<see cref="SavedImageId"/>; null for deltas and non-images).
    /// </summary>
    public static async Task<(IReadOnlyList<ImageEntry> Images, IReadOnlyDictionary<string, string?> Carried)> ScanAsync(string path, CancellationToken ct)
    {
        var carried = new Dictionary<string, string?>(StringComparer.Ordinal);
        var images = await ImagesPayload.ScanAsync(Opener(path), path, ct, (id, stream) =>
        {
            carried[id] = SavedImageId(stream, ct);
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        return (images, carried);
    }

    /// <summary>Hands each image.img (in archive order) to <paramref name="onImage"/> as a forward-only stream.</summary>
    public static Task ForEachPayloadAsync(string path, IReadOnlyList<ImageEntry> images, Func<ImageEntry, Stream, Task> onImage, CancellationToken ct) =>
        ImagesPayload.StreamImagesAsync(Opener(path), path, images, (e, s, _) => onImage(e, s), ct);

    /// <summary>
    /// The image ID a saved image (docker-archive or OCI layout, as <c>docker save</c> writes it)
    /// carries: the sha256 of the config blob that manifest.json names. Null when the stream is not
    /// a tar with a manifest.json (e.g. a VCDIFF delta).
    /// </summary>
    public static string? SavedImageId(Stream payload, CancellationToken ct)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        string? manifest = null;
        try
        {
            using var tar = new TarReader(payload, leaveOpen: true);
            while (tar.GetNextEntry() is { } e)
            {
                ct.ThrowIfCancellationRequested();
                if (e.DataStream is null || e.Length > SmallFile)
                {
                    continue;
                }

                var name = PayloadArchive.Normalize(e.Name);
                if (name == "manifest.json")
                {
                    using var r = new StreamReader(e.DataStream, Encoding.UTF8, leaveOpen: true);
                    manifest = r.ReadToEnd();
                }
                else
                {
                    hashes[name] = Convert.ToHexStringLower(SHA256.HashData(e.DataStream));
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or OverflowException)
        {
            return null;
        }

        if (manifest is null)
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(manifest);
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0
                || !doc.RootElement[0].TryGetProperty("Config", out var config) || config.GetString() is not { } configName)
            {
                return null;
            }

            return hashes.TryGetValue(PayloadArchive.Normalize(configName), out var h) ? h : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The image ID of a saved image file.</summary>
    public static string? SavedImageIdOfFile(string path, CancellationToken ct)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return SavedImageId(fs, ct);
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
