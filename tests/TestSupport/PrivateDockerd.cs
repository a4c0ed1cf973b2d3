using System.Diagnostics;

namespace TestSupport;

/// <summary>
/// A Docker engine of the test's own, for faults that must not touch the shared engine: it can be
/// restarted (<see cref="Restart"/>) and its data root can be a small tmpfs so that the disk fills
/// up (<c>dataRootMiB</c>). It runs without iptables and leaves docker0 alone (the shared engine owns
/// those): its default network is a bridge of its own (<see cref="Bridge"/>), made here and deleted on
/// dispose. Not <c>--bridge none</c>: a dockerd started so deletes the host's docker0 (moby removes the
/// default bridge interface when the bridge is disabled), which broke `docker run`/`docker build` with a
/// RUN step on the shared engine for the rest of the run. Its networks come from an address pool of its
/// own; published ports go through docker-proxy.
/// </summary>
public sealed class PrivateDockerd : IDisposable
{
    private readonly TempDir _dir = new("private-dockerd");
    private readonly string? _tmpfs;
    private readonly string _pool;
    private Process? _process;

    public PrivateDockerd(int? dataRootMiB = null)
    {
        DockerEngine.Require();
        Requires.Component("root privileges", Environment.UserName == "root", "a private dockerd needs root (make test runs as root)");
        DataRoot = _dir.Dir("data");
        if (dataRootMiB is { } size)
        {
            var mount = Cmd.Run("mount", ["-t", "tmpfs", "-o", $"size={size}m", "tmpfs", DataRoot]);
            Requires.Component("tmpfs mounts", mount.ExitCode == 0, $"cannot mount a tmpfs data root ({mount.Stderr.Trim()})");
            _tmpfs = DataRoot;
        }

        Host = $"unix://{_dir.File("docker.sock")}";
        var n = Random.Shared.Next(0, 0x10000);
        Bridge = $"appm{n:x4}";
        _pool = $"10.{200 + (n % 50)}.0.0/16";
        var bridge = Cmd.Run("ip", ["link", "add", Bridge, "type", "bridge"]);
        Requires.Component("bridge interfaces", bridge.ExitCode == 0, $"cannot add bridge {Bridge} ({bridge.Stderr.Trim()}): a private dockerd needs `ip link add` (iproute2, root)");
        Cmd.Run("ip", ["link", "set", Bridge, "up"]);
        Start();
    }

    /// <summary>The bridge interface of this engine's default network.</summary>
    public string Bridge { get; }

    /// <summary>The engine endpoint, for DOCKER_HOST or the sub-module's docker_host.</summary>
    public string Host { get; }

    public string DataRoot { get; }

    /// <summary>What dockerd logged so far (for failure messages).</summary>
    public string Log => File.Exists(_dir.File("dockerd.log")) ? File.ReadAllText(_dir.File("dockerd.log")) : "";

    public CmdResult Docker(params string[] args) => Cmd.Run(DockerEngine.Cli, ["-H", Host, .. args], timeout: TimeSpan.FromMinutes(5));

    public string DockerOk(params string[] args)
    {
        var r = Docker(args);
        return r.ExitCode == 0 ? r.Stdout.Trim() : throw new InvalidOperationException($"docker -H {Host} {string.Join(' ', args)} failed: {r}");
    }

    /// <summary>The image ID of a reference in this engine, or null when it does not have it.</summary>
    public string? ImageId(string reference)
    {
        var r = Docker("image", "inspect", "--format", "{{.Id}}", reference);
        return r.ExitCode == 0 ? r.Stdout.Trim() : null;
    }

    /// <summary>Copies images from the shared engine into this one (docker save | docker load).</summary>
    public void CopyImages(params string[] references)
    {
        var tar = _dir.File($"copy-{Guid.NewGuid():N}.tar");
        DockerEngine.DockerOk(["save", "-o", tar, .. references]);
        DockerOk("load", "-i", tar);
        File.Delete(tar);
    }

    /// <summary>Stops the engine the way a service manager does (SIGTERM, containers stopped with it) and starts it again on the same data.</summary>
    public void Restart()
    {
        Stop();
        Start();
    }

    private void Start()
    {
        var psi = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardOutput = false,
            RedirectStandardError = false,
        };
        var log = _dir.File("dockerd.log");
        foreach (var a in new[]
                 {
                     "sh", "-c", "exec \"$@\" >>\"$0\" 2>&1", log,
                     "dockerd", "--host", Host, "--data-root", DataRoot, "--exec-root", _dir.Dir("exec"),
                     "--pidfile", _dir.File("docker.pid"), "--bridge", Bridge, "--iptables=false", "--ip6tables=false",
                     "--default-address-pool", $"base={_pool},size=24", "--shutdown-timeout", "2",
                 })
        {
            psi.ArgumentList.Add(a);
        }

        _process = Process.Start(psi)!;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Cmd.Run(DockerEngine.Cli, ["-H", Host, "version", "--format", "{{.Server.Version}}"], timeout: TimeSpan.FromSeconds(30)).ExitCode != 0)
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"the private dockerd at {Host} did not start:\n{Log}");
            }

            Thread.Sleep(200);
        }
    }

    private void Stop()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            Cmd.Run("kill", ["-TERM", "--", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                Cmd.Run("kill", ["-KILL", "--", "-" + _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                _process.WaitForExit();
            }
        }

        _process.Dispose();
        _process = null;
    }

    public void Dispose()
    {
        try
        {
            var containers = Docker("ps", "-aq").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (containers.Length > 0)
            {
                Docker(["rm", "-f", .. containers]);
            }
        }
        catch (TimeoutException)
        {
        }

        Stop();
        Cmd.Run("ip", ["link", "del", Bridge]);
        Cmd.Run("umount", ["-R", _dir.File("exec")]);
        if (_tmpfs is not null)
        {
            Cmd.Run("umount", ["-R", _tmpfs]);
        }
        else
        {
            Cmd.Run("umount", ["-R", DataRoot]);
        }

        _dir.Dispose();
    }
}
