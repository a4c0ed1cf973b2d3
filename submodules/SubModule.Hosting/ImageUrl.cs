using AppModule.Core.Images;

namespace SubModule.Hosting;

/// <summary>
/// An image url as the sub-module API passes it: a reference (<c>repo[:tag]</c>), an image ID
/// (<c>sha256:&lt;hex&gt;</c> or bare hex), optionally followed by <c>@sha256:&lt;hex&gt;</c> that the image
/// must match (seed 004: "in which case we check if the sums match"). References are parsed and
/// normalised by the core's <see cref="ImageReference"/>.
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

        if (ImageReference.IsImageId(text))
        {
            return new ImageUrl("sha256:" + (text.StartsWith("sha256:", StringComparison.Ordinal) ? text[7..] : text).ToLowerInvariant(), null, true);
        }

        if (text.StartsWith("sha256:", StringComparison.Ordinal))
        {
            throw new SubModuleFailure($"\"{url}\" is not an image ID; expected sha256: and 64 hex digits");
        }

        if (!ImageReference.TryParse(text, out var reference, out var error))
        {
            throw new SubModuleFailure(error);
        }

        if (reference.Digest is { } digest && !digest.StartsWith("sha256:", StringComparison.Ordinal))
        {
            throw new SubModuleFailure($"\"{url}\": the part after @ must be sha256:<64 hex digits>, found \"{digest}\"");
        }

        var at = text.IndexOf('@', StringComparison.Ordinal);
        return new ImageUrl(at < 0 ? text : text[..at], reference.Digest, false);
    }

    /// <summary>True when the image's ID (<paramref name="imageId"/>, sha256:...) or one of its repo digests is the url's digest.</summary>
    public bool Matches(string imageId, IEnumerable<string> repoDigests)
    {
        ArgumentNullException.ThrowIfNull(repoDigests);
        return Digest is null
               || string.Equals(imageId, Digest, StringComparison.OrdinalIgnoreCase)
               || repoDigests.Any(d => d.EndsWith("@" + Digest, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The repository (as the engine names it) and tag ("latest" when none) to tag an image with.</summary>
    public (string Repository, string Tag) RepositoryAndTag()
    {
        var reference = ImageReference.Parse(Reference);
        return (reference.FamiliarName, reference.Tag ?? ImageReference.DefaultTag);
    }

    /// <summary>The engine's form of a reference (<see cref="ImageReference.Familiar"/>); an image ID is returned as is.</summary>
    public static string Normalize(string reference) => ImageReference.ToFamiliar(reference);

    public override string ToString() => Digest is null ? Reference : $"{Reference}@{Digest}";

}
