namespace Conformance.Podman;

/// <summary>
/// What only the podman sub-module does, on the real podman (the shared suite covers the rest): its names keep
/// applications apart on one podman, the device's host-access policy holds for podman as for the other orchestrators,
/// and a restart loop that starts after the rollout fails HEALTHY.
/// </summary>
[Collection("podman")]
public sealed class PodmanTests(PodmanFixture fx)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromMinutes(3);

    private CmdResult Call(params string[] args)
    {
        Requires.Component(fx.Name, fx.Unavailable);
        return Cmd.Run(fx.Executable, args, new Dictionary<string, string?>(fx.Environment(new SubModuleSettings())), timeout: CallTimeout);
    }

    private CmdResult CallOk(params string[] args)
    {
        var r = Call(args);
        Assert.True(r.ExitCode == 0, $"podman {string.Join(' ', args)} should succeed: {r}");
        return r;
    }

    [SkippableFact]
    public void Two_applications_with_the_same_deployment_and_claim_names_get_pods_and_volumes_of_their_own()
    {
        Requires.Component(fx.Name, fx.Unavailable);
        using var dir = new TempDir("podman-two");
        var a = Unique.Name("twoa");
        var b = Unique.Name("twob");
        try
        {
            var db = new ServiceSpec("db") { Volume = "data" };
            var ma = dir.Dir("a");
            var mb = dir.Dir("b");
            fx.WriteManifests(new AppSpec(a, [db]), ma);
            fx.WriteManifests(new AppSpec(b, [db]), mb);
            CallOk("ROLLOUT", a, ma);
            CallOk("ROLLOUT", b, mb);
            fx.WriteVolumeMarker(a, "db", "of-" + a);
            fx.WriteVolumeMarker(b, "db", "of-" + b);

            Assert.Equal("of-" + a, fx.ReadVolumeMarker(a, "db"));
            Assert.Equal("of-" + b, fx.ReadVolumeMarker(b, "db"));
            Assert.NotEqual(fx.RunningContainer(a, "db"), fx.RunningContainer(b, "db"));

            // Stopping one leaves the other running.
            CallOk("STOP", a, ma);
            Assert.False(fx.Observe(a, "db") is { Running: true });
            Assert.True(fx.Observe(b, "db") is { Running: true });
            CallOk("ALIVE", b);
        }
        finally
        {
            fx.Cleanup(a);
            fx.Cleanup(b);
        }
    }

    [SkippableFact]
    public void A_service_that_starts_restarting_after_a_healthy_rollout_fails_healthy_naming_it()
    {
        Requires.Component(fx.Name, fx.Unavailable);
        fx.LoadTestImages();
        using var dir = new TempDir("podman-crash");
        var app = Unique.Name("crash");
        try
        {
            var url = $"conformance/{app}:base";
            fx.Podman.PodmanOk("tag", "appmodule/web:nohealth", url);
            // Runs until /data/crash exists, then exits 1 at every start: a restart loop that the test sets off.
            var manifests = dir.Dir("m");
            File.WriteAllText(Path.Combine(manifests, "worker.yaml"), $"""
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: worker
                spec:
                  selector:
                    matchLabels:
                      app.kubernetes.io/name: worker
                  template:
                    metadata:
                      labels:
                        app.kubernetes.io/name: worker
                    spec:
                      containers:
                      - name: worker
                        image: {url}
                        command: [sh, -c, "while [ ! -f /data/crash ]; do sleep 0.2; done; echo crashing on purpose; exit 1"]
                        volumeMounts:
                        - name: state
                          mountPath: /data
                      volumes:
                      - name: state
                        persistentVolumeClaim:
                          claimName: state
                ---
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata:
                  name: state
                spec:
                  accessModes: [ReadWriteOnce]
                  resources:
                    requests:
                      storage: 1Mi

                """);
            CallOk("ROLLOUT", app, manifests);
            CallOk("HEALTHY", app);

            fx.Podman.PodmanOk("exec", fx.RunningContainer(app, "worker"), "sh", "-c", "echo > /data/crash");
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (RestartCount(app) < 1)
            {
                Assert.True(DateTime.UtcNow < deadline, $"podman did not restart the worker of {app} within 2 minutes");
                Thread.Sleep(200);
            }

            var r = Call("HEALTHY", app);
            Assert.True(r.ExitCode == 1, $"HEALTHY of a restarting service should fail: {r}");
            Assert.Contains("worker", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("restarted", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    [SkippableFact]
    public void Host_access_in_the_manifests_is_refused_by_reqs_and_by_rollout_before_any_pod_exists_unless_the_config_names_it()
    {
        Requires.Component(fx.Name, fx.Unavailable);
        fx.LoadTestImages();
        using var dir = new TempDir("podman-host");
        var app = Unique.Name("host");
        try
        {
            // The same policy as docker-compose and k8s: a Deployment that mounts the host's root directory.
            var manifests = dir.Dir("m");
            File.WriteAllText(Path.Combine(manifests, "web.yaml"), """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: web
                spec:
                  selector:
                    matchLabels:
                      app.kubernetes.io/name: web
                  template:
                    metadata:
                      labels:
                        app.kubernetes.io/name: web
                    spec:
                      containers:
                      - name: web
                        image: appmodule/web:1.0
                        volumeMounts:
                        - name: host
                          mountPath: /host
                      volumes:
                      - name: host
                        hostPath:
                          path: /

                """);
            var env = new Dictionary<string, string?>(fx.Environment(new SubModuleSettings()))
            {
                ["MENDER_APP_MANIFESTS_DIR"] = manifests,
            };
            var reqs = Cmd.Run(fx.Executable, ["REQS"], env, timeout: CallTimeout);
            Assert.True(reqs.ExitCode == 4, $"REQS of a host root mount should report an unmet requirement: {reqs}");
            Assert.Matches(@"(?m)^manifests:error Deployment web \(.*web\.yaml:1\) .*mounts the host's root directory", reqs.Stdout);
            Assert.Contains("host access \"root-mount\" is refused unless allow_host_access in ", reqs.Stdout, StringComparison.Ordinal);

            var rollout = Call("ROLLOUT", app, manifests);
            Assert.True(rollout.ExitCode == 1, $"ROLLOUT of a host root mount should be refused: {rollout}");
            Assert.Contains("Deployment web (", rollout.Stderr, StringComparison.Ordinal);
            Assert.Contains("mounts the host's root directory", rollout.Stderr, StringComparison.Ordinal);
            Assert.Empty(fx.Podman.Containers($"app.mender.io/application={app}"));
            Assert.DoesNotContain(app, fx.Podman.PodmanOk("pod", "ps", "--format", "{{.Name}}"), StringComparison.Ordinal);

            // A device whose config names the access allows it.
            var config = env["MENDER_APP_PODMAN_CONF"]!;
            var allowing = dir.Write("allowing.conf", File.ReadAllText(config) + "\nallow_host_access = [\"root-mount\"]\n");
            env["MENDER_APP_PODMAN_CONF"] = allowing;
            var allowed = Cmd.Run(fx.Executable, ["REQS"], env, timeout: CallTimeout);
            Assert.True(allowed.ExitCode == 0, $"REQS with allow_host_access = [\"root-mount\"] should pass: {allowed}");
            Assert.Matches("(?m)^manifests:ok ", allowed.Stdout);
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    private int RestartCount(string app) =>
        fx.Podman.Containers($"app.mender.io/application={app}").Select(c => c["RestartCount"]?.GetValue<int>() ?? 0).DefaultIfEmpty(0).Max();
}
