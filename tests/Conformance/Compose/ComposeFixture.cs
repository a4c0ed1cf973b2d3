using System.Text;

namespace Conformance.Compose;

/// <summary>Compose v1: /usr/bin/docker-compose 1.29.</summary>
public sealed class ComposeV1Fixture() : ComposeFixture("Compose v1", "/usr/bin/docker-compose");

/// <summary>Compose v2: the CLI plugin through /usr/bin/docker (2.26).</summary>
public sealed class ComposeV2Fixture() : ComposeFixture("Compose v2", "/usr/bin/docker compose");

public sealed class ComposeV1Conformance(ComposeV1Fixture f) : SubModuleConformance<ComposeV1Fixture>(f);

public sealed class ComposeV2Conformance(ComposeV2Fixture f) : SubModuleConformance<ComposeV2Fixture>(f);

/// <summary>
/// The docker-compose sub-module on the session's engine, with the Compose CLI chosen through the
/// sub-module's own config file (<c>MENDER_APP_DOCKER_COMPOSE_CONF</c>). Apps use private tags
/// <c>conformance/&lt;app&gt;:&lt;kind&gt;</c> of the test images from build/test-images.sh.
/// </summary>
public abstract class ComposeFixture : IOrchestratorFixture
{
    private const string ProjectLabel = "com.docker.compose.project";
    private readonly TempDir _dir = new("compose-fixture");
    private readonly string _composeCommand;
    private readonly Lock _gate = new();

    protected ComposeFixture(string version, string composeCommand)
    {
        Name = $"docker-compose ({version})";
        _composeCommand = composeCommand;
        StateDir = _dir.Dir("state");
        Unavailable = Probe();
    }

    public string Name { get; }

    public string? Unavailable { get; }

    public string Executable => Repo.Binary("docker-compose");

    /// <summary>The sub-module's state_dir in this fixture's config.</summary>
    public string StateDir { get; }

    public string ComposeCommand => _composeCommand;

    public OrchestratorFeatures Features =>
        OrchestratorFeatures.Images | OrchestratorFeatures.RefusesDeletingImagesInUse | OrchestratorFeatures.DetectsRestartLoops | OrchestratorFeatures.PrintsLogTail;

    public IReadOnlyDictionary<string, string?> Environment(SubModuleSettings settings) =>
        new Dictionary<string, string?> { ["MENDER_APP_DOCKER_COMPOSE_CONF"] = ConfigFile(settings), ["OPTIONS"] = null };

    /// <summary>Writes (once) the sub-module config for these settings and returns its path.</summary>
    public string ConfigFile(SubModuleSettings settings)
    {
        var name = settings.PurgeVolumes ? "purge-volumes.conf" : "default.conf";
        lock (_gate)
        {
            var path = _dir.File(name);
            if (!File.Exists(path))
            {
                _dir.Write(name, $"""
                    # written by the conformance fixture
                    docker_compose_command = "{_composeCommand}"
                    state_dir = "{StateDir}"
                    rollout_timeout = 60
                    soak_seconds = 2
                    log_tail_lines = 10
                    purge_volumes = {(settings.PurgeVolumes ? "true" : "false")}
                    """);
            }

            return path;
        }
    }

    public void WriteManifests(AppSpec app, string directory)
    {
        var y = new StringBuilder("version: \"2.4\"\nservices:\n");
        var volumes = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var s in app.Services)
        {
            var url = ImageUrl(app.Name, s);
            DockerEngine.DockerOk("tag", SourceImage(s), url);
            y.Append($"  {s.Name}:\n    image: {url}\n");
            if (s.Behavior == Behavior.RestartLoop)
            {
                y.Append("    restart: always\n");
            }

            if (s.Volume is not null)
            {
                y.Append($"    volumes:\n      - {s.Volume}:/data\n");
                volumes.Add(s.Volume);
            }
        }

        if (volumes.Count > 0)
        {
            y.Append("volumes:\n");
            foreach (var v in volumes)
            {
                y.Append($"  {v}: {{}}\n");
            }
        }

        File.WriteAllText(Path.Combine(directory, "docker-compose.yml"), y.ToString());
    }

    public string ImageUrl(string app, ServiceSpec service) => $"conformance/{app}:{Kind(service)}";

    public ImageArchive ExportImage(string app, string directory)
    {
        var url = $"conformance/{app}:load";
        DockerEngine.DockerOk("tag", "appmodule/web:1.0", url);
        var id = DockerEngine.ImageId(url)!;
        var file = Path.Combine(directory, "image.tar");
        DockerEngine.DockerOk("image", "save", "-o", file, url);
        DockerEngine.DockerOk("image", "rm", url);
        return new ImageArchive(url, file, id);
    }

    public bool HasImage(string url) => DockerEngine.ImageId(url) is not null;

    public string? ImageId(string url) => DockerEngine.ImageId(url);

    public void RemoveImage(string url) => DockerEngine.Docker("image", "rm", url);

    public ServiceObservation? Observe(string app, string service)
    {
        var id = ContainerOf(app, service);
        if (id is null)
        {
            return null;
        }

        var r = DockerEngine.Docker("inspect", "--format", "{{.State.Running}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Config.Image}}", id);
        if (r.ExitCode != 0)
        {
            return null;
        }

        var p = r.Stdout.Trim().Split('|');
        return new ServiceObservation(p[0] == "true", p[1].Length == 0 ? null : p[1], p[2]);
    }

    public void WriteVolumeMarker(string app, string service, string marker)
    {
        var id = ContainerOf(app, service) ?? throw new InvalidOperationException($"{service} of {app} has no container");
        DockerEngine.DockerOk("exec", id, "sh", "-c", "echo \"$0\" > /data/marker", marker);
    }

    public string? ReadVolumeMarker(string app, string service)
    {
        var id = ContainerOf(app, service) ?? throw new InvalidOperationException($"{service} of {app} has no container");
        var r = DockerEngine.Docker("exec", id, "cat", "/data/marker");
        return r.ExitCode == 0 ? r.Stdout.Trim() : null;
    }

    public bool VolumeExists(string app, string volume) => DockerEngine.Docker("volume", "inspect", $"{app}_{volume}").ExitCode == 0;

    public IReadOnlyList<string> FailureTexts(Behavior behavior) => behavior switch
    {
        Behavior.ExitsAtStart => ["exited", "failing on purpose"],
        Behavior.RestartLoop => ["restart", "failing on purpose"],
        Behavior.NeverHealthy => ["unhealthy"],
        _ => [],
    };

    public void Cleanup(string app)
    {
        try
        {
            var label = $"label={ProjectLabel}={app}";
            var containers = DockerEngine.Docker("ps", "-aq", "--filter", label).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (containers.Length > 0)
            {
                DockerEngine.Docker(["rm", "-f", .. containers]);
            }

            foreach (var n in DockerEngine.Docker("network", "ls", "-q", "--filter", label).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                DockerEngine.Docker("network", "rm", n);
            }

            foreach (var v in DockerEngine.Docker("volume", "ls", "-q", "--filter", label).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                DockerEngine.Docker("volume", "rm", "-f", v);
            }

            var tags = DockerEngine.Docker("images", "--format", "{{.Repository}}:{{.Tag}}", $"conformance/{app}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (tags.Length > 0)
            {
                DockerEngine.Docker(["image", "rm", .. tags]);
            }

            var state = Path.Combine(StateDir, app);
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"cleanup of {app} incomplete: {e.Message}");
        }
    }

    public void Dispose() => _dir.Dispose();

    private static string? ContainerOf(string app, string service)
    {
        var r = DockerEngine.Docker("ps", "-aq", "--filter", $"label={ProjectLabel}={app}", "--filter", $"label=com.docker.compose.service={service}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
    }

    private static string Kind(ServiceSpec s) => s.Behavior switch
    {
        Behavior.Healthy => "web-" + s.Version,
        Behavior.NoHealthcheck => "nohealth",
        Behavior.ExitsAtStart or Behavior.RestartLoop => "exits",
        Behavior.NeverHealthy => "unhealthy",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    private static string SourceImage(ServiceSpec s) => s.Behavior switch
    {
        Behavior.Healthy => "appmodule/web:" + s.Version,
        Behavior.NoHealthcheck => "appmodule/web:nohealth",
        Behavior.ExitsAtStart or Behavior.RestartLoop => "appmodule/web:exits",
        Behavior.NeverHealthy => "appmodule/web:unhealthy",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    private string? Probe()
    {
        try
        {
            DockerEngine.RequireImages();
        }
        catch (Exception e) when (e is SkipException or MissingComponentException)
        {
            return e.Message;
        }

        var parts = _composeCommand.Split(' ');
        var r = Cmd.Run(parts[0], [.. parts.Skip(1), "version", "--short"]);
        return r.ExitCode == 0 ? null : $"{_composeCommand} does not work here ({r.Stderr.Trim()}); `make deps` installs Compose v1 and the v2 plugin";
    }
}
