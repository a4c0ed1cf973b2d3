namespace AppModule.Core.Compose;

/// <summary>
/// The files Compose reads from a project directory when it is given no <c>-f</c>: the first compose file present
/// in <see cref="Names"/>, then the first override file present in <see cref="OverrideNames"/>. The orders are
/// Compose v2's (measured with docker compose 2.26.1; v1 looks for docker-compose.* first, but Compose v1 is
/// end-of-life and warns in REQS). The one answer for the fleet agent and app-gen.
/// </summary>
public static class ComposeFiles
{
    /// <summary>Compose file names, the first one present wins.</summary>
    public static IReadOnlyList<string> Names { get; } = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];

    /// <summary>Override file names, the first one present is merged over the compose file (whatever the compose file's name).</summary>
    public static IReadOnlyList<string> OverrideNames { get; } = ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

    /// <summary>The compose file Compose reads in <paramref name="directory"/>, or null when there is none.</summary>
    public static string? Find(string directory) => First(directory, Names);

    /// <summary>The files Compose merges in <paramref name="directory"/>, in order: the compose file and the override file if any; empty without a compose file.</summary>
    public static IReadOnlyList<string> Merged(string directory)
    {
        if (Find(directory) is not { } file)
        {
            return [];
        }

        return First(directory, OverrideNames) is { } over ? [file, over] : [file];
    }

    private static string? First(string directory, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(directory);
        return names.Select(n => Path.Combine(directory, n)).FirstOrDefault(File.Exists);
    }
}
