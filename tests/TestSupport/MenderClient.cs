namespace TestSupport;

/// <summary>
/// The real Mender client 3.4 in standalone mode, isolated per test (docs/update-module-protocol.md
/// section 1): a private mount namespace with bind mounts over /usr/share/mender/modules/v3 and
/// /etc/mender, plus its own --config, --data, device_type and artifact_info.
/// </summary>
public sealed class MenderClient : IDisposable
{
    private readonly TempDir _root = new("mender-client");

    /// <param name="deviceType">written to data/device_type</param>
    /// <param name="initialArtifact">written to /etc/mender/artifact_info</param>
    /// <param name="moduleTimeoutSeconds">ModuleTimeoutSeconds in the client's config</param>
    public MenderClient(string deviceType = "test-device", string initialArtifact = "initial", int moduleTimeoutSeconds = 600)
    {
        ModulesDir = _root.Dir("modules");
        EtcDir = _root.Dir("etc");
        DataDir = _root.Dir("data");
        File.WriteAllText(Path.Combine(DataDir, "device_type"), $"device_type={deviceType}\n");
        File.WriteAllText(Path.Combine(EtcDir, "artifact_info"), $"artifact_name={initialArtifact}\n");
        ConfigFile = _root.Write("mender.conf", $"{{\"ModuleTimeoutSeconds\": {moduleTimeoutSeconds}}}\n");
    }

    /// <summary>Seen by the client as /usr/share/mender/modules/v3.</summary>
    public string ModulesDir { get; }

    /// <summary>Seen by the client (and its modules) as /etc/mender.</summary>
    public string EtcDir { get; }

    public string DataDir { get; }

    public string ConfigFile { get; }

    /// <summary>Extra environment for the client, which passes it unchanged to the modules.</summary>
    public Dictionary<string, string?> Environment { get; } = new();

    /// <summary>The client (on PATH), mount namespaces and the client's directories must be there (<see cref="Requires"/>).</summary>
    public static void Require()
    {
        Requires.Program("Mender client", "mender", "`apt-get install mender-client` (build/deps.sh does it)");
        var probe = Cmd.Run("unshare", ["--mount", "--propagation", "private", "true"]);
        Requires.Component("mount namespaces", probe.ExitCode == 0, "cannot create one (the Mender client tests need root with CAP_SYS_ADMIN): " + probe.Stderr.Trim());
        Requires.Component("Mender client", Directory.Exists("/usr/share/mender/modules/v3") && Directory.Exists("/etc/mender"), "/usr/share/mender/modules/v3 or /etc/mender is missing: reinstall mender-client");
    }

    /// <summary>Installs an Update Module under <paramref name="payloadType"/> (a symlink to <paramref name="executable"/>).</summary>
    public void AddModule(string payloadType, string executable)
    {
        var link = Path.Combine(ModulesDir, payloadType);
        File.Delete(link);
        File.CreateSymbolicLink(link, executable);
    }

    /// <summary>Writes a file the modules will see under /etc/mender.</summary>
    public string WriteEtc(string name, string content) => _root.Write(Path.Combine("etc", name), content);

    public CmdResult Install(string artifact, TimeSpan? timeout = null) => Run(timeout, "install", artifact);

    public CmdResult Commit(TimeSpan? timeout = null) => Run(timeout, "commit");

    public CmdResult Rollback(TimeSpan? timeout = null) => Run(timeout, "rollback");

    public string ShowArtifact() => Run(null, "show-artifact").Stdout.Trim();

    /// <summary>show-provides as key → value.</summary>
    public IReadOnlyDictionary<string, string> ShowProvides()
    {
        var r = Run(null, "show-provides");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.Contains('=', StringComparison.Ordinal))
            .Select(l => l.Split('=', 2))
            .ToDictionary(p => p[0], p => p[1]);
    }

    /// <summary>Runs `mender &lt;args&gt;` inside the private namespace.</summary>
    public CmdResult Run(TimeSpan? timeout, params string[] args)
    {
        const string script = """
            set -e
            mount --bind "$M_MODULES" /usr/share/mender/modules/v3
            mount --bind "$M_ETC" /etc/mender
            exec mender --config "$M_CONFIG" --fallback-config /nonexistent/mender.conf --data "$M_DATA" --no-syslog --log-level info "$@"
            """;
        var env = new Dictionary<string, string?>(Environment)
        {
            ["M_MODULES"] = ModulesDir,
            ["M_ETC"] = EtcDir,
            ["M_CONFIG"] = ConfigFile,
            ["M_DATA"] = DataDir,
        };
        return Cmd.Run("unshare", new[] { "--mount", "--propagation", "private", "/bin/bash", "-c", script, "mender" }.Concat(args), env, timeout: timeout ?? TimeSpan.FromMinutes(10));
    }

    public void Dispose() => _root.Dispose();
}
