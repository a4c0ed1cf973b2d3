using System.Diagnostics.CodeAnalysis;

namespace AppModule.Core.Images;

/// <summary>
/// An image reference (<c>[registry/]repository[:tag][@digest]</c>), parsed and normalised the way
/// the Docker engine and containerd do it (the grammar of distribution/reference):
/// <list type="bullet">
/// <item>a first component with <c>.</c>, <c>:</c>, an upper-case letter, or <c>localhost</c> is a
/// registry; otherwise the registry is Docker Hub, <see cref="DockerHub"/>;</item>
/// <item><c>index.docker.io</c> is Docker Hub too, and a one-component repository on Docker Hub is
/// under <c>library/</c>.</item>
/// </list>
/// So <c>x</c>, <c>x:latest</c>, <c>library/x</c>, <c>docker.io/library/x</c> and
/// <c>index.docker.io/library/x:latest</c> are equal: equality compares <see cref="FullyQualified"/>,
/// in which a reference without tag and digest gets the tag <c>latest</c>.
/// </summary>
public sealed class ImageReference : IEquatable<ImageReference>
{
    public const string DockerHub = "docker.io";
    public const string DefaultTag = "latest";

    private const string Example = "e.g. debian:12, team/app:1.0, registry.example.com:5000/team/app:1.0[@sha256:<64 hex digits>]";

    /// <summary>Builds a reference from its parts, checking each as <see cref="Parse"/> does
    /// (<c>new ImageReference("docker.io", "app")</c> is <c>docker.io/library/app</c>).</summary>
    public ImageReference(string registry, string repository, string? tag = null, string? digest = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(repository);
        var text = registry + "/" + repository + (tag is null ? string.Empty : ":" + tag) + (digest is null ? string.Empty : "@" + digest);
        var r = Parse(text);
        if (r.Registry != NormalizeRegistry(registry) || r.Tag != tag)
        {
            throw new FormatException($"\"{registry}\" and \"{repository}\" do not make one image reference ({Example})");
        }

        (Registry, Repository, Tag, Digest) = (r.Registry, r.Repository, r.Tag, r.Digest);
    }

    private ImageReference(string registry, string repository, string? tag, string? digest, bool parsed)
    {
        _ = parsed;
        Registry = registry;
        Repository = repository;
        Tag = tag;
        Digest = digest;
    }

    /// <summary>The registry host (with port when one is written); <see cref="DockerHub"/> for Docker Hub.</summary>
    public string Registry { get; }

    /// <summary>The repository path within the registry; Docker Hub's official images are <c>library/x</c>.</summary>
    public string Repository { get; }

    /// <summary>The tag as written, or null when none is written.</summary>
    public string? Tag { get; }

    /// <summary>The digest (<c>algorithm:hex</c>, hex in lower case), or null.</summary>
    public string? Digest { get; }

    public bool IsDockerHub => Registry == DockerHub;

    /// <summary>The fully qualified name without tag or digest: <c>docker.io/library/x</c>.</summary>
    public string Name => Registry + "/" + Repository;

    /// <summary>The name as the engine shows it: <c>x</c>, <c>team/x</c>, <c>registry:5000/team/x</c>. A Docker Hub
    /// repository whose first component would read as a registry (<c>docker.io/my.org/x</c>) keeps <c>docker.io/</c>.</summary>
    public string FamiliarName =>
        !IsDockerHub ? Name
        : Repository.StartsWith("library/", StringComparison.Ordinal) && Repository.IndexOf('/', 8) < 0 ? Repository[8..]
        : LooksLikeRegistry(Repository[..Repository.IndexOf('/', StringComparison.Ordinal)]) ? Name
        : Repository;

    /// <summary>The form the Docker engine lists (<c>RepoTags</c>): familiar name, tag (<c>latest</c> when
    /// neither tag nor digest is written) and digest: <c>x:latest</c>, <c>team/x:1@sha256:…</c>.</summary>
    public string Familiar => FamiliarName + Suffix(Tag ?? (Digest is null ? DefaultTag : null), Digest);

    /// <summary>The form containerd stores (and the kubelet resolves): <c>docker.io/library/x:latest</c>.</summary>
    public string FullyQualified => Name + Suffix(Tag ?? (Digest is null ? DefaultTag : null), Digest);

    /// <summary>The same repository, without tag or digest.</summary>
    public ImageReference WithoutTagOrDigest() => new(Registry, Repository, null, null, parsed: true);

    /// <summary>The same repository with the tag; a digest is dropped (it belongs to the old tag's image).</summary>
    public ImageReference WithTag(string tag)
    {
        ArgumentNullException.ThrowIfNull(tag);
        return IsTag(tag) ? new(Registry, Repository, tag, null, parsed: true)
            : throw new FormatException($"\"{tag}\" is not a valid tag: up to 128 letters, digits, _ . -, not starting with . or -");
    }

    /// <summary>Parses a reference; throws <see cref="FormatException"/> naming the text, what is wrong and an example.</summary>
    public static ImageReference Parse(string text) =>
        TryParse(text, out var reference, out var error) ? reference : throw new FormatException(error);

    public static bool TryParse(string? text, [NotNullWhen(true)] out ImageReference? reference, [NotNullWhen(false)] out string? error)
    {
        reference = null;
        error = Check(text, out var registry, out var repository, out var tag, out var digest);
        if (error is not null)
        {
            return false;
        }

        reference = new ImageReference(registry!, repository!, tag, digest, parsed: true);
        return true;
    }

    /// <summary>True for an image ID: <c>sha256:</c> and 64 hex digits, or the 64 hex digits alone.</summary>
    public static bool IsImageId(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var hex = text.StartsWith("sha256:", StringComparison.Ordinal) ? text[7..] : text;
        return hex.Length == 64 && hex.All(char.IsAsciiHexDigit);
    }

    /// <summary>The engine's form (<see cref="Familiar"/>) of a reference; anything that is not one (an
    /// image ID, a malformed name) is returned unchanged, so it compares equal only to itself.</summary>
    public static string ToFamiliar(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return !IsImageId(text) && TryParse(text, out var r, out _) ? r.Familiar : text;
    }

    /// <summary>Containerd's form (<see cref="FullyQualified"/>) of a reference; anything that is not one is
    /// returned unchanged.</summary>
    public static string ToFullyQualified(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return !IsImageId(text) && TryParse(text, out var r, out _) ? r.FullyQualified : text;
    }

    /// <summary>True when both texts name the same image under normalisation (<c>x</c> = <c>docker.io/library/x:latest</c>).</summary>
    public static bool SameImage(string a, string b) => string.Equals(ToFullyQualified(a), ToFullyQualified(b), StringComparison.Ordinal);

    /// <summary>
    /// Splits a reference's text, as written, into the part before the tag and the tag (null when none is
    /// written); a digest is dropped. For editing a file without changing how the user wrote the name.
    /// </summary>
    public static (string Name, string? Tag) SplitTag(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var at = text.IndexOf('@', StringComparison.Ordinal);
        var s = at >= 0 ? text[..at] : text;
        var colon = s.LastIndexOf(':');
        return colon > s.LastIndexOf('/') ? (s[..colon], s[(colon + 1)..]) : (s, null);
    }

    public bool Equals(ImageReference? other) =>
        other is not null && string.Equals(FullyQualified, other.FullyQualified, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as ImageReference);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(FullyQualified);

    public static bool operator ==(ImageReference? a, ImageReference? b) => a is null ? b is null : a.Equals(b);

    public static bool operator !=(ImageReference? a, ImageReference? b) => !(a == b);

    /// <summary>The familiar name with the tag and digest as written (no tag added): <c>x</c>, <c>team/x:1</c>.</summary>
    public override string ToString() => FamiliarName + Suffix(Tag, Digest);

    private static string Suffix(string? tag, string? digest) =>
        (tag is null ? string.Empty : ":" + tag) + (digest is null ? string.Empty : "@" + digest);

    private static string NormalizeRegistry(string registry) => registry == "index.docker.io" ? DockerHub : registry;

    private static string? Check(string? text, out string? registry, out string? repository, out string? tag, out string? digest)
    {
        registry = repository = tag = digest = null;
        if (text is null || text.Length == 0)
        {
            return $"an empty image reference; expected {Example}";
        }

        if (text.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return $"\"{text}\" is not an image reference: it contains white space; expected {Example}";
        }

        var name = text;
        var at = name.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            var d = name[(at + 1)..];
            name = name[..at];
            var colon = d.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !IsAlgorithm(d[..colon]) || d.Length - colon - 1 < 32 || !d[(colon + 1)..].All(char.IsAsciiHexDigit))
            {
                return $"\"{text}\": the part after @ must be a digest, algorithm:hex (e.g. sha256:<64 hex digits>), found \"{d}\"";
            }

            if (d.StartsWith("sha256:", StringComparison.Ordinal) && d.Length != 7 + 64)
            {
                return $"\"{text}\": a sha256 digest has 64 hex digits, found {d.Length - 7}";
            }

            digest = d.ToLowerInvariant();
        }

        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var first = slash >= 0 ? name[..slash] : null;
        string path;
        if (first is not null && LooksLikeRegistry(first))
        {
            if (!IsDomain(first))
            {
                return $"\"{text}\": \"{first}\" is not a registry host[:port]; expected {Example}";
            }

            registry = NormalizeRegistry(first);
            path = name[(slash + 1)..];
        }
        else
        {
            registry = DockerHub;
            path = name;
        }

        var tagColon = path.LastIndexOf(':');
        if (tagColon >= 0)
        {
            tag = path[(tagColon + 1)..];
            path = path[..tagColon];
            if (!IsTag(tag))
            {
                return $"\"{text}\": \"{tag}\" is not a valid tag (up to 128 letters, digits, _ . -, not starting with . or -)";
            }
        }

        if (path.Length == 0)
        {
            return $"\"{text}\" has no repository name; expected {Example}";
        }

        foreach (var component in path.Split('/'))
        {
            if (!IsPathComponent(component))
            {
                return $"\"{text}\": repository component \"{component}\" must be lower-case letters and digits, separated by . _ __ or -; expected {Example}";
            }
        }

        if (registry == DockerHub && !path.Contains('/', StringComparison.Ordinal))
        {
            if (path.Length == 64 && path.All(char.IsAsciiHexDigit))
            {
                return $"\"{text}\" is an image ID, not a reference; write it as sha256:{path} where an ID is accepted";
            }

            path = "library/" + path;
        }

        if (registry.Length + 1 + path.Length > 255)
        {
            return $"\"{text}\": the name is longer than 255 characters";
        }

        repository = path;
        return null;
    }

    private static bool LooksLikeRegistry(string first) =>
        first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal)
        || first == "localhost" || first.Any(char.IsAsciiLetterUpper);

    private static bool IsAlnumLower(char c) => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c);

    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    private static bool IsPathComponent(string s)
    {
        if (s.Length == 0 || !IsAlnumLower(s[0]) || !IsAlnumLower(s[^1]))
        {
            return false;
        }

        for (var i = 1; i < s.Length - 1; i++)
        {
            var c = s[i];
            if (IsAlnumLower(c))
            {
                continue;
            }

            var j = i;
            while (j < s.Length - 1 && !IsAlnumLower(s[j]))
            {
                j++;
            }

            var sep = s[i..j];
            if (!(sep is "." or "_" or "__" || sep.All(ch => ch == '-')))
            {
                return false;
            }

            i = j - 1;
        }

        return true;
    }

    // host components [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])? joined by '.', optional :port
    private static bool IsDomain(string s)
    {
        var colon = s.LastIndexOf(':');
        var host = colon >= 0 ? s[..colon] : s;
        if (colon >= 0 && (colon == s.Length - 1 || !s[(colon + 1)..].All(char.IsAsciiDigit)))
        {
            return false;
        }

        return host.Length > 0 && host.Split('.').All(part =>
            part.Length > 0 && char.IsAsciiLetterOrDigit(part[0]) && char.IsAsciiLetterOrDigit(part[^1])
            && part.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'));
    }

    // [\w][\w.-]{0,127}
    private static bool IsTag(string s) =>
        s.Length is > 0 and <= 128 && (char.IsAsciiLetterOrDigit(s[0]) || s[0] == '_')
        && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');

    // [a-z0-9]+([+._-][a-z0-9]+)*
    private static bool IsAlgorithm(string s) =>
        s.Length > 0 && IsAlnumLower(s[0]) && IsAlnumLower(s[^1])
        && s.All(c => IsAlnumLower(c) || c is '+' or '.' or '_' or '-')
        && !s.Zip(s.Skip(1)).Any(p => !IsAlnumLower(p.First) && !IsAlnumLower(p.Second));
}
