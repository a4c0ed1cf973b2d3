using SubModule.Hosting;

namespace DockerCompose;

/// <summary>
/// An image url as the sub-module API passes it: a reference (<c>repo[:tag]</c>), an image ID
/// (<c>sha256:&lt;hex&gt;</c> or bare hex), optionally followed by <c>@sha256:&lt;hex&gt;</c> that the image
/// must match (seed 004: "in which case we check if the sums match").
/// </summary>
public sealed record ImageUrl(string Reference, string? Digest, bool IsId)
{
    public static ImageUrl Parse(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var text = url.Trim();
        if (text.Length == 0 || text.Any(char.IsWhiteSpace))
        {
            throw new SubModuleFailure($"\"{url}\" is not an image url; expected e.g. docker.io/library/debian:12[@sha256:<image id>]");
        }

        if (IsHexId(text))
        {
            return new ImageUrl("sha256:" + text.ToLowerInvariant(), null, true);
        }

        if (text.StartsWith("sha256:", StringComparison.Ordinal))
        {
            if (!IsHexId(text[7..]))
            {
                throw new SubModuleFailure($"\"{url}\" is not an image ID; expected sha256: and 64 hex digits");
            }

            return new ImageUrl(text.ToLowerInvariant(), null, true);
        }

        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at < 0)
        {
            return new ImageUrl(text, null, false);
        }

        var digest = text[(at + 1)..];
        var colon = digest.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || digest[..colon] != "sha256" || !IsHexId(digest[(colon + 1)..]))
        {
            throw new SubModuleFailure($"\"{url}\": the part after @ must be sha256:<64 hex digits>, found \"{digest}\"");
        }

        return new ImageUrl(text[..at], digest.ToLowerInvariant(), false);
    }

    /// <summary>True when the image's ID or one of its repo digests is the url's digest.</summary>
    public bool Matches(ImageInfo image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return Digest is null
               || string.Equals(image.Id, Digest, StringComparison.OrdinalIgnoreCase)
               || image.RepoDigests.Any(d => d.EndsWith("@" + Digest, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Splits the reference into repository and tag ("latest" when none).</summary>
    public (string Repository, string Tag) RepositoryAndTag()
    {
        var slash = Reference.LastIndexOf('/');
        var colon = Reference.LastIndexOf(':');
        return colon > slash ? (Reference[..colon], Reference[(colon + 1)..]) : (Reference, "latest");
    }

    /// <summary>The engine's canonical form: docker.io/library/ prefix dropped, ":latest" added.</summary>
    public static string Normalize(string reference)
    {
        var r = reference;
        if (r.StartsWith("docker.io/library/", StringComparison.Ordinal))
        {
            r = r["docker.io/library/".Length..];
        }
        else if (r.StartsWith("docker.io/", StringComparison.Ordinal))
        {
            r = r["docker.io/".Length..];
        }

        if (r.StartsWith("sha256:", StringComparison.Ordinal) || r.Contains('@', StringComparison.Ordinal))
        {
            return r;
        }

        var slash = r.LastIndexOf('/');
        return r.LastIndexOf(':') > slash ? r : r + ":latest";
    }

    public override string ToString() => Digest is null ? Reference : $"{Reference}@{Digest}";

    private static bool IsHexId(string s) => s.Length == 64 && s.All(char.IsAsciiHexDigit);
}
