namespace AppModule.Core.Policy;

/// <summary>
/// What a composition may do to reach out of its containers into the host, and what the device allows.
/// Refused unless the device's sub-module config names it in <c>allow_host_access</c>:
/// <list type="table">
/// <item><term>root-mount</term><description>a bind mount (compose) or hostPath volume (k8s) of the host's <c>/</c></description></item>
/// <item><term>engine-socket</term><description>a bind mount of a container engine's socket (docker.sock, containerd.sock, podman.sock, crio.sock, ...) or of a directory that holds one (<c>/run</c>, <c>/var/run</c>, <c>/run/containerd</c>, ...)</description></item>
/// <item><term>privileged</term><description>a privileged container (compose <c>privileged: true</c>, k8s <c>securityContext.privileged</c>)</description></item>
/// <item><term>host-pid</term><description>the host's PID namespace (compose <c>pid: host</c>, k8s <c>hostPID</c>)</description></item>
/// <item><term>host-network</term><description>the host's network namespace (compose <c>network_mode: host</c>, k8s <c>hostNetwork</c>)</description></item>
/// </list>
/// The legacy key <c>forbid_host_root_mounts = false</c> still allows <c>root-mount</c>. Pure: the sub-modules
/// read their configs and the manifests; this decides.
/// </summary>
public sealed record HostAccessPolicy
{
    public const string AllowKey = "allow_host_access";
    public const string LegacyRootKey = "forbid_host_root_mounts";

    public const string RootMount = "root-mount";
    public const string EngineSocket = "engine-socket";
    public const string Privileged = "privileged";
    public const string HostPid = "host-pid";
    public const string HostNetwork = "host-network";

    /// <summary>Every kind of host access the policy knows, in the order documentation lists them.</summary>
    public static IReadOnlyList<string> Kinds { get; } = [RootMount, EngineSocket, Privileged, HostPid, HostNetwork];

    /// <summary>Socket file names of container engines; a bind of one of them gives control of the engine, i.e. of the host.</summary>
    private static readonly string[] SocketNames =
        ["docker.sock", "containerd.sock", "podman.sock", "crio.sock", "cri-dockerd.sock", "dockershim.sock", "buildkitd.sock", "containerd-shim.sock"];

    /// <summary>Directories that hold an engine's socket on common devices.</summary>
    private static readonly string[] SocketDirectories =
        ["/run", "/var/run", "/run/docker", "/var/run/docker", "/run/containerd", "/var/run/containerd", "/run/podman", "/var/run/podman",
         "/run/crio", "/var/run/crio", "/run/k3s", "/var/run/k3s", "/run/k3s/containerd", "/run/buildkit", "/var/run/buildkit",
         "/run/user", "/var/run/user"];

    private HostAccessPolicy(IReadOnlySet<string> allowed, string source)
    {
        Allowed = allowed;
        Source = source;
    }

    /// <summary>The kinds the device allows.</summary>
    public IReadOnlySet<string> Allowed { get; }

    /// <summary>The config file the policy came from (named in refusals).</summary>
    public string Source { get; }

    /// <summary>Refuses everything (the default).</summary>
    public static HostAccessPolicy Strict(string source) => new(new HashSet<string>(StringComparer.Ordinal), source);

    /// <summary>
    /// The policy of a config: <paramref name="allowList"/> is the value of <c>allow_host_access</c> (kinds
    /// separated by commas, as a TOML array reads; null when absent); <paramref name="forbidHostRootMounts"/>
    /// the legacy key when present. Returns the policy, or the error (unknown kind) as a sentence.
    /// </summary>
    public static (HostAccessPolicy? Policy, string? Error) Create(string? allowList, bool? forbidHostRootMounts, string source)
    {
        var allowed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var raw in (allowList ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kind = raw.ToLowerInvariant();
            if (!Kinds.Contains(kind))
            {
                return (null, $"{source}: {AllowKey} names \"{raw}\", which is not a kind of host access; use any of {string.Join(", ", Kinds)}");
            }

            allowed.Add(kind);
        }

        if (forbidHostRootMounts == false)
        {
            allowed.Add(RootMount);
        }

        return (new HostAccessPolicy(allowed, source), null);
    }

    public bool Allows(string kind) => Allowed.Contains(kind);

    /// <summary>
    /// The kind of host access a bind mount of <paramref name="hostPath"/> gives (<see cref="RootMount"/>,
    /// <see cref="EngineSocket"/>), or null for an ordinary path. Relative paths are not host paths (null).
    /// </summary>
    public static string? ClassifyHostPath(string hostPath)
    {
        ArgumentNullException.ThrowIfNull(hostPath);
        if (!hostPath.StartsWith('/'))
        {
            return null;
        }

        var normalized = Normalize(hostPath);
        if (normalized == "/")
        {
            return RootMount;
        }

        var name = normalized[(normalized.LastIndexOf('/') + 1)..];
        if (SocketNames.Contains(name, StringComparer.Ordinal) || SocketDirectories.Contains(normalized, StringComparer.Ordinal))
        {
            return EngineSocket;
        }

        return null;
    }

    /// <summary>
    /// The refusal for <paramref name="kind"/> (null when allowed): "<paramref name="subject"/> <paramref name="what"/>,
    /// which ... does not allow; ...".
    /// </summary>
    public string? Refusal(string subject, string kind, string what) =>
        Allows(kind)
            ? null
            : $"{subject} {what}: host access \"{kind}\" is refused unless {AllowKey} in {Source} names it; remove it from the manifests, or add \"{kind}\" to {AllowKey} if this device trusts the application with it";

    /// <summary>A host path with "." and empty segments removed and ".." resolved (above "/" stays "/").</summary>
    public static string Normalize(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var parts = new List<string>();
        foreach (var p in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (p == ".")
            {
                continue;
            }

            if (p == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }

                continue;
            }

            parts.Add(p);
        }

        return "/" + string.Join('/', parts);
    }
}
