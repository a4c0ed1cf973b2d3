using System.Text.Json;

namespace Kubernetes.Tests;

[Collection("kube")]
public sealed class LifecycleTests(KubeFixture fx)
{
    private long Replicas(K8sRun k, string kind, string name) => fx.Api.Get("apps/v1", kind, k.Ns, name)!["spec"]!["replicas"]!.GetValue<long>();

    private int Pods(K8sRun k, string owner) =>
        fx.Api.List("v1", "Pod", k.Ns).Count(p => p["metadata"]!["ownerReferences"]![0]!["name"]!.GetValue<string>() == owner);

    private string StatefulSet(K8sRun k, string name, int replicas) => $"""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata:
          name: {name}
          namespace: {k.Ns}
        spec:
          replicas: {replicas}
          serviceName: {name}
          selector:
            matchLabels:
              app: {name}
          template:
            metadata:
              labels:
                app: {name}
            spec:
              containers:
              - name: db
                image: appmodule/web:1.0
          volumeClaimTemplates:
          - metadata:
              name: data
            spec:
              accessModes: [ReadWriteOnce]
              resources:
                requests:
                  storage: 1Mi

        """;

    private string DaemonSet(K8sRun k, string name) => $"""
        apiVersion: apps/v1
        kind: DaemonSet
        metadata:
          name: {name}
          namespace: {k.Ns}
        spec:
          selector:
            matchLabels:
              app: {name}
          template:
            metadata:
              labels:
                app: {name}
            spec:
              nodeSelector:
                kubernetes.io/os: linux
              containers:
              - name: agent
                image: appmodule/web:nohealth

        """;

    [Fact]
    public void Stop_scales_every_workload_to_zero_keeping_claims_and_namespace_and_start_restores_the_replicas()
    {
        using var k = new K8sRun(fx, "stop");
        var dir = k.Manifests("m", ("web.yaml", k.Deployment("web", replicas: 3)), ("db.yaml", StatefulSet(k, "db", 2)), ("ds.yaml", DaemonSet(k, "agent")));
        k.Ok("ROLLOUT", k.App, dir);
        Assert.Equal(3, Pods(k, "web"));
        Assert.Equal(2, Pods(k, "db"));
        Assert.Equal(1, Pods(k, "agent"));
        fx.Api.WriteVolume(k.Ns, "data-db-0", "rows");
        k.Ok("ALIVE", k.App);
        k.Ok("HEALTHY", k.App);

        k.Ok("STOP", k.App, dir);

        Assert.Equal(0, Replicas(k, "Deployment", "web"));
        Assert.Equal(0, Replicas(k, "StatefulSet", "db"));
        Assert.Equal(0, Pods(k, "web") + Pods(k, "db") + Pods(k, "agent"));
        Assert.Equal("3", fx.Api.Get("apps/v1", "Deployment", k.Ns, "web")!["metadata"]!["annotations"]!["app.mender.io/stopped-replicas"]!.GetValue<string>());
        Assert.True(fx.Api.NamespaceExists(k.Ns));
        Assert.Equal("rows", fx.Api.ReadVolume(k.Ns, "data-db-0"));
        Assert.NotNull(fx.Api.Get("v1", "PersistentVolumeClaim", k.Ns, "data-db-1"));
        var alive = k.Fails(1, "ALIVE", k.App);
        Assert.Contains("stopped", alive.Stderr, StringComparison.Ordinal);

        // A second STOP must not forget the replicas.
        k.Ok("STOP", k.App, dir);
        k.Ok("START", k.App, dir);

        Assert.Equal(3, Replicas(k, "Deployment", "web"));
        Assert.Equal(2, Replicas(k, "StatefulSet", "db"));
        Assert.Equal(3, Pods(k, "web"));
        Assert.Equal(1, Pods(k, "agent"));
        Assert.Null(fx.Api.Get("apps/v1", "Deployment", k.Ns, "web")!["metadata"]!["annotations"]?["app.mender.io/stopped-replicas"]);
        Assert.Null(fx.Api.Get("apps/v1", "DaemonSet", k.Ns, "agent")!["spec"]!["template"]!["spec"]!["nodeSelector"]!["app.mender.io/stopped"]);
        Assert.Equal("rows", fx.Api.ReadVolume(k.Ns, "data-db-0"));
        k.Ok("HEALTHY", k.App);
    }

    [Fact]
    public void Rollout_after_stop_runs_the_workloads_again_with_their_replicas()
    {
        using var k = new K8sRun(fx, "restop");
        var v1 = k.Manifests("v1", ("web.yaml", k.Deployment("web", replicas: null)), ("api.yaml", k.Deployment("api", replicas: 2)));
        k.Ok("ROLLOUT", k.App, v1);
        k.Ok("STOP", k.App, v1);
        Assert.Equal(0, Replicas(k, "Deployment", "web"));

        // As the app module does it: STOP the old composition, ROLLOUT the new one.
        var v2 = k.Manifests("v2", ("web.yaml", k.Deployment("web", replicas: null, image: "appmodule/web:2.0")), ("api.yaml", k.Deployment("api", replicas: 3)));
        k.Ok("ROLLOUT", k.App, v2);

        Assert.Equal(1, Replicas(k, "Deployment", "web"));
        Assert.Equal(3, Replicas(k, "Deployment", "api"));
        Assert.Equal(3, Pods(k, "api"));
        k.Ok("ALIVE", k.App);
        k.Ok("HEALTHY", k.App);
    }

    [Fact]
    public void Rollback_rolls_out_the_given_manifests_or_else_the_previously_applied_ones()
    {
        using var k = new K8sRun(fx, "rb");
        var v1 = k.Manifests("v1", ("web.yaml", k.Deployment("web")));
        var v2 = k.Manifests("v2", ("web.yaml", k.Deployment("web", image: "appmodule/web:2.0")), ("extra.yaml", k.Deployment("extra")));
        k.Ok("ROLLOUT", k.App, v1);
        k.Ok("ROLLOUT", k.App, v2);
        string Image() => fx.Api.Get("apps/v1", "Deployment", k.Ns, "web")!["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]!.GetValue<string>();
        Assert.Equal("appmodule/web:2.0", Image());

        k.Ok("ROLLBACK", k.App, Path.Combine(k.Dir.Path, "gone"), v2);

        Assert.Equal("appmodule/web:1.0", Image());
        Assert.Null(fx.Api.Get("apps/v1", "Deployment", k.Ns, "extra"));
        var exported = k.Dir.Dir("exported");
        k.Ok("EXPORT_MANIFEST", k.App, exported);
        Assert.Equal(File.ReadAllText(Path.Combine(v1, "web.yaml")), File.ReadAllText(Path.Combine(exported, "web.yaml")));
    }

    [Fact]
    public void Purge_deletes_the_application_and_its_statefulset_claims_only_when_purge_pvcs_is_set()
    {
        using var keep = new K8sRun(fx, "purgek");
        var dir = keep.Manifests("m", ("db.yaml", StatefulSet(keep, "db", 1)), ("web.yaml", keep.Deployment("web")));
        keep.Ok("ROLLOUT", keep.App, dir);
        keep.Ok("PURGE", keep.App);
        Assert.Null(fx.Api.Get("apps/v1", "StatefulSet", keep.Ns, "db"));
        Assert.Null(fx.Api.Get("apps/v1", "Deployment", keep.Ns, "web"));
        Assert.Empty(fx.Api.List("v1", "Pod", keep.Ns));
        Assert.NotNull(fx.Api.Get("v1", "PersistentVolumeClaim", keep.Ns, "data-db-0"));
        Assert.True(fx.Api.NamespaceExists(keep.Ns));
        keep.Fails(1, "EXPORT_MANIFEST", keep.App, keep.Dir.Dir("none"));

        using var purge = new K8sRun(fx, "purgep", "purge_pvcs = true");
        var dir2 = purge.Manifests("m", ("db.yaml", StatefulSet(purge, "db", 2)));
        purge.Ok("ROLLOUT", purge.App, dir2);
        Assert.NotNull(fx.Api.Get("v1", "PersistentVolumeClaim", purge.Ns, "data-db-1"));
        purge.Ok("PURGE", purge.App);
        Assert.Empty(fx.Api.List("v1", "PersistentVolumeClaim", purge.Ns));
        Assert.True(fx.Api.NamespaceExists(purge.Ns));
    }

    [Fact]
    public void Ls_components_lists_the_images_of_the_application_workloads()
    {
        using var k = new K8sRun(fx, "ls");
        var dir = k.Manifests("m", ("web.yaml", k.Deployment("web", image: "appmodule/web:2.0")), ("db.yaml", StatefulSet(k, "db", 1)), ("ds.yaml", DaemonSet(k, "agent")));
        k.Ok("ROLLOUT", k.App, dir);
        var r = k.Ok("LS_COMPONENTS", k.App);
        using var doc = JsonDocument.Parse(r.Stdout);
        var urls = doc.RootElement.EnumerateArray().Select(e => (e.GetProperty("type").GetString(), e.GetProperty("url").GetString(), e.GetProperty("additional_data").GetProperty("services").GetString())).ToList();
        Assert.Equal([("image", "appmodule/web:1.0", "db"), ("image", "appmodule/web:2.0", "web"), ("image", "appmodule/web:nohealth", "agent")], urls);
        Assert.Equal(string.Empty, r.Stderr.Trim());
    }
}
