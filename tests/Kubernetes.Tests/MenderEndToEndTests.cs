namespace Kubernetes.Tests;

/// <summary>
/// An app artifact with <c>orchestrator: k8s</c> through the real Mender client 3.4, our <c>app</c>
/// Update Module and the <c>k8s</c> sub-module, against the fake API server and the real containerd.
/// </summary>
[Collection("kube")]
public sealed class MenderEndToEndTests(KubeFixture fx)
{
    private sealed class Rig : IDisposable
    {
        private readonly TempDir _root = new("k8s-e2e");

        /// <param name="soakSeconds">`app`'s soak; null: the device default.</param>
        public Rig(KubeFixture fx, string app, int? soakSeconds = 0)
        {
            MenderClient.Require();
            fx.Containerd.Require();
            Client = new MenderClient();
            var store = _root.Dir("store");
            var subModules = _root.Dir("submodules");
            File.CreateSymbolicLink(Path.Combine(subModules, "k8s"), Repo.Binary("k8s"));
            Client.AddModule("app", Repo.Binary("app"));
            Client.WriteEtc("mender-app.conf", $"persistent_store = \"{store}\"\nsubmodules_dir = \"{subModules}\"\nhealth_timeout_seconds = 5\nhealth_poll_seconds = 1\n{(soakSeconds is { } soak ? $"soak_seconds = {soak}\n" : string.Empty)}");

            // The sub-module reads its default config path, /etc/mender/mender-app-k8s.conf, inside the client's namespace.
            Client.WriteEtc("mender-app-k8s.conf", $"""
                # k8s sub-module, end-to-end test
                kubeconfig = "{fx.KubeConfig}"
                containerd_address = "{fx.Containerd.Address}"
                state_dir = "{_root.Dir("k8s-state")}"
                rollout_timeout_seconds = 5
                poll_interval_ms = 100
                """);
            Client.Environment["MENDER_APP_K8S_CONFIG"] = null;
            Client.Environment["KUBECONFIG"] = null;
            Artifacts = _root.Dir("artifacts");
            App = app;
        }

        public MenderClient Client { get; }

        public string Artifacts { get; }

        public string App { get; }

        public CmdResult Install(string name, string image, string imageArchive, string? imageId = null)
        {
            var id = (imageId ?? DockerEngine.ImageId(image)!).Replace("sha256:", string.Empty, StringComparison.Ordinal);
            var manifests = new Dictionary<string, string>
            {
                ["web.yaml"] = $"""
                    apiVersion: apps/v1
                    kind: Deployment
                    metadata:
                      name: web
                    spec:
                      replicas: 2
                      selector:
                        matchLabels:
                          app: web
                      template:
                        metadata:
                          labels:
                            app: web
                        spec:
                          containers:
                          - name: web
                            image: {image}

                    """,
                ["config/settings.yaml"] = $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  version: \"{name}\"\n",
            };
            var spec = new AppArtifactSpec(name, App, [new AppImage(image, imageArchive, id)], manifests, Orchestrator: "k8s",
                Env: new Dictionary<string, string> { ["K8S_NAMESPACE"] = App });
            return Client.Install(AppArtifacts.WriteMender(spec, Artifacts));
        }

        public void Dispose()
        {
            Client.Dispose();
            _root.Dispose();
        }
    }

    private string? WebImage(string ns) =>
        fx.Api.Get("apps/v1", "Deployment", ns, "web")?["spec"]?["template"]?["spec"]?["containers"]?[0]?["image"]?.GetValue<string>();

    [SkippableFact]
    public void An_orchestrator_k8s_artifact_installs_updates_and_rolls_back_through_the_mender_client()
    {
        var app = Unique.Name("e2e");
        using var rig = new Rig(fx, app);
        try
        {
            // v1: images into containerd, objects into the artifact's K8S_NAMESPACE, committed.
            var v1 = rig.Install("k8s-app-v1", "appmodule/web:1.0", ImageArchives.Of("appmodule/web:1.0"));
            Assert.True(v1.ExitCode == 0, v1.ToString());
            Assert.True(rig.Client.Commit().ExitCode == 0);
            Assert.Equal("k8s-app-v1", rig.Client.ShowArtifact());
            Assert.Equal("appmodule/web:1.0", WebImage(app));
            Assert.Equal(DockerEngine.ImageId("appmodule/web:1.0"), fx.Containerd.ImageId("appmodule/web:1.0"));
            Assert.Equal(2, fx.Api.List("v1", "Pod", app).Count);
            Assert.Equal(app, fx.Api.Get("v1", "ConfigMap", app, "settings")!["metadata"]!["labels"]!["app.mender.io/application"]!.GetValue<string>());

            // v2: a new image; the update replaces the workload.
            var v2 = rig.Install("k8s-app-v2", "appmodule/web:2.0", ImageArchives.Of("appmodule/web:2.0"));
            Assert.True(v2.ExitCode == 0, v2.ToString());
            Assert.True(rig.Client.Commit().ExitCode == 0);
            Assert.Equal("appmodule/web:2.0", WebImage(app));
            Assert.Equal("k8s-app-v2", fx.Api.Get("v1", "ConfigMap", app, "settings")!["data"]!["version"]!.GetValue<string>());

            // v3 crash-loops: the install fails and the client ends on v2, running again.
            fx.Api.CrashingImages.Add("appmodule/web:exits");
            var v3 = rig.Install("k8s-app-v3", "appmodule/web:exits", ImageArchives.Of("appmodule/web:exits"));
            Assert.NotEqual(0, v3.ExitCode);
            Assert.Contains("CrashLoopBackOff", v3.Stdout + v3.Stderr, StringComparison.Ordinal);
            Assert.Equal("k8s-app-v2", rig.Client.ShowArtifact());
            Assert.Equal("appmodule/web:2.0", WebImage(app));
            Assert.Equal("k8s-app-v2", fx.Api.Get("v1", "ConfigMap", app, "settings")!["data"]!["version"]!.GetValue<string>());
            Assert.Equal(2, fx.Api.List("v1", "Pod", app).Count);
        }
        finally
        {
            fx.Api.CrashingImages.Remove("appmodule/web:exits");
            fx.Api.DeleteNamespace(app);
        }
    }

    [SkippableFact]
    public void A_container_that_exits_every_3_s_fails_the_install_by_its_restart_count_and_is_rolled_back_through_the_mender_client()
    {
        var app = Unique.Name("e2e");
        using var rig = new Rig(fx, app, soakSeconds: null); // the device's default soak
        try
        {
            var v1 = rig.Install("k8s-app-v1", "appmodule/web:1.0", ImageArchives.Of("appmodule/web:1.0"));
            Assert.True(v1.ExitCode == 0, v1.ToString());
            Assert.True(rig.Client.Commit().ExitCode == 0);

            // Its pods run and are Ready at first (ROLLOUT succeeds); 3 s later the container exits and the kubelet restarts it.
            fx.Api.ExitingImages["appmodule/web:nohealth"] = TimeSpan.FromSeconds(3);
            var loop = rig.Install("k8s-app-loop", "appmodule/web:nohealth", ImageArchives.Of("appmodule/web:nohealth"));
            Assert.NotEqual(0, loop.ExitCode);
            var log = loop.Stdout + loop.Stderr;
            Assert.True(log.Contains("restarted", StringComparison.Ordinal), log);
            Assert.Matches("container web restarted [0-9]+ time\\(s\\) since the rollout \\(restart count [0-9]+, last exit code 1", log);

            // Rolled back: v1's objects and pods again, none of them restarting; the client names v1.
            Assert.Equal("k8s-app-v1", rig.Client.ShowArtifact());
            Assert.Equal("appmodule/web:1.0", WebImage(app));
            Assert.Equal("k8s-app-v1", fx.Api.Get("v1", "ConfigMap", app, "settings")!["data"]!["version"]!.GetValue<string>());
            var pods = fx.Api.List("v1", "Pod", app);
            Assert.Equal(2, pods.Count);
            Assert.All(pods, p =>
            {
                var c = p["status"]!["containerStatuses"]![0]!;
                Assert.Equal("appmodule/web:1.0", c["image"]!.GetValue<string>());
                Assert.Equal(0, c["restartCount"]!.GetValue<long>());
            });
        }
        finally
        {
            fx.Api.ExitingImages.Remove("appmodule/web:nohealth");
            fx.Api.DeleteNamespace(app);
        }
    }
}
