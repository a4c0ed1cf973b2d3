namespace TestSupport;

/// <summary>
/// The Docker engine the tests use: the one that answers at $DOCKER_HOST or the default socket
/// (`make test` starts a private dockerd when none does). Images come from build/test-images.sh.
/// </summary>
public static class DockerEngine
{
    private static readonly Lazy<string?> Unavailable = new(Probe);
    private static readonly Lazy<bool> Images = new(BuildImages);

    /// <summary>The docker CLI of the distribution (not /usr/local/bin/docker, which may be a newer client).</summary>
    public static string Cli { get; } = File.Exists("/usr/bin/docker") ? "/usr/bin/docker" : "docker";

    public static string Host { get; } = Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } h ? h : "unix:///var/run/docker.sock";

    /// <summary>An engine must answer (<see cref="Requires"/>: skips locally, fails on CI, naming the fix).</summary>
    public static void Require() => Requires.Component("Docker engine", Unavailable.Value);

    /// <summary>Requires the engine and the test images (appmodule/web:1.0, :2.0, :nohealth, :exits, :unhealthy).</summary>
    public static void RequireImages()
    {
        Require();
        _ = Images.Value;
    }

    /// <summary>skopeo's source arguments for an engine image: skopeo (1.9) ignores $DOCKER_HOST, so the endpoint is passed.</summary>
    public static string[] SkopeoSource(string image) => ["--src-daemon-host", Host, $"docker-daemon:{image}"];

    public static CmdResult Docker(params string[] args) => Cmd.Run(Cli, args, timeout: TimeSpan.FromMinutes(5));

    public static string DockerOk(params string[] args)
    {
        var r = Docker(args);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"docker {string.Join(' ', args)} failed: {r}");
        }

        return r.Stdout.Trim();
    }

    /// <summary>The image ID (sha256:...) of a reference, or null when the engine does not have it.</summary>
    public static string? ImageId(string reference)
    {
        var r = Docker("image", "inspect", "--format", "{{.Id}}", reference);
        return r.ExitCode == 0 ? r.Stdout.Trim() : null;
    }

    private static string? Probe()
    {
        var r = Cmd.Run(Cli, ["version", "--format", "{{.Server.Version}}"], timeout: TimeSpan.FromSeconds(30));
        return r.ExitCode == 0
            ? null
            : $"no Docker engine answers at {Host} ({r.Stderr.Trim()}); run the tests with `make test`, which installs docker.io and starts a private dockerd";
    }

    private static bool BuildImages()
    {
        // Serialize image builds across concurrently running test processes.
        using var lockFile = FileLock.Acquire("appmodule-test-images");
        var r = Cmd.Run(Repo.Script("build/test-images.sh"), [], timeout: TimeSpan.FromMinutes(5));
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException("build/test-images.sh failed: " + r);
        }

        return true;
    }
}

/// <summary>An exclusive lock across processes, held while the returned object lives.</summary>
public sealed class FileLock : IDisposable
{
    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    public static FileLock Acquire(string name, TimeSpan? timeout = null)
    {
        var path = Path.Combine(Path.GetTempPath(), name + ".lock");
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(10));
        while (true)
        {
            try
            {
                return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
