using FakeKubeApi;

namespace Kubernetes.Tests;

/// <summary>One fake API server (and, on demand, one private containerd) for the tests of a collection.</summary>
public sealed class KubeFixture : IDisposable
{
    private readonly Lazy<ContainerdServer> _containerd = new(() => new ContainerdServer());

    public KubeFixture()
    {
        Api = FakeKubeApiServer.StartAsync().GetAwaiter().GetResult();
        KubeConfig = Api.WriteKubeConfig(Dir.File("kubeconfig"));
    }

    public TempDir Dir { get; } = new("k8s-tests");

    public FakeKubeApiServer Api { get; }

    public string KubeConfig { get; }

    public ContainerdServer Containerd => _containerd.Value;

    public void Dispose()
    {
        Api.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (_containerd.IsValueCreated)
        {
            _containerd.Value.Dispose();
        }

        Dir.Dispose();
    }
}

[CollectionDefinition("kube")]
public sealed class KubeCollection : ICollectionFixture<KubeFixture>;

/// <summary>
/// One test's view: a unique application (and namespace of the same name), a config file, and
/// a way to run the published <c>k8s</c> executable against the fake API server.
/// </summary>
public sealed class K8sRun : IDisposable
{
    private readonly FakeKubeApiServer _api;

    public K8sRun(KubeFixture fx, string prefix, string extraConfig = "")
        : this(fx.Api, fx.KubeConfig, prefix, extraConfig)
    {
    }

    /// <summary>Against any fake API server with its kubeconfig (e.g. the HTTPS one the kubectl suite uses).</summary>
    public K8sRun(FakeKubeApiServer api, string kubeConfig, string prefix, string extraConfig = "")
    {
        _api = api;
        App = Unique.Name(prefix);
        Dir = new TempDir("k8s-" + prefix);
        var settings = new Dictionary<string, string>
        {
            ["kubeconfig"] = $"\"{kubeConfig}\"",
            ["state_dir"] = $"\"{Dir.Dir("state")}\"",
            ["rollout_timeout_seconds"] = "3",
            ["poll_interval_ms"] = "50",
            ["containerd_address"] = $"\"{Dir.File("no-containerd.sock")}\"",
        };
        foreach (var line in extraConfig.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = line.Split('=', 2, StringSplitOptions.TrimEntries);
            settings[kv[0]] = kv[1];
        }

        ConfigPath = Dir.Write("mender-app-k8s.conf", string.Concat(settings.Select(kv => $"{kv.Key} = {kv.Value}\n")));
    }

    public string App { get; }

    /// <summary>The namespace the tests put the application's objects in (same as the app name).</summary>
    public string Ns => App;

    public TempDir Dir { get; }

    public string ConfigPath { get; }

    public Dictionary<string, string?> Env { get; } = new()
    {
        ["KUBECONFIG"] = null,
        ["K8S_NAMESPACE"] = null,
        ["K8S_CTR_ADDRESS"] = null,
        ["MENDER_APP_UPDATE_MODULE_PLATFORM"] = null,
    };

    public CmdResult Run(params string[] args)
    {
        var env = new Dictionary<string, string?>(Env) { ["MENDER_APP_K8S_CONFIG"] = ConfigPath };
        return Cmd.Run(Repo.Binary("k8s"), args, env, timeout: TimeSpan.FromMinutes(2));
    }

    public CmdResult Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, $"k8s {string.Join(' ', args)} should succeed: {r}");
        return r;
    }

    public CmdResult Fails(int exitCode, params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == exitCode, $"k8s {string.Join(' ', args)} should exit {exitCode}: {r}");
        return r;
    }

    /// <summary>Writes manifest files (relative path → YAML) into a new directory.</summary>
    public string Manifests(string label, params (string File, string Yaml)[] files)
    {
        var dir = Dir.Dir(label);
        foreach (var (file, yaml) in files)
        {
            Dir.Write(Path.Combine(label, file), yaml);
        }

        return dir;
    }

    public string Deployment(string name, int? replicas = 1, string image = "appmodule/web:1.0", string extraLabels = "") => $"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}
          namespace: {Ns}{extraLabels}
        spec:
        {(replicas is null ? string.Empty : $"  replicas: {replicas}")}
          selector:
            matchLabels:
              app: {name}
          template:
            metadata:
              labels:
                app: {name}
            spec:
              containers:
              - name: main
                image: {image}

        """;

    public void Dispose()
    {
        _api.DeleteNamespace(Ns);
        Dir.Dispose();
    }
}
