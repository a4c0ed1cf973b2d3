namespace Conformance.Podman;

/// <summary>The private podman (and its copied test images) that <see cref="PodmanTests"/> and <see cref="PodmanEndToEndTests"/> share.</summary>
[CollectionDefinition("podman")]
public sealed class PodmanCollection : ICollectionFixture<PodmanFixture>;

/// <summary>
/// An app artifact with <c>orchestrator: podman</c> through the real Mender client 3.4 (isolated per test:
/// <see cref="MenderClient"/>), our <c>app</c> and the <c>podman</c> sub-module (both published AOT binaries), on the
/// collection's private podman: a Deployment whose PersistentVolumeClaim keeps its data through every step.
/// </summary>
[Collection("podman")]
public sealed class PodmanEndToEndTests(PodmanFixture fx)
{
    private sealed class Rig : IDisposable
    {
        private readonly TempDir _root = new("podman-e2e");
        private readonly PodmanFixture _fx;

        public Rig(PodmanFixture fx, string app)
        {
            Requires.Component(fx.Name, fx.Unavailable);
            MenderClient.Require();
            _fx = fx;
            App = app;
            Client = new MenderClient();
            var subModules = _root.Dir("submodules");
            File.CreateSymbolicLink(Path.Combine(subModules, "podman"), Repo.Binary("podman"));
            Client.AddModule("app", Repo.Binary("app"));
            Client.WriteEtc("mender-app.conf", $"persistent_store = \"{_root.Dir("store")}\"\nsubmodules_dir = \"{subModules}\"\nhealth_timeout_seconds = 30\nhealth_poll_seconds = 1\nsoak_seconds = 0\n");

            // podman has no daemon: the containers' mounts and network namespaces are made by the CLI, in the mount
            // namespace it runs in. The client runs in a private one of its own (for its /etc/mender), which ends with
            // it; podman then could not join those namespaces from here or from the next install. On a device the
            // client runs in the host's namespace: podman runs in the test's here, through this wrapper.
            var podman = _root.Write("podman-in-test-namespace", $"#!/bin/sh\nexec nsenter --mount=/proc/{Environment.ProcessId}/ns/mnt -- '{fx.Podman.Path}' \"$@\"\n");
            File.SetUnixFileMode(podman, (UnixFileMode)0b111_101_101);

            // The device's config at its default path, /etc/mender/mender-app-podman.conf in the client's namespace;
            // the private podman's containers.conf through containers_conf, none in the environment.
            Client.WriteEtc("mender-app-podman.conf", fx.DeviceConfig(_root.Dir("podman-state"), podmanCommand: podman));
            Client.Environment["MENDER_APP_PODMAN_CONF"] = null;
            Client.Environment["CONTAINERS_CONF"] = null;
            Artifacts = _root.Dir("artifacts");
        }

        public MenderClient Client { get; }

        public string App { get; }

        public string Artifacts { get; }

        /// <summary>The image ID (hex) each artifact of this rig carries, by artifact name.</summary>
        public Dictionary<string, string> ImageIds { get; } = new();

        /// <summary>
        /// Installs an artifact of the conformance fixture's manifests for one service web with claim data: its image
        /// saved from the private podman under the app's own tag and untagged there, so that only the artifact's LOAD
        /// brings the tag back.
        /// </summary>
        public CmdResult Install(string name, ServiceSpec web)
        {
            var manifests = _root.Dir("manifests-" + name);
            _fx.WriteManifests(new AppSpec(App, [web]), manifests);
            var url = _fx.ImageUrl(App, web);
            var image = Path.Combine(Artifacts, name + ".img");
            _fx.Podman.PodmanOk("save", "--format", "docker-archive", "-o", image, url);
            var id = _fx.ImageId(url)!.Replace("sha256:", string.Empty, StringComparison.Ordinal);
            _fx.Podman.PodmanOk("untag", url, url); // with no name, untag would remove every tag of the image
            ImageIds[name] = id;
            var files = Directory.EnumerateFiles(manifests, "*", SearchOption.AllDirectories)
                .ToDictionary(f => Path.GetRelativePath(manifests, f), File.ReadAllText);
            var spec = new AppArtifactSpec(name, App, [new AppImage(url, image, id)], files, Orchestrator: "podman");
            return Client.Install(AppArtifacts.WriteMender(spec, Artifacts));
        }

        public void Dispose()
        {
            Client.Dispose();
            _root.Dispose();
        }
    }

    private static void Ok(CmdResult r, string what) => Assert.True(r.ExitCode == 0, $"{what}: {r}");

    /// <summary>The image ID (hex) of the running container of service web.</summary>
    private string RunningImage(string app) =>
        fx.Podman.Containers($"app.mender.io/application={app}")
            .Single(c => c["State"]?["Status"]?.GetValue<string>() == "running" && c["Config"]?["Labels"]?["app.kubernetes.io/name"]?.GetValue<string>() == "web")["Image"]!.GetValue<string>();

    [SkippableFact]
    public void A_deployment_with_a_claim_installs_updates_fails_an_update_and_is_rolled_back_by_mender_keeping_its_volume_data()
    {
        var app = Unique.Name("e2e");
        using var rig = new Rig(fx, app);
        try
        {
            // v1: its image loaded from the artifact, its pod running, committed; the claim is the podman volume <app>-data.
            Ok(rig.Install("podman-v1", new ServiceSpec("web", Version: "1.0") { Volume = "data" }), "installing v1");
            Ok(rig.Client.Commit(), "committing v1");
            Assert.Equal("podman-v1", rig.Client.ShowArtifact());
            Assert.Equal(rig.ImageIds["podman-v1"], RunningImage(app));
            Assert.True(fx.VolumeExists(app, "data"), $"the claim of {app} should be podman volume {app}-data");
            fx.WriteVolumeMarker(app, "web", "written-by-v1");

            // v2: a new image in a new pod, the same volume with v1's data.
            Ok(rig.Install("podman-v2", new ServiceSpec("web", Version: "2.0") { Volume = "data" }), "installing v2");
            Ok(rig.Client.Commit(), "committing v2");
            Assert.Equal("podman-v2", rig.Client.ShowArtifact());
            Assert.Equal(rig.ImageIds["podman-v2"], RunningImage(app));
            Assert.Equal("written-by-v1", fx.ReadVolumeMarker(app, "web"));
            fx.WriteVolumeMarker(app, "web", "written-by-v2");

            // v3's container exits at every start: ROLLOUT names the restart loop, the client rolls back to v2.
            var v3 = rig.Install("podman-v3", new ServiceSpec("web", Behavior.RestartLoop) { Volume = "data" });
            Assert.NotEqual(0, v3.ExitCode);
            var log = v3.Stdout + v3.Stderr;
            Assert.All(fx.FailureTexts(Behavior.RestartLoop), text => Assert.Contains(text, log, StringComparison.Ordinal));
            Assert.Equal("podman-v2", rig.Client.ShowArtifact());
            Assert.Equal(rig.ImageIds["podman-v2"], RunningImage(app));
            Assert.Equal("written-by-v2", fx.ReadVolumeMarker(app, "web"));

            // v4 installs and runs, and is not committed: `mender rollback` brings v2 back, its data still there.
            Ok(rig.Install("podman-v4", new ServiceSpec("web", Behavior.NoHealthcheck) { Volume = "data" }), "installing v4");
            Assert.Equal(rig.ImageIds["podman-v4"], RunningImage(app));
            Assert.Equal("written-by-v2", fx.ReadVolumeMarker(app, "web"));
            fx.WriteVolumeMarker(app, "web", "written-by-v4");
            Ok(rig.Client.Rollback(), "rolling v4 back");
            Assert.Equal("podman-v2", rig.Client.ShowArtifact());
            Assert.Equal(rig.ImageIds["podman-v2"], RunningImage(app));
            Assert.Equal("written-by-v4", fx.ReadVolumeMarker(app, "web"));
        }
        finally
        {
            fx.Cleanup(app);
        }
    }
}
