namespace AppModule.Core.SubModules;

/// <summary>
/// What a version's manifests define, by name, as the sub-module's pre-check <c>REQS</c> (with
/// <c>MENDER_APP_MANIFESTS_DIR</c>) reports it in two lines, <c>services:ok &lt;name&gt; ...</c> and
/// <c>volumes:ok &lt;name&gt; ...</c> (names separated by spaces): the services (Compose services;
/// Kubernetes workloads as <c>kind/name</c>) and the volumes that outlive a STOP (Compose named volumes;
/// Kubernetes persistent volume claims, including a StatefulSet's claim templates).
/// </summary>
public sealed record ManifestContents(IReadOnlyList<string> Services, IReadOnlyList<string> Volumes)
{
    public const string ServicesLine = "services";
    public const string VolumesLine = "volumes";

    /// <summary>The contents a REQS answer reports; null when it has no <c>services</c> line (a sub-module that does not tell, e.g. the reference's).</summary>
    public static ManifestContents? FromRequirements(string stdout)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        IReadOnlyList<string>? services = null;
        IReadOnlyList<string> volumes = [];
        foreach (var raw in stdout.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (Names(line, ServicesLine) is { } s)
            {
                services = s;
            }
            else if (Names(line, VolumesLine) is { } v)
            {
                volumes = v;
            }
        }

        return services is null ? null : new ManifestContents(services, volumes);
    }

    /// <summary>The names of a line <c>&lt;key&gt;:ok a b c</c>; null for any other line.</summary>
    private static string[]? Names(string line, string key)
    {
        var prefix = key + ":ok";
        if (!line.StartsWith(prefix, StringComparison.Ordinal) || (line.Length > prefix.Length && line[prefix.Length] != ' '))
        {
            return null;
        }

        return line[prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }
}
