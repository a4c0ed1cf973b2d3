using AppModule.Core.Images;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Image operations on the node's containerd through <c>ctr</c> (the kubelet's images live in the
/// <c>k8s.io</c> namespace), run as child processes with the configured timeout.
/// </summary>
public sealed class Containerd(K8sSettings settings)
{
    /// <summary>False when the address is a unix socket path that does not exist (no containerd here).</summary>
    public bool SocketExists => !settings.ContainerdAddress.StartsWith('/') || File.Exists(settings.ContainerdAddress);

    private IReadOnlyList<string> Base => ["--address", settings.ContainerdAddress, "--namespace", settings.ContainerdNamespace];

    /// <summary>
    /// The name containerd stores an image under, as the kubelet resolves it (<c>web:1</c> →
    /// <c>docker.io/library/web:1</c>): the core's <see cref="ImageReference.FullyQualified"/>.
    /// </summary>
    public static string Normalize(string reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return ImageReference.ToFullyQualified(reference.Trim());
    }

    public async Task ImportAsync(string file, string url, CancellationToken ct)
    {
        if (!File.Exists(file))
        {
            throw new SubModuleFailure($"image file {file} does not exist");
        }

        var args = new List<string>(Base) { "images", "import" };
        if (settings.Platform is { Length: > 0 } platform)
        {
            args.AddRange(["--platform", platform]);
        }

        args.Add(file);
        var before = await ListAsync(ct).ConfigureAwait(false);
        var r = await RunAsync(args, ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            var hint = r.StderrTail.Contains("filtered out", StringComparison.Ordinal)
                ? $"; the file has no image for platform {settings.Platform} (MENDER_APP_UPDATE_MODULE_PLATFORM): build the artifact for the device's platform"
                : $"; {file} is not a docker-save or OCI image archive, or it is damaged";
            throw Failure("import " + file, r, hint);
        }

        var name = Normalize(url);
        var at = name.IndexOf('@', StringComparison.Ordinal);
        var tagName = at >= 0 ? name[..at] : name;
        var present = await ListAsync(ct).ConfigureAwait(false);
        if (!present.TryGetValue(tagName, out var manifest))
        {
            var imported = r.Stdout.Split('\n').Where(l => l.StartsWith("unpacking ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1]).ToList();
            throw new SubModuleFailure(
                $"{file} was imported but holds no image named {url} (containerd name {tagName}); it holds: {(imported.Count == 0 ? "nothing" : string.Join(", ", imported))}; check url-new.txt of the artifact");
        }

        if (at >= 0)
        {
            // url@sha256:...: the digest must be the image's ID (config digest) or its manifest digest.
            var expected = name[(at + 1)..];
            var id = await ImageIdAsync(tagName, ct).ConfigureAwait(false);
            if (expected != id && expected != manifest)
            {
                if (!before.ContainsKey(tagName))
                {
                    await RunAsync([.. Base, "images", "rm", tagName], ct).ConfigureAwait(false);
                }

                throw new SubModuleFailure($"{file} holds {tagName} with image ID {id} (manifest {manifest}), not {expected} as the url {url} says; the artifact is corrupt or the url is wrong; the image was not kept");
            }
        }

        Log.Info($"imported {url} into containerd namespace {settings.ContainerdNamespace}");
    }

    public async Task ExportAsync(string url, string outputFile, CancellationToken ct)
    {
        var name = Normalize(url);
        var args = new List<string>(Base) { "images", "export" };
        if (settings.Platform is { Length: > 0 } platform)
        {
            args.AddRange(["--platform", platform]);
        }

        args.AddRange([outputFile, name]);
        var dir = Path.GetDirectoryName(Path.GetFullPath(outputFile));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        var r = await RunAsync(args, ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            var hint = r.StderrTail.Contains("not found", StringComparison.Ordinal) ? $"; containerd has no image {url} ({name}) in namespace {settings.ContainerdNamespace}" : string.Empty;
            throw Failure($"export {url}", r, hint);
        }
    }

    /// <summary>Removes an image; an image that is not there is already deleted.</summary>
    public async Task RemoveAsync(string url, CancellationToken ct)
    {
        var name = Normalize(url);
        var r = await RunAsync([.. Base, "images", "rm", name], ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw Failure($"remove {name}", r, string.Empty);
        }

        if (r.StderrTail.Contains("not found", StringComparison.Ordinal))
        {
            Log.Info($"{name} was not in containerd namespace {settings.ContainerdNamespace}; nothing to delete");
        }
    }

    /// <summary>The images in the namespace: name → target (manifest or index) digest.</summary>
    public async Task<Dictionary<string, string>> ListAsync(CancellationToken ct)
    {
        var r = await RunAsync([.. Base, "images", "ls"], ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw Failure("list images", r, string.Empty);
        }

        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length >= 3)
            {
                result[cols[0]] = cols[2];
            }
        }

        return result;
    }

    /// <summary>The image ID (config digest, as <c>docker image inspect</c> shows it) of an image, or null when containerd does not have it.</summary>
    public async Task<string?> ImageIdAsync(string url, CancellationToken ct)
    {
        if (!SocketExists)
        {
            return null;
        }

        var name = Normalize(url);
        var images = await ListAsync(ct).ConfigureAwait(false);
        if (!images.TryGetValue(name, out var digest))
        {
            return null;
        }

        for (var depth = 0; depth < 3; depth++)
        {
            var r = await RunAsync([.. Base, "content", "get", digest], ct).ConfigureAwait(false);
            if (!r.Succeeded)
            {
                throw Failure($"read {digest} of {name}", r, string.Empty);
            }

            var doc = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout);
            if (doc?["config"]?["digest"]?.GetValue<string>() is { } config)
            {
                return config;
            }

            // An index (multi-platform): follow the manifest of our platform.
            var wanted = settings.Platform ?? Platforms.Machine();
            var manifests = (doc?["manifests"] as System.Text.Json.Nodes.JsonArray ?? []).OfType<System.Text.Json.Nodes.JsonObject>().ToList();
            var match = manifests.FirstOrDefault(m => Platform(m) == wanted) ?? manifests.FirstOrDefault(m => Platform(m).StartsWith(wanted.Split('/')[0] + "/" + wanted.Split('/').ElementAtOrDefault(1), StringComparison.Ordinal));
            if (match?["digest"]?.GetValue<string>() is not { } next)
            {
                return null;
            }

            digest = next;
        }

        return null;
    }

    private static string Platform(System.Text.Json.Nodes.JsonObject manifest)
    {
        var p = manifest["platform"];
        var variant = p?["variant"]?.GetValue<string>();
        return $"{p?["os"]?.GetValue<string>()}/{p?["architecture"]?.GetValue<string>()}{(variant is null ? string.Empty : "/" + variant)}";
    }

    /// <summary>
    /// STORAGE: containerd's root (asked of containerd: the root its overlayfs snapshotter exports), the
    /// space free there, the chain IDs of the committed snapshots (unpacked layers, keyed by chain ID) and
    /// the IDs of the namespace's images. An import writes each new layer twice under the root: the blob
    /// into the content store and the unpacked snapshot.
    /// </summary>
    public async Task<EngineStorage> StorageAsync(CancellationToken ct)
    {
        var (ok, detail) = await ProbeAsync(ct).ConfigureAwait(false);
        if (!ok)
        {
            throw new SubModuleFailure(detail);
        }

        var plugins = await RunAsync([.. Base, "plugins", "ls", "--detailed"], ct).ConfigureAwait(false);
        if (!plugins.Succeeded)
        {
            throw Failure("plugins ls", plugins, string.Empty);
        }

        var snapshotterRoot = ExportedRoot(plugins.Stdout, "io.containerd.snapshotter.v1", "overlayfs")
                              ?? throw new SubModuleFailure($"containerd at {settings.ContainerdAddress} exports no root for its overlayfs snapshotter (ctr plugins ls --detailed); is the snapshotter enabled?");
        var contentRoot = ExportedRoot(plugins.Stdout, "io.containerd.content.v1", "content");
        var snapshots = await RunAsync([.. Base, "snapshots", "ls"], ct).ConfigureAwait(false);
        if (!snapshots.Succeeded)
        {
            throw Failure("snapshots ls", snapshots, string.Empty);
        }

        var layers = snapshots.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(c => c.Length >= 2 && c[^1] == "Committed" && c[0].StartsWith("sha256:", StringComparison.Ordinal))
            .Select(c => c[0]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var name in (await ListAsync(ct).ConfigureAwait(false)).Keys)
        {
            if (await ImageIdAsync(name, ct).ConfigureAwait(false) is { } id)
            {
                ids.Add(id);
            }
        }

        long? free = FreeSpace.Of(snapshotterRoot) is { } a && (contentRoot is null ? a : FreeSpace.Of(contentRoot)) is { } b ? Math.Min(a, b) : null;
        var root = Path.GetDirectoryName(snapshotterRoot.TrimEnd('/')) ?? snapshotterRoot;
        return new EngineStorage($"containerd {detail}", root, free, layers, ids.ToArray(), StagesArchive: false, CopiesPerLayer: 2);
    }

    /// <summary>The <c>root</c> a plugin exports in <c>ctr plugins ls --detailed</c> (blocks of "Type:", "ID:", "Exports:" lines).</summary>
    internal static string? ExportedRoot(string detailed, string type, string id)
    {
        string? t = null, i = null;
        var inExports = false;
        foreach (var raw in detailed.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("Type:", StringComparison.Ordinal))
            {
                t = line[5..].Trim();
                i = null;
                inExports = false;
            }
            else if (line.StartsWith("ID:", StringComparison.Ordinal))
            {
                i = line[3..].Trim();
            }
            else if (line.StartsWith("Exports:", StringComparison.Ordinal))
            {
                inExports = true;
            }
            else if (inExports && t == type && i == id && line.StartsWith("root ", StringComparison.Ordinal))
            {
                return line[5..].Trim();
            }
            else if (line.EndsWith(':'))
            {
                inExports = false;
            }
        }

        return null;
    }

    /// <summary>The server version, or an explanation of why containerd cannot be used.</summary>
    public async Task<(bool Ok, string Detail)> ProbeAsync(CancellationToken ct)
    {
        if (!ChildProcess.IsRunnable(settings.CtrCommand))
        {
            return (false, $"{settings.CtrCommand} not found; install containerd's ctr or set ctr_command");
        }

        if (!SocketExists)
        {
            return (false, $"containerd socket {settings.ContainerdAddress} does not exist: start containerd, or set containerd_address in {settings.ConfigSource} or K8S_CTR_ADDRESS");
        }

        var r = await RunAsync([.. Base, "version"], ct, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            return (false, $"containerd at {settings.ContainerdAddress} does not answer: {Last(r.StderrTail)}; set containerd_address or K8S_CTR_ADDRESS");
        }

        var server = r.Stdout.Split('\n').SkipWhile(l => !l.StartsWith("Server", StringComparison.Ordinal)).FirstOrDefault(l => l.Trim().StartsWith("Version:", StringComparison.Ordinal));
        return (true, $"{settings.ContainerdAddress} (containerd {server?.Split(':', 2)[1].Trim() ?? "?"}, namespace {settings.ContainerdNamespace})");
    }

    private Task<ProcessResult> RunAsync(IReadOnlyList<string> args, CancellationToken ct, TimeSpan? timeout = null)
    {
        Log.Debug(ProcessSpec.Display(settings.CtrCommand, args));
        var spec = new ProcessSpec(settings.CtrCommand, args)
        {
            Timeout = timeout ?? settings.CtrTimeout,
            OnStderr = line => Log.Debug("ctr: " + line),
        };
        return ChildProcess.RunAsync(spec, ct);
    }

    private SubModuleFailure Failure(string what, ProcessResult r, string hint) =>
        r.TimedOut
            ? new SubModuleFailure($"ctr {what} did not finish within {settings.CtrTimeout.TotalSeconds:0} s (ctr_timeout_seconds)")
            : new SubModuleFailure($"ctr {what} failed (exit {r.ExitCode}): {Last(r.StderrTail)}{hint}");

    private static string Last(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "no output" : string.Join(" / ", lines.TakeLast(3));
    }
}
