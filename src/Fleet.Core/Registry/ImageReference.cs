namespace Fleet.Core.Registry;

/// <summary>An image name split the way the engine does it: "app" is docker.io/library/app, "team/app" is
/// docker.io/team/app, and a first component with '.', ':' or "localhost" names a registry host.</summary>
public sealed record ImageReference(string Registry, string Repository)
{
    public const string DockerHub = "docker.io";

    public bool IsDockerHub => Registry == DockerHub;

    public static ImageReference Parse(string image)
    {
        var s = image.Trim();
        if (s.Length == 0) throw new FormatException("empty image name; expected e.g. registry.example.com:5000/team/app or team/app");
        int at = s.IndexOf('@');
        if (at >= 0) s = s[..at];
        int slash = s.IndexOf('/');
        string registry = DockerHub, repo = s;
        if (slash > 0)
        {
            var first = s[..slash];
            if (first.Contains('.') || first.Contains(':') || first == "localhost")
            {
                registry = first == "index.docker.io" || first == "registry-1.docker.io" ? DockerHub : first;
                repo = s[(slash + 1)..];
            }
        }
        int colon = repo.LastIndexOf(':');
        if (colon >= 0) repo = repo[..colon];
        if (registry == DockerHub && !repo.Contains('/')) repo = "library/" + repo;
        if (repo.Length == 0 || repo.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-' or '/')))
            throw new FormatException($"image '{image}': repository '{repo}' must be lowercase letters, digits and . _ - /");
        return new ImageReference(registry, repo);
    }

    /// <summary>Host that serves the distribution API for this registry.</summary>
    public string ApiHost => IsDockerHub ? "registry-1.docker.io" : Registry;

    public override string ToString() => IsDockerHub ? Repository : Registry + "/" + Repository;
}
