using System.Diagnostics;
using System.Text.Json.Nodes;

namespace TestSupport;

/// <summary>
/// A private containerd (Debian's <c>containerd</c>) for one test run: its own root, state and socket
/// under a temp directory, the CRI plugin disabled (no kubelet here). Stopped and removed on dispose.
/// Images go in with <see cref="Ctr"/> (<c>ctr --address &lt;socket&gt; -n k8s.io ...</c>).
/// </summary>
public sealed class ContainerdServer : IDisposable
{
    public const string DefaultNamespace = "k8s.io";
    private readonly TempDir _dir;
    private readonly Process? _process;

    public ContainerdServer()
    {
        if (Requires.Which("containerd") is not { } containerd || Requires.Which("ctr") is not { } ctr)
        {
            Unavailable = "`containerd` or `ctr` is not on PATH: `apt-get install containerd` (build/deps.sh does it)";
            _dir = new TempDir("ctrd");
            return;
        }

        // Short path: unix socket paths are limited to 108 bytes.
        _dir = new TempDir("ctrd");
        Address = Path.Combine(_dir.Path, "c.sock");
        Root = Path.Combine(_dir.Path, "root");
        var config = _dir.Write("config.toml", $"""
            version = 2
            root = "{Root}"
            state = "{_dir.Path}/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "{Address}"
            [ttrpc]
              address = "{Address}.ttrpc"
            [debug]
              address = ""
            [metrics]
              address = ""
            """);
        CtrPath = ctr;
        var psi = new ProcessStartInfo(containerd) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(config);
        _process = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { if (log.Length < 20000) { log.AppendLine(e.Data); } } } };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                break;
            }

            if (File.Exists(Address) && Cmd.Run(CtrPath, ["--address", Address, "version"], timeout: TimeSpan.FromSeconds(10)).ExitCode == 0)
            {
                return;
            }

            Thread.Sleep(100);
        }

        string text;
        lock (log)
        {
            text = log.ToString();
        }

        Unavailable = $"containerd did not start at {Address}: {text[Math.Max(0, text.Length - 2000)..]}";
    }

    /// <summary>Why containerd cannot be used here, or null.</summary>
    public string? Unavailable { get; }

    /// <summary>The socket, for <c>ctr --address</c> / the k8s sub-module's containerd_address.</summary>
    public string Address { get; } = string.Empty;

    /// <summary>containerd's root (its config's <c>root</c>): content store, snapshots, metadata.</summary>
    public string Root { get; } = string.Empty;

    /// <summary>The ctr client next to the containerd that was found.</summary>
    public string CtrPath { get; } = "ctr";

    public void Require() => Requires.Component("containerd", Unavailable);

    /// <summary>Runs ctr against this containerd in namespace <paramref name="ns"/>.</summary>
    public CmdResult Ctr(string ns, params string[] args) =>
        Cmd.Run(CtrPath, new[] { "--address", Address, "--namespace", ns }.Concat(args), timeout: TimeSpan.FromMinutes(3));

    public string CtrOk(string ns, params string[] args)
    {
        var r = Ctr(ns, args);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"ctr {string.Join(' ', args)} failed: {r}");
        }

        return r.Stdout;
    }

    /// <summary>containerd's name for a reference: web:1 → docker.io/library/web:1, org/web → docker.io/org/web:latest.</summary>
    public static string Normalize(string reference)
    {
        var slash = reference.IndexOf('/', StringComparison.Ordinal);
        var first = slash >= 0 ? reference[..slash] : string.Empty;
        var name = slash >= 0 && (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost")
            ? reference
            : slash >= 0 ? "docker.io/" + reference : "docker.io/library/" + reference;
        return name.IndexOf(':', name.LastIndexOf('/') + 1) >= 0 || name.Contains('@', StringComparison.Ordinal) ? name : name + ":latest";
    }

    /// <summary>Image name → target digest in the namespace.</summary>
    public Dictionary<string, string> Images(string ns = DefaultNamespace)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in CtrOk(ns, "images", "ls").Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length >= 3)
            {
                result[cols[0]] = cols[2];
            }
        }

        return result;
    }

    public bool HasImage(string reference, string ns = DefaultNamespace) => Images(ns).ContainsKey(Normalize(reference));

    /// <summary>The image ID (config digest) of a reference, or null when containerd does not have it.</summary>
    public string? ImageId(string reference, string ns = DefaultNamespace)
    {
        if (!Images(ns).TryGetValue(Normalize(reference), out var digest))
        {
            return null;
        }

        for (var i = 0; i < 3; i++)
        {
            var doc = JsonNode.Parse(CtrOk(ns, "content", "get", digest));
            if (doc?["config"]?["digest"]?.GetValue<string>() is { } config)
            {
                return config;
            }

            var manifest = (doc?["manifests"] as JsonArray)?.OfType<JsonObject>()
                .FirstOrDefault(m => m["platform"]?["architecture"]?.GetValue<string>() == "amd64") ?? (doc?["manifests"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault();
            if (manifest?["digest"]?.GetValue<string>() is not { } next)
            {
                return null;
            }

            digest = next;
        }

        return null;
    }

    /// <summary>Imports a docker-save or OCI archive.</summary>
    public void Import(string archive, string ns = DefaultNamespace) => CtrOk(ns, "images", "import", archive);

    public void Tag(string source, string target, string ns = DefaultNamespace) => CtrOk(ns, "images", "tag", "--force", Normalize(source), Normalize(target));

    public void Remove(string reference, string ns = DefaultNamespace) => Ctr(ns, "images", "rm", Normalize(reference));

    public void Dispose()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true); // our own containerd: pid we started
            _process.WaitForExit(10_000);
        }

        _process?.Dispose();
        _dir.Dispose();
    }
}

/// <summary>
/// Test images as docker-save archives (from build/test-images.sh via the shared engine), saved once
/// per test process into a temp directory, to be imported into containerd.
/// </summary>
public static class ImageArchives
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, string> Saved = new(StringComparer.Ordinal);
    private static readonly Lazy<TempDir> Dir = new(() => new TempDir("image-archives"));

    /// <summary>A docker-save tar of <paramref name="image"/> (e.g. appmodule/web:1.0).</summary>
    public static string Of(string image)
    {
        DockerEngine.RequireImages();
        lock (Gate)
        {
            if (Saved.TryGetValue(image, out var path))
            {
                return path;
            }

            path = Dir.Value.File(image.Replace('/', '_').Replace(':', '_') + ".tar");
            DockerEngine.DockerOk("save", "-o", path, image);
            Saved[image] = path;
            return path;
        }
    }
}
