namespace Kubernetes.Tests;

/// <summary>
/// REQS with the new manifests (MENDER_APP_MANIFESTS_DIR) names what they define, for `app plan`: the workloads as
/// kind/name and the persistent volume claims, those declared and those a StatefulSet's claim templates make.
/// </summary>
[Collection("kube")]
public sealed class ReqsContentsTests(KubeFixture fx)
{
    [Fact]
    public void Reqs_names_the_workloads_and_the_claims_of_the_manifests()
    {
        using var k = new K8sRun(fx, "contents");
        using var dir = new TempDir("k8s-contents");
        dir.Write("a-web.yaml", k.Deployment("web"));
        dir.Write("b-db.yaml", $"""
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata:
              name: shared
              namespace: {k.Ns}
            spec:
              accessModes: [ReadWriteOnce]
              resources:
                requests:
                  storage: 1Mi
            ---
            apiVersion: apps/v1
            kind: StatefulSet
            metadata:
              name: db
              namespace: {k.Ns}
            spec:
              replicas: 2
              serviceName: db
              selector:
                matchLabels:
                  app: db
              template:
                metadata:
                  labels:
                    app: db
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
            """);
        k.Env["MENDER_APP_MANIFESTS_DIR"] = dir.Path;

        var r = k.Run("REQS");

        Assert.True(r.Stdout.Contains("\nservices:ok deployment/web statefulset/db\n", StringComparison.Ordinal), r.ToString());
        Assert.Contains("\nvolumes:ok shared data-db-0 data-db-1\n", "\n" + r.Stdout, StringComparison.Ordinal);
        Assert.Contains("manifests:ok 3 object(s)", r.Stdout, StringComparison.Ordinal);
    }
}
