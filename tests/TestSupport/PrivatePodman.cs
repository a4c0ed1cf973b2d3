using System.Text.Json.Nodes;

namespace TestSupport;

/// <summary>
/// A rootful podman of the test's own: its image and container store (<c>--root</c>), run state
/// (<c>--runroot</c>) and libpod state (<c>--tmpdir</c>) under a temp directory, so it never sees or touches the
/// host's containers. Podman has no daemon: every call is the CLI with <see cref="GlobalArgs"/> and
/// <c>CONTAINERS_CONF</c> pointing to a containers.conf that sets what these machines need (podman's default
/// ulimits exceed the VM's hard limits; the cgroupfs manager, with no systemd bus). One instance per test
/// class or collection: creating it costs a second, loading the test images another.
/// Everything it made (pods, containers, volumes, mounts) is removed on dispose.
/// </summary>
public sealed class PrivatePodman : IDisposable
{
    private readonly TempDir _dir = new("pdm");

    public PrivatePodman()
    {
        Requires.Component("root privileges", System.Environment.UserName == "root", "a private rootful podman needs root (make test runs as root)");
        Path = Tool.Podman;
        Root = _dir.Dir("root");
        RunRoot = _dir.Dir("run");
        ContainersConf = _dir.Write("containers.conf", """
            # written by TestSupport/PrivatePodman
            [containers]
            default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            """);
        GlobalArgs = ["--root", Root, "--runroot", RunRoot, "--tmpdir", _dir.Dir("tmp")];
        var info = Podman("info", "--format", "{{.Store.GraphRoot}}");
        Requires.Component("podman", info.ExitCode == 0 ? null : $"`podman info` fails with a private store ({info.Stderr.Trim()}): `apt-get install podman catatonit` (build/deps.sh does it)");
    }

    /// <summary>The podman executable.</summary>
    public string Path { get; }

    /// <summary>The image and container store.</summary>
    public string Root { get; }

    public string RunRoot { get; }

    /// <summary>The containers.conf every call of this podman reads (through <c>CONTAINERS_CONF</c>).</summary>
    public string ContainersConf { get; }

    /// <summary>The global options that make the podman CLI use this store, before the command.</summary>
    public IReadOnlyList<string> GlobalArgs { get; }

    /// <summary>The environment of a call of this podman (or of a program that calls it).</summary>
    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?> { ["CONTAINERS_CONF"] = ContainersConf };

    public CmdResult Podman(params string[] args) =>
        Cmd.Run(Path, [.. GlobalArgs, .. args], new Dictionary<string, string?>(Environment), timeout: TimeSpan.FromMinutes(5));

    public string PodmanOk(params string[] args)
    {
        var r = Podman(args);
        return r.ExitCode == 0 ? r.Stdout.Trim() : throw new InvalidOperationException($"podman {string.Join(' ', args)} failed: {r}");
    }

    /// <summary>Copies images from the shared Docker engine into this podman (docker save, podman load), no registry involved.</summary>
    public void CopyImages(params string[] references)
    {
        DockerEngine.RequireImages();
        var tar = _dir.File($"copy-{Guid.NewGuid():N}.tar");
        DockerEngine.DockerOk(["save", "-o", tar, .. references]);
        PodmanOk("load", "-q", "-i", tar);
        File.Delete(tar);
    }

    /// <summary>The image ID (sha256:...) this podman has for a reference, or null.</summary>
    public string? ImageId(string reference)
    {
        var r = Podman("image", "inspect", "--format", "{{.Id}}", reference);
        return r.ExitCode == 0 ? "sha256:" + r.Stdout.Trim() : null;
    }

    /// <summary>Every container (pods' infra containers included) as <c>podman container inspect</c> describes it.</summary>
    public IReadOnlyList<JsonObject> Containers(string? labelFilter = null)
    {
        string[] filter = labelFilter is null ? [] : ["--filter", "label=" + labelFilter];
        var ids = PodmanOk(["ps", "-aq", "--no-trunc", .. filter]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (ids.Length == 0)
        {
            return [];
        }

        var r = Podman(["container", "inspect", .. ids]);
        // A container removed between the two calls makes inspect fail: read what it printed.
        return (JsonNode.Parse(r.Stdout.Length > 0 ? r.Stdout : "[]") as JsonArray ?? []).OfType<JsonObject>().ToList();
    }

    public void Dispose()
    {
        Podman("pod", "rm", "--all", "--force", "--time", "0");
        Podman("rm", "--all", "--force", "--time", "0");
        Podman("volume", "rm", "--all", "--force");
        // Anything still mounted below the temp directory (overlay layers, shm) goes before the directory does.
        foreach (var mount in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(_dir.Path + "/", StringComparison.Ordinal)).OrderByDescending(m => m.Length))
        {
            Cmd.Run("umount", ["-l", mount.Replace("\\040", " ", StringComparison.Ordinal)]);
        }

        _dir.Dispose();
    }
}
