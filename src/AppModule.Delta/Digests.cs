using System.Security.Cryptography;

namespace AppModule.Delta;

/// <summary>
/// SHA-256 helpers. Digests are lowercase hex without the "sha256:" prefix, the form used by
/// the artifact's sums files and by the deep-delta <c>*.sha256sum</c> files.
/// </summary>
public static class Digests
{
    /// <summary>SHA-256 of the rest of a stream, as lowercase hex.</summary>
    public static string Sha256Hex(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>SHA-256 of the rest of a stream, as lowercase hex.</summary>
    public static async Task<string> Sha256HexAsync(Stream stream, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
    }

    /// <summary>SHA-256 of a file, as lowercase hex.</summary>
    public static async Task<string> Sha256HexOfFileAsync(string path, CancellationToken ct)
    {
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan | FileOptions.Asynchronous);
        return await Sha256HexAsync(f, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Parses a digest as found in sums files: the first whitespace-separated token of the first
    /// line, with an optional "sha256:" prefix. Returns null unless it is 64 hex digits.
    /// </summary>
    public static string? ParseSha256(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        int ws = t.IndexOfAny([' ', '\t', '\n', '\r']);
        if (ws >= 0)
        {
            t = t[..ws];
        }
        if (t.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase))
        {
            t = t[7..];
        }
        return IsSha256Hex(t) ? t.ToLowerInvariant() : null;
    }

    /// <summary>True for exactly 64 hex digits.</summary>
    public static bool IsSha256Hex(string s) =>
        s is not null && s.Length == 64 && s.AsSpan().IndexOfAnyExcept("0123456789abcdefABCDEF") < 0;
}
