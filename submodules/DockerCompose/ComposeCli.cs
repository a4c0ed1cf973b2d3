using AppModule.Runtime;
using DockerApi;
using SubModule.Hosting;
using YamlDotNet.RepresentationModel;

namespace DockerCompose;

/// <summary>One service of a composition as <c>compose config</c> resolves it.</summary>
public sealed record ServiceDefinition(string Name, string? Image, int Replicas)
{
    /// <summary>The service as one line of the sub-module's "services" record: <c>name replicas image</c>.</summary>
    public string ToRecord() => $"{Name} {Replicas} {Image}";

    /// <summary>A line written by <see cref="ToRecord"/>; null for a line that is not one.</summary>
    public static ServiceDefinition? FromRecord(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var p = line.Split(' ', 3);
        return p.Length >= 2 && p[0].Length > 0
            ? new ServiceDefinition(p[0], p.Length > 2 && p[2].Length > 0 ? p[2] : null, int.TryParse(p[1], out var n) ? n : 1)
            : null;
    }

    /// <summary>Host paths the service bind-mounts (as <c>compose config</c> resolved them).</summary>
    public IReadOnlyList<string> BindSources { get; init; } = [];

    /// <summary><c>privileged: true</c>.</summary>
    public bool Privileged { get; init; }

    /// <summary><c>pid</c> (e.g. <c>host</c>), null when unset.</summary>
    public string? Pid { get; init; }

    /// <summary><c>network_mode</c> (e.g. <c>host</c>), null when unset.</summary>
    public string? NetworkMode { get; init; }
}

/// <summary>
/// The Compose CLI: <c>docker compose</c> (v2, preferred) or <c>docker-compose</c> (v1), discovered once
/// per call of the sub-module, or as configured (<c>docker_compose_command</c>). Compose v1 has no
/// <c>--pull never</c> and no <c>--wait</c>, so ROLLOUT checks the images itself and waits itself.
/// </summary>
public sealed class ComposeCli
{
    private readonly Settings _settings;

    private ComposeCli(Settings settings, IReadOnlyList<string> command, string version)
    {
        _settings = settings;
        Command = command;
        Version = version;
    }

    /// <summary>The command line prefix, e.g. ["/usr/bin/docker", "compose"].</summary>
    public IReadOnlyList<string> Command { get; }

    /// <summary>e.g. "2.26.1" or "1.29.2".</summary>
    public string Version { get; }

    public bool IsV2 => Version.Split('.', ' ')[0] != "1";

    public string Display => string.Join(' ', Command);

    /// <summary>Finds the Compose CLI; throws <see cref="SubModuleFailure"/> naming what was tried and the config key.</summary>
    /// <param name="exactVersion">
    /// false: a Compose v1 script (Python, 0.4 s just to print its version) is recognized by its
    /// shebang instead of being run, so that a call probes nothing it does not need.
    /// </param>
    public static async Task<ComposeCli> DiscoverAsync(Settings settings, bool exactVersion, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var tried = new List<string>();
        var candidates = new List<IReadOnlyList<string>>();
        if (settings.ComposeCommand is { Count: > 0 } configured)
        {
            candidates.Add(configured);
        }
        else
        {
            candidates.Add([settings.DockerCommand, "compose"]);
            candidates.Add(["docker-compose"]);
        }

        foreach (var c in candidates)
        {
            var display = string.Join(' ', c);
            if (!ChildProcess.IsRunnable(c[0]))
            {
                tried.Add($"{display} (not found)");
                continue;
            }

            if (!exactVersion && c.Count == 1 && IsPythonScript(c[0]))
            {
                return new ComposeCli(settings, c, "1 (Python script, not probed)");
            }

            var r = await ChildProcess.RunAsync(new ProcessSpec(c[0], [.. c.Skip(1), "version", "--short"])
            {
                Timeout = TimeSpan.FromSeconds(60),
                Environment = new Dictionary<string, string?> { [DockerApiEngine.HostVariable] = settings.DockerHost },
            }, ct).ConfigureAwait(false);
            var version = r.Stdout.Trim().TrimStart('v');
            if (r.Succeeded && version.Length > 0 && char.IsDigit(version[0]))
            {
                return new ComposeCli(settings, c, version);
            }

            tried.Add($"{display} ({(r.TimedOut ? "timed out" : r.StderrTail.Split('\n').LastOrDefault(l => l.Trim().Length > 0)?.Trim() ?? $"exit {r.ExitCode}")})");
        }

        throw new SubModuleFailure(
            $"no usable Compose CLI: tried {string.Join(", ", tried)}; install Compose (v2 plugin or docker-compose v1) or set docker_compose_command in {settings.Source}");
    }

    private static bool IsPythonScript(string command)
    {
        var path = command.Contains('/', StringComparison.Ordinal) ? command : ChildProcess.FindOnPath(command);
        if (path is null)
        {
            return false;
        }

        try
        {
            using var f = File.OpenRead(path);
            var head = new byte[128];
            var n = f.Read(head, 0, head.Length);
            var text = System.Text.Encoding.ASCII.GetString(head, 0, n);
            return text.StartsWith("#!", StringComparison.Ordinal) && text.Split('\n')[0].Contains("python", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Compose project names allow lower-case letters, digits, '-' and '_' (what Compose v1 normalizes to).</summary>
    public static string ProjectName(string application)
    {
        var name = new string(application.ToLowerInvariant().Where(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_').ToArray()).TrimStart('-', '_');
        if (name.Length == 0)
        {
            throw new SubModuleFailure($"application name \"{application}\" has no letters or digits; it cannot name a Compose project");
        }

        return name;
    }

    /// <summary><c>up -d --remove-orphans --no-build</c> (+ <c>--pull never</c> on v2); with <paramref name="noRecreate"/> existing containers are kept.</summary>
    public Task UpAsync(string project, string directory, bool noRecreate, CancellationToken ct)
    {
        var args = new List<string> { "up", "-d", "--no-build" };
        args.Add(noRecreate ? "--no-recreate" : "--remove-orphans");
        if (IsV2)
        {
            args.AddRange(["--pull", "never"]);
        }

        return RunAsync(project, directory, args, ct);
    }

    /// <summary><c>down --remove-orphans</c>: containers and networks go, volumes stay.</summary>
    public Task DownAsync(string project, string directory, CancellationToken ct) =>
        RunAsync(project, directory, ["down", "--remove-orphans"], ct);

    /// <summary>The services of the composition in <paramref name="directory"/>, resolved by <c>compose config</c>.</summary>
    public async Task<IReadOnlyList<ServiceDefinition>> ServicesAsync(string project, string directory, CancellationToken ct) =>
        (await CompositionAsync(project, directory, ct).ConfigureAwait(false)).Services;

    /// <summary>The services and the named volumes (top-level <c>volumes:</c> keys) of the composition in <paramref name="directory"/>, resolved by <c>compose config</c>.</summary>
    public async Task<(IReadOnlyList<ServiceDefinition> Services, IReadOnlyList<string> Volumes)> CompositionAsync(string project, string directory, CancellationToken ct)
    {
        var yaml = await RunAsync(project, directory, ["config"], ct, quiet: true).ConfigureAwait(false);
        return (ParseServices(yaml, directory), ParseVolumes(yaml));
    }

    /// <summary>The named volumes a resolved composition declares (top-level <c>volumes:</c> keys, as the compose file names them).</summary>
    public static IReadOnlyList<string> ParseVolumes(string yaml)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlDotNet.Core.YamlException)
        {
            return [];
        }

        return stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode root
               && root.Children.TryGetValue(new YamlScalarNode("volumes"), out var v) && v is YamlMappingNode volumes
            ? volumes.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? string.Empty).Where(k => k.Length > 0).ToArray()
            : [];
    }

    public static IReadOnlyList<ServiceDefinition> ParseServices(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new SubModuleFailure($"cannot read the resolved composition of {source}: {e.Message}");
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root
            || !root.Children.TryGetValue(new YamlScalarNode("services"), out var servicesNode) || servicesNode is not YamlMappingNode services)
        {
            throw new SubModuleFailure($"the composition in {source} defines no services");
        }

        var result = new List<ServiceDefinition>();
        foreach (var (key, value) in services.Children)
        {
            var name = ((YamlScalarNode)key).Value ?? string.Empty;
            string? image = null;
            var replicas = 1;
            if (value is YamlMappingNode svc)
            {
                if (svc.Children.TryGetValue(new YamlScalarNode("image"), out var img) && img is YamlScalarNode s)
                {
                    image = s.Value;
                }

                if (svc.Children.TryGetValue(new YamlScalarNode("scale"), out var scale) && scale is YamlScalarNode sc && int.TryParse(sc.Value, out var n))
                {
                    replicas = n;
                }

                if (svc.Children.TryGetValue(new YamlScalarNode("deploy"), out var deploy) && deploy is YamlMappingNode d
                    && d.Children.TryGetValue(new YamlScalarNode("replicas"), out var rep) && rep is YamlScalarNode r && int.TryParse(r.Value, out var m))
                {
                    replicas = m;
                }
            }

            var node = value as YamlMappingNode;
            string? Scalar(string key) => node is not null && node.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlScalarNode sv ? sv.Value : null;
            result.Add(new ServiceDefinition(name, image, replicas)
            {
                BindSources = node is not null ? BindSources(node) : [],
                Privileged = Scalar("privileged") is { } p && p.Trim().ToLowerInvariant() is "true" or "yes" or "on",
                Pid = Scalar("pid"),
                NetworkMode = Scalar("network_mode"),
            });
        }

        return result;
    }

    /// <summary>
    /// The host paths of a service's bind mounts: Compose v2 resolves them to the long syntax
    /// (<c>type: bind, source: /x</c>), Compose v1 to <c>/x:/y[:mode]</c>.
    /// </summary>
    private static List<string> BindSources(YamlMappingNode service)
    {
        var sources = new List<string>();
        if (!service.Children.TryGetValue(new YamlScalarNode("volumes"), out var v) || v is not YamlSequenceNode volumes)
        {
            return sources;
        }

        foreach (var item in volumes.Children)
        {
            switch (item)
            {
                case YamlScalarNode { Value: { } text } when text.StartsWith('/') || text.StartsWith('.') || text.StartsWith('~'):
                    sources.Add(text.Split(':')[0]);
                    break;
                case YamlMappingNode m when m.Children.TryGetValue(new YamlScalarNode("type"), out var t) && t is YamlScalarNode { Value: "bind" }
                                            && m.Children.TryGetValue(new YamlScalarNode("source"), out var src) && src is YamlScalarNode { Value: { } path }:
                    sources.Add(path);
                    break;
            }
        }

        return sources;
    }

    private async Task<string> RunAsync(string project, string directory, IReadOnlyList<string> args, CancellationToken ct, bool quiet = false)
    {
        if (!Directory.Exists(directory))
        {
            throw new SubModuleFailure($"manifests directory {directory} does not exist");
        }

        var full = Path.GetFullPath(directory);
        var argv = Command.Skip(1).Concat(["--project-directory", full, "--project-name", project]).Concat(args).ToArray();
        var spec = new ProcessSpec(Command[0], argv)
        {
            WorkingDirectory = full,
            Timeout = _settings.ComposeTimeout,
            Environment = new Dictionary<string, string?> { [DockerApiEngine.HostVariable] = _settings.DockerHost, ["COMPOSE_PROJECT_NAME"] = null, ["COMPOSE_FILE"] = null },
            OnStderr = quiet ? null : line => Log.Info($"compose: {line}"),
        };
        var r = await ChildProcess.RunAsync(spec, ct).ConfigureAwait(false);
        if (r.TimedOut)
        {
            throw new SubModuleFailure($"`{ProcessSpec.Display(Command[0], argv)}` did not finish within {_settings.ComposeTimeout.TotalSeconds:0} s (compose_timeout in {_settings.Source})");
        }

        if (r.ExitCode != 0)
        {
            var tail = string.Join(" | ", r.StderrTail.Split('\n').Where(l => l.Trim().Length > 0).TakeLast(5).Select(l => l.Trim()));
            throw new SubModuleFailure($"`{Display} {string.Join(' ', args)}` for project {project} in {full} failed (exit {r.ExitCode}): {tail}");
        }

        return r.Stdout;
    }
}
