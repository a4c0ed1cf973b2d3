using System.Text.Json;
using AppModule.Delta.Tar;

namespace AppModule.Delta;

/// <summary>The device's save of the current image is not the tar the whole-image delta was made against.</summary>
public sealed class BaseMismatchException : DeltaFormatException
{
    public BaseMismatchException(string expected, string actual)
        : base(-1, $"the current image's saved tar has sha256 {actual}, but the delta was made against {expected}; " +
                   "the device holds a different current image (or its engine saves it differently): install a full image instead")
    {
        Expected = expected;
        Actual = actual;
    }

    public string Expected { get; }
    public string Actual { get; }
}

/// <summary>
/// Whole-image deltas: a VCDIFF of the new image's saved tar against the current image's saved tar.
/// <para>
/// Usage on the device: SAVE the current image to a file, then
/// <c>WholeImageDelta.CheckBase(saveStream, expectedSha256, ct)</c> (pre-check, before anything is
/// stopped; the expected digest is the artifact's <c>image-current.sha256</c>), then
/// <c>WholeImageDelta.Apply(saveStream, deltaStream, output, expectedSha256, limits, ct)</c>, then
/// <see cref="ImageTar.ReadImageIds"/> on the output to compare with <c>sums-new</c> before LOAD.
/// </para>
/// </summary>
public static class WholeImageDelta
{
    /// <summary>Verifies that <paramref name="currentSave"/> hashes to <paramref name="expectedSha256"/>; rewinds it.</summary>
    /// <exception cref="BaseMismatchException">The digests differ.</exception>
    public static void CheckBase(Stream currentSave, string expectedSha256, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(currentSave);
        string expected = Digests.ParseSha256(expectedSha256 ?? "")
            ?? throw new ArgumentException($"\"{expectedSha256}\" is not a sha256 digest", nameof(expectedSha256));
        if (!currentSave.CanSeek)
        {
            throw new ArgumentException("the current image's save must be seekable", nameof(currentSave));
        }
        ct.ThrowIfCancellationRequested();
        currentSave.Position = 0;
        string actual = Digests.Sha256Hex(currentSave);
        currentSave.Position = 0;
        if (actual != expected)
        {
            throw new BaseMismatchException(expected, actual);
        }
    }

    /// <summary>Checks the base (when <paramref name="expectedBaseSha256"/> is given) and decodes the delta into <paramref name="output"/>.</summary>
    public static VcdiffDecodeResult Apply(Stream currentSave, Stream delta, Stream output, string? expectedBaseSha256, DeltaLimits? limits, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(currentSave);
        if (expectedBaseSha256 is not null)
        {
            CheckBase(currentSave, expectedBaseSha256, ct);
        }
        return VcdiffDecoder.Decode(currentSave, delta, output, limits, ct);
    }
}

/// <summary>Facts about an image tar (docker-archive, or OCI layout with manifest.json).</summary>
public static class ImageTar
{
    /// <summary>
    /// Image IDs (hex, no "sha256:") of the images in a saved image tar: the SHA-256 of each config
    /// file named by manifest.json, computed from the content. Compare with the artifact's
    /// <c>sums-new.txt</c> before loading.
    /// </summary>
    /// <exception cref="DeltaFormatException">The tar or its manifest.json is invalid.</exception>
    public static IReadOnlyList<string> ReadImageIds(Stream seekableTar, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(seekableTar);
        var items = TarIndex.Read(seekableTar, "image tar", ct);
        var byPath = new Dictionary<string, TarItem>(StringComparer.Ordinal);
        foreach (var it in items)
        {
            byPath[it.Path] = it;
        }
        if (!byPath.TryGetValue("manifest.json", out var mf) || !mf.IsFile || mf.Size > (16 << 20))
        {
            throw new DeltaFormatException(-1, "image tar: manifest.json is missing");
        }
        var ids = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(BaseImageArchive.ReadAll(seekableTar, mf));
            foreach (var img in doc.RootElement.EnumerateArray())
            {
                string config = TarIndex.Normalize(img.GetProperty("Config").GetString() ?? "");
                if (!byPath.TryGetValue(config, out var ci) || !ci.IsFile)
                {
                    throw new DeltaFormatException(-1, $"image tar: config {config} named by manifest.json is missing");
                }
                using var s = new SubStream(seekableTar, ci.DataStart, ci.Size);
                ids.Add(Digests.Sha256Hex(s));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DeltaFormatException(mf.DataStart, $"image tar: manifest.json is not valid: {e.Message}");
        }
        return ids;
    }
}
