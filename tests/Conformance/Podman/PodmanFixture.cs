using System.Text;
using System.Text.Json.Nodes;

namespace Conformance.Podman;

/// <summary>
/// The conformance suite against the <c>podman</c> sub-module on the real podman (Debian 12's 4.3): one private,
/// rootful podman per test class (<see cref="PrivatePodman"/>: own store, run root and containers.conf), the test
/// images copied in from the dev engine once. The manifests are the k8s fixture's kind of Kubernetes YAML: each
/// service a Deployment (a Pod with restartPolicy Never for <see cref="Behavior.ExitsAtStart"/>) with a Service
/// next to it, its volume a PersistentVolumeClaim. Health is a livenessProbe (podman maps it to a healthcheck; it
/// runs no readinessProbe) that fetches the page with busybox wget, which the test images have.
/// </summary>
public sealed class PodmanFixture : IOrchestratorFixture
{
    private static readonly Dictionary<string, string> BaseImages = new()
    {
        ["1.0"] = "appmodule/web:1.0",
        ["2.0"] = "appmodule/web:2.0",
        ["nohealth"] = "appmodule/web:nohealth",
        ["exits"] = "appmodule/web:exits",
        ["unhealthy"] = "appmodule/web:unhealthy",
    };

    private readonly TempDir _dir = new("podman-conformance");
    private readonly PrivatePodman? _podman;
    private readonly Lazy<bool> _baseLoaded;
    private readonly string _config = string.Empty;
    private readonly string _purgeConfig = string.Empty;

    public PodmanFixture()
    {
        Executable = Path.Combine(Repo.BinDir, "podman");
        try
        {
            _podman = new PrivatePodman();
        }
        catch (Exception e) when (e is SkipException or MissingComponentException)
        {
            Unavailable = e.Message;
        }

        if (Unavailable is null && !File.Exists(Executable))
        {
            Unavailable = $"{Executable} does not exist: run `build/publish.sh linux-x64` first";
        }

        if (_podman is not null)
        {
            _config = _dir.Write("mender-app-podman.conf", DeviceConfig(_dir.Dir("state")));
            _purgeConfig = _dir.Write("mender-app-podman-purge.conf", DeviceConfig(_dir.Dir("state"), purge: true));
        }

        _baseLoaded = new Lazy<bool>(() =>
        {
            Podman.CopyImages([.. BaseImages.Values]);
            return true;
        });
    }

    /// <summary>
    /// The sub-module's config for this private podman: its CLI with the store's global options, its containers.conf
    /// (through containers_conf, not the environment), short timeouts. <paramref name="podmanCommand"/> replaces the CLI
    /// (e.g. a wrapper).
    /// </summary>
    public string DeviceConfig(string stateDir, bool purge = false, string? podmanCommand = null) => $"""
        # written by PodmanFixture
        podman_command = "{podmanCommand ?? Podman.Path}"
        podman_args = [{string.Join(", ", Podman.GlobalArgs.Select(a => $"\"{a}\""))}]
        containers_conf = "{Podman.ContainersConf}"
        state_dir = "{stateDir}"
        rollout_timeout_seconds = 120
        poll_interval_ms = 200
        stop_timeout_seconds = 1
        purge_volumes = {(purge ? "true" : "false")}
        """;

    public PrivatePodman Podman => _podman ?? throw new InvalidOperationException(Unavailable);

    public string Name => "podman (kube play, private rootful store)";

    public string? Unavailable { get; }

    public string Executable { get; }

    public OrchestratorFeatures Features =>
        OrchestratorFeatures.Images | OrchestratorFeatures.RefusesDeletingImagesInUse | OrchestratorFeatures.DetectsRestartLoops | OrchestratorFeatures.PrintsLogTail;

    public IReadOnlyDictionary<string, string?> Environment(SubModuleSettings settings) => new Dictionary<string, string?>
    {
        ["MENDER_APP_PODMAN_CONF"] = settings.PurgeVolumes ? _purgeConfig : _config,
        // The private podman's containers.conf comes through the device config (containers_conf), as on a device whose Mender client has no CONTAINERS_CONF.
        ["CONTAINERS_CONF"] = null,
        ["MENDER_APP_UPDATE_MODULE_PLATFORM"] = null,
    };

    private static string Tag(ServiceSpec s) => s.Behavior switch
    {
        Behavior.Healthy => "web-" + s.Version,
        Behavior.NoHealthcheck => "nohealth",
        Behavior.ExitsAtStart or Behavior.RestartLoop => "exits",
        _ => "unhealthy",
    };

    private static string BaseImage(ServiceSpec s) => BaseImages[s.Behavior == Behavior.Healthy ? s.Version : Tag(s)];

    public string ImageUrl(string app, ServiceSpec service) => $"conformance/{app}:{Tag(service)}";

    /// <summary>Makes sure the test images are in the private store (once per fixture).</summary>
    public void LoadTestImages() => _ = _baseLoaded.Value;

    public void WriteManifests(AppSpec app, string directory)
    {
        LoadTestImages();
        foreach (var s in app.Services)
        {
            var url = ImageUrl(app.Name, s);
            Podman.PodmanOk("tag", BaseImage(s), url);
            var probe = s.Behavior switch
            {
                Behavior.Healthy => Probe("http://127.0.0.1:8080/", 3),
                Behavior.NeverHealthy => Probe("http://127.0.0.1:9999/", 2),
                _ => string.Empty,
            };
            var mount = s.Volume is null ? string.Empty
                : $"\n  volumeMounts:\n  - name: {s.Volume}\n    mountPath: /data\nvolumes:\n- name: {s.Volume}\n  persistentVolumeClaim:\n    claimName: {s.Volume}";
            var pod = $"""
                containers:
                - name: web
                  image: {url}
                  ports:
                  - containerPort: 8080{probe}{mount}
                """;
            var workload = s.Behavior == Behavior.ExitsAtStart
                ? $"""
                  apiVersion: v1
                  kind: Pod
                  metadata:
                    name: {s.Name}
                    namespace: {app.Name}
                    labels:
                      app.kubernetes.io/name: {s.Name}
                  spec:
                    restartPolicy: Never
                    {Indent(pod, 2)}
                  """
                : $"""
                  apiVersion: apps/v1
                  kind: Deployment
                  metadata:
                    name: {s.Name}
                    namespace: {app.Name}
                  spec:
                    selector:
                      matchLabels:
                        app.kubernetes.io/name: {s.Name}
                    template:
                      metadata:
                        labels:
                          app.kubernetes.io/name: {s.Name}
                      spec:
                        {Indent(pod, 6)}
                  """;
            var yaml = new StringBuilder($"""
                # service {s.Name} of {app.Name}
                {workload}
                ---
                apiVersion: v1
                kind: Service
                metadata:
                  name: {s.Name}
                  namespace: {app.Name}
                spec:
                  selector:
                    app.kubernetes.io/name: {s.Name}
                  ports:
                  - port: 80
                    targetPort: 8080

                """);
            File.WriteAllText(Path.Combine(directory, $"{s.Name}.yaml"), yaml.ToString());
            if (s.Volume is not null)
            {
                // In a subdirectory, so that every rollout reads manifests recursively.
                Directory.CreateDirectory(Path.Combine(directory, "volumes"));
                File.WriteAllText(Path.Combine(directory, "volumes", $"{s.Volume}.yml"), $"""
                    apiVersion: v1
                    kind: PersistentVolumeClaim
                    metadata:
                      name: {s.Volume}
                      namespace: {app.Name}
                    spec:
                      accessModes: [ReadWriteOnce]
                      resources:
                        requests:
                          storage: 16Mi

                    """);
            }
        }
    }

    private static string Probe(string url, int failureThreshold) =>
        $"\n  livenessProbe:\n    exec:\n      command: [wget, -q, -O, /dev/null, \"{url}\"]\n    periodSeconds: 1\n    failureThreshold: {failureThreshold}";

    private static string Indent(string text, int spaces) =>
        string.Join('\n', text.Split('\n').Select((l, i) => i == 0 || l.Length == 0 ? l : new string(' ', spaces) + l));

    public ImageArchive ExportImage(string app, string directory)
    {
        LoadTestImages();
        var url = $"conformance/{app}:load";
        var file = Path.Combine(directory, "load.img");
        Podman.PodmanOk("tag", BaseImages["1.0"], url);
        Podman.PodmanOk("save", "--format", "docker-archive", "-o", file, url);
        Podman.PodmanOk("untag", BaseImages["1.0"], url);
        return new ImageArchive(url, file, Podman.ImageId(BaseImages["1.0"])!);
    }

    public bool HasImage(string url) => Podman.ImageId(url) is not null;

    public string? ImageId(string url) => Podman.ImageId(url);

    public void RemoveImage(string url) => Podman.Podman("rmi", url);

    private JsonObject? Container(string app, string service) =>
        Podman.Containers($"app.mender.io/application={app}")
            .FirstOrDefault(c => c["Config"]?["Labels"]?["app.kubernetes.io/name"]?.GetValue<string>() == service);

    public ServiceObservation? Observe(string app, string service)
    {
        var c = Container(app, service);
        if (c is null)
        {
            return null;
        }

        var running = c["State"]?["Status"]?.GetValue<string>() == "running";
        var health = c["Config"]?["Healthcheck"]?["Test"] is not JsonArray test ? null
            : running && CheckPasses(c["Id"]!.GetValue<string>(), test.Select(t => t!.GetValue<string>()).ToList()) ? "healthy" : "unhealthy";
        var image = c["ImageName"]?.GetValue<string>() ?? string.Empty;
        return new ServiceObservation(running, health, image.StartsWith("localhost/", StringComparison.Ordinal) ? image["localhost/".Length..] : image);
    }

    /// <summary>
    /// Runs the container's healthcheck command now, as the sub-module does (podman's healthcheck timers need systemd,
    /// and `podman healthcheck run` would apply kube play's on-failure action).
    /// </summary>
    private bool CheckPasses(string container, IReadOnlyList<string> test)
    {
        string[] command = test[0] == "CMD-SHELL" ? ["sh", "-c", string.Join(' ', test.Skip(1))] : [.. test.Skip(test[0] == "CMD" ? 1 : 0)];
        return Podman.Podman(["exec", container, .. command]).ExitCode == 0;
    }

    /// <summary>The running container of a service (its ID), for `podman exec`.</summary>
    public string RunningContainer(string app, string service)
    {
        var c = Container(app, service);
        Assert.True(c?["State"]?["Status"]?.GetValue<string>() == "running", $"{service} of {app} must run to reach its volume");
        return c!["Id"]!.GetValue<string>();
    }

    public void WriteVolumeMarker(string app, string service, string marker) =>
        Podman.PodmanOk("exec", RunningContainer(app, service), "sh", "-c", $"echo {marker} > /data/marker");

    public string? ReadVolumeMarker(string app, string service)
    {
        var r = Podman.Podman("exec", RunningContainer(app, service), "cat", "/data/marker");
        return r.ExitCode == 0 ? r.Stdout.Trim() : null;
    }

    /// <summary>The podman volume of the claim (the sub-module names it &lt;app&gt;-&lt;claim&gt;, see submodules/Podman/README.md).</summary>
    public bool VolumeExists(string app, string volume) => Podman.Podman("volume", "exists", $"{app}-{volume}").ExitCode == 0;

    public IReadOnlyList<string> FailureTexts(Behavior behavior) => behavior switch
    {
        Behavior.ExitsAtStart => ["exited with code 3", "failing on purpose"],
        Behavior.RestartLoop => ["restarted", "failing on purpose"],
        Behavior.NeverHealthy => ["unhealthy"],
        _ => [],
    };

    public void Cleanup(string app)
    {
        if (_podman is null)
        {
            return;
        }

        try
        {
            var pods = _podman.Podman("pod", "ps", "-q", "--filter", $"label=app.mender.io/application={app}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (pods.Length > 0)
            {
                _podman.Podman(["pod", "rm", "-f", "-t", "0", .. pods]);
            }

            var volumes = _podman.Podman("volume", "ls", "-q", "--filter", $"label=app.mender.io/application={app}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (volumes.Length > 0)
            {
                _podman.Podman(["volume", "rm", "-f", .. volumes]);
            }

            var images = _podman.Podman("images", "--format", "{{.Repository}}:{{.Tag}}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(i => i.StartsWith($"localhost/conformance/{app}:", StringComparison.Ordinal)).ToArray();
            if (images.Length > 0)
            {
                _podman.Podman(["rmi", "-f", .. images]);
            }
        }
        catch (Exception)
        {
            // never throws
        }
    }

    public void Dispose()
    {
        _podman?.Dispose();
        _dir.Dispose();
    }
}

public sealed class PodmanConformance(PodmanFixture f) : SubModuleConformance<PodmanFixture>(f);
