namespace Conformance.Podman;

/// <summary>
/// What only the podman sub-module does, on the real podman (the shared suite covers the rest): its names keep
/// applications apart on one podman, and a restart loop that starts after the rollout fails HEALTHY.
/// </summary>
public sealed class PodmanTests(PodmanFixture fx) : IClassFixture<PodmanFixture>
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

    private int RestartCount(string app) =>
        fx.Podman.Containers($"app.mender.io/application={app}").Select(c => c["RestartCount"]?.GetValue<int>() ?? 0).DefaultIfEmpty(0).Max();
}
