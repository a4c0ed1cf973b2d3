using System.Text;
using System.Text.Json.Nodes;
using FakeKubeApi;

namespace Conformance.Kubernetes;

/// <summary>
/// The conformance suite against the <c>k8s</c> sub-module: the Kubernetes API is the in-process fake
/// (<see cref="FakeKubeApiServer"/>, reached through a kubeconfig with an http server and a token),
/// images live in a real, private containerd (<see cref="ContainerdServer"/>, namespace k8s.io).
/// Each application gets its own namespace (named like the app, created by the sub-module); each
/// service is a Deployment of the same name, its volume a PersistentVolumeClaim. Behaviours map to
/// images the fake's controller knows: ExitsAtStart and RestartLoop crash-loop, NeverHealthy runs
/// unready, NoHealthcheck has no readiness probe.
/// </summary>
public sealed class K8sFixture : IOrchestratorFixture
{
    private static readonly Dictionary<string, string> BaseImages = new()
    {
        ["1.0"] = "appmodule/web:1.0",
        ["2.0"] = "appmodule/web:2.0",
        ["nohealth"] = "appmodule/web:nohealth",
        ["exits"] = "appmodule/web:exits",
        ["unhealthy"] = "appmodule/web:unhealthy",
    };

    private readonly TempDir _dir = new("k8s-conformance");
    private readonly FakeKubeApiServer? _api;
    private readonly ContainerdServer _containerd;
    private readonly Lazy<bool> _baseImported;
    private readonly string _config;
    private readonly string _purgeConfig;

    public K8sFixture()
    {
        _containerd = new ContainerdServer();
        var exe = Path.Combine(Repo.BinDir, "k8s");
        if (!File.Exists(exe))
        {
            Unavailable = $"{exe} does not exist: run `build/publish.sh linux-x64` first";
        }
        else if (_containerd.Unavailable is not null)
        {
            Unavailable = _containerd.Unavailable;
        }

        Executable = exe;
        _api = FakeKubeApiServer.StartAsync().GetAwaiter().GetResult();
        var kubeconfig = _api.WriteKubeConfig(_dir.File("kubeconfig"));
        string Config(bool purge) => $"""
            # written by K8sFixture
            kubeconfig = "{kubeconfig}"
            containerd_address = "{_containerd.Address}"
            state_dir = "{_dir.Dir("state")}"
            rollout_timeout_seconds = 5
            poll_interval_ms = 100
            purge_pvcs = {(purge ? "true" : "false")}
            """;
        _config = _dir.Write("mender-app-k8s.conf", Config(false));
        _purgeConfig = _dir.Write("mender-app-k8s-purge.conf", Config(true));
        _baseImported = new Lazy<bool>(() =>
        {
            foreach (var image in BaseImages.Values)
            {
                _containerd.Import(ImageArchives.Of(image));
            }

            return true;
        });
    }

    public FakeKubeApiServer Api => _api!;

    public string Name => "k8s (fake API server, real containerd)";

    public string? Unavailable { get; }

    public string Executable { get; }

    public OrchestratorFeatures Features =>
        OrchestratorFeatures.Images | OrchestratorFeatures.RefusesDeletingImagesInUse | OrchestratorFeatures.DetectsRestartLoops;

    public IReadOnlyDictionary<string, string?> Environment(SubModuleSettings settings) => new Dictionary<string, string?>
    {
        ["MENDER_APP_K8S_CONFIG"] = settings.PurgeVolumes ? _purgeConfig : _config,
        ["KUBECONFIG"] = null,
        ["K8S_NAMESPACE"] = null,
        ["K8S_CTR_ADDRESS"] = null,
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

    public void WriteManifests(AppSpec app, string directory)
    {
        _ = _baseImported.Value;
        foreach (var s in app.Services)
        {
            var url = ImageUrl(app.Name, s);
            _containerd.Tag(BaseImage(s), url);
            switch (s.Behavior)
            {
                case Behavior.ExitsAtStart or Behavior.RestartLoop: Api.CrashingImages.Add(url); break;
                case Behavior.NeverHealthy: Api.UnreadyImages.Add(url); break;
            }

            var probe = s.Behavior == Behavior.NoHealthcheck ? string.Empty
                : "\n        readinessProbe:\n          httpGet:\n            path: /\n            port: 8080";
            var mount = s.Volume is null ? string.Empty
                : $"\n        volumeMounts:\n        - name: {s.Volume}\n          mountPath: /data\n      volumes:\n      - name: {s.Volume}\n        persistentVolumeClaim:\n          claimName: {s.Volume}";
            var yaml = new StringBuilder($"""
                # service {s.Name} of {app.Name}
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
                      containers:
                      - name: web
                        image: {url}
                        ports:
                        - containerPort: 8080{probe}{mount}
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

    public ImageArchive ExportImage(string app, string directory)
    {
        _ = _baseImported.Value;
        var url = $"conformance/{app}:load";
        var file = Path.Combine(directory, "load.img");
        _containerd.Tag(BaseImages["1.0"], url);
        _containerd.CtrOk(ContainerdServer.DefaultNamespace, "images", "export", file, ContainerdServer.Normalize(url));
        _containerd.Remove(url);
        return new ImageArchive(url, file, _containerd.ImageId(BaseImages["1.0"])!);
    }

    public bool HasImage(string url) => _containerd.HasImage(url);

    public string? ImageId(string url) => _containerd.ImageId(url);

    public void RemoveImage(string url) => _containerd.Remove(url);

    private JsonObject? Pod(string app, string service) =>
        Api.List("v1", "Pod", app).FirstOrDefault(p => p["metadata"]?["labels"]?["app.kubernetes.io/name"]?.GetValue<string>() == service);

    public ServiceObservation? Observe(string app, string service)
    {
        var pod = Pod(app, service);
        if (pod is null)
        {
            return null;
        }

        var statuses = pod["status"]?["containerStatuses"] as JsonArray ?? [];
        var running = pod["status"]?["phase"]?.GetValue<string>() == "Running" && statuses.Count > 0 && statuses.All(c => c?["state"]?["running"] is not null);
        var container = pod["spec"]!["containers"]![0]!;
        string? health = container["readinessProbe"] is null ? null
            : statuses.All(c => c?["ready"]?.GetValue<bool>() == true) ? "healthy" : "unhealthy";
        return new ServiceObservation(running, health, container["image"]!.GetValue<string>());
    }

    private string Claim(string app, string service)
    {
        Assert.True(Observe(app, service) is { Running: true }, $"{service} must run to reach its volume");
        var deployment = Api.Get("apps/v1", "Deployment", app, service) ?? throw new InvalidOperationException($"no deployment {app}/{service}");
        return deployment["spec"]!["template"]!["spec"]!["volumes"]![0]!["persistentVolumeClaim"]!["claimName"]!.GetValue<string>();
    }

    public void WriteVolumeMarker(string app, string service, string marker) => Api.WriteVolume(app, Claim(app, service), marker);

    public string? ReadVolumeMarker(string app, string service) => Api.ReadVolume(app, Claim(app, service));

    public bool VolumeExists(string app, string volume) => Api.Get("v1", "PersistentVolumeClaim", app, volume) is not null;

    public IReadOnlyList<string> FailureTexts(Behavior behavior) => behavior switch
    {
        Behavior.ExitsAtStart or Behavior.RestartLoop => ["CrashLoopBackOff", "exit code 1"],
        Behavior.NeverHealthy => ["not ready"],
        _ => [],
    };

    public void Cleanup(string app)
    {
        try
        {
            Api.DeleteNamespace(app);
            foreach (var name in _containerd.Images().Keys.Where(n => n.StartsWith($"docker.io/conformance/{app}:", StringComparison.Ordinal)))
            {
                _containerd.Remove(name);
            }
        }
        catch (Exception)
        {
            // never throws
        }
    }

    public void Dispose()
    {
        _api?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _containerd.Dispose();
        _dir.Dispose();
    }
}

public sealed class K8sConformance(K8sFixture f) : SubModuleConformance<K8sFixture>(f);
