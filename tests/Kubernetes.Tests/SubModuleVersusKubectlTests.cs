using System.Text.Json.Nodes;
using FakeKubeApi;

namespace Kubernetes.Tests;

/// <summary>
/// The k8s sub-module's own requests, recorded by the fake, replayed through the kubectl command
/// with the same intent: where the two send something different, a test here says so.
/// </summary>
[Collection("kubectl")]
public sealed class SubModuleVersusKubectlTests(KubectlFixture fx)
{
    private const string AppLabel = "app.mender.io/application";

    private static string Manifests(string ns, string app) => $"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: {ns}{app}
        spec:
          replicas: 2
          selector:
            matchLabels: {"{"}app: web{"}"}
          template:
            metadata:
              labels: {"{"}app: web{"}"}
            spec:
              containers:
              - name: main
                image: appmodule/web:1.0
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
          namespace: {ns}{app}
        data:
          mode: "2"
          flag: "yes"
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: {ns}{app}
        spec:
          selector: {"{"}app: web{"}"}
          ports: [{"{"}port: 80{"}"}]

        """;

    private static List<FakeKubeApiServer.Exchange> Applies(IEnumerable<FakeKubeApiServer.Exchange> exchanges, string ns) =>
        exchanges.Where(e => e.Method == "PATCH" && e.ContentType.StartsWith("application/apply-patch+yaml", StringComparison.Ordinal)
                             && e.Path.Contains($"/namespaces/{ns}/", StringComparison.Ordinal)).ToList();

    [SkippableFact]
    public void Rollout_applies_what_kubectl_apply_server_side_with_the_same_field_manager_applies()
    {
        using var k = new K8sRun(fx.Api, fx.KubeConfig, "vs");
        var dir = k.Manifests("m", ("app.yaml", Manifests(k.Ns, string.Empty)));
        var start = fx.Api.Exchanges.Count;
        k.Ok("ROLLOUT", k.App, dir);
        var module = Applies(fx.Api.Exchanges.Skip(start), k.Ns);
        Assert.Equal(3, module.Count);
        var versions = fx.Api.List("apps/v1", "Deployment", k.Ns).Concat(fx.Api.List("v1", "ConfigMap", k.Ns)).Concat(fx.Api.List("v1", "Service", k.Ns))
            .ToDictionary(o => $"{o["kind"]}/{o["metadata"]!["name"]}", o => o["metadata"]!["resourceVersion"]!.GetValue<string>());

        // The same intent through kubectl: the same manifests with the label the module adds, the module's field manager.
        var labelled = Manifests(k.Ns, $"\n  labels: {{{AppLabel}: {k.App}}}");
        start = fx.Api.Exchanges.Count;
        var output = fx.Ok("apply", "--server-side", "--field-manager=mender-app", "-f", k.Dir.Write("kubectl.yaml", labelled));
        Assert.Contains("deployment.apps/web serverside-applied", output, StringComparison.Ordinal);
        var kubectl = Applies(fx.Api.Exchanges.Skip(start), k.Ns);

        // Same paths, same media type, same bodies: the module's requests are what kubectl sends.
        Assert.Equal(module.Select(e => e.Path).Order(), kubectl.Select(e => e.Path).Order());
        foreach (var m in module)
        {
            var c = kubectl.Single(e => e.Path == m.Path);
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(m.Body), JsonNode.Parse(c.Body)), $"{m.Path}\nmodule:  {m.Body}\nkubectl: {c.Body}");
            Assert.Equal("mender-app", m.Query["fieldManager"]);
            Assert.Equal("mender-app", c.Query["fieldManager"]);

            // Known divergences, harmless here: the module forces (force_conflicts = true, its documented default;
            // kubectl only with --force-conflicts) and does not ask for fieldValidation=Strict, which for an apply
            // request adds only a check for duplicate fields (apiserver patch.go, applyPatcher), and the module's
            // YAML reader already refuses duplicate keys.
            Assert.Equal("true", m.Query["force"]);
            Assert.Equal("false", c.Query["force"]);
            Assert.False(m.Query.ContainsKey("fieldValidation"));
            Assert.Equal("Strict", c.Query["fieldValidation"]);
        }

        // Re-applying the same intent changes nothing: the module and kubectl own the same fields with the same values.
        foreach (var (key, version) in versions)
        {
            var kind = key.Split('/')[0];
            var o = fx.Api.Get(kind == "Deployment" ? "apps/v1" : "v1", kind, k.Ns, key.Split('/')[1])!;
            Assert.Equal(version, o["metadata"]!["resourceVersion"]!.GetValue<string>());
        }
    }

    [SkippableFact]
    public void Purge_deletes_with_the_propagation_kubectl_delete_uses_and_health_agrees_with_rollout_status()
    {
        using var k = new K8sRun(fx.Api, fx.KubeConfig, "vsdel");
        k.Ok("ROLLOUT", k.App, k.Manifests("m", ("app.yaml", Manifests(k.Ns, string.Empty))));
        Assert.Equal(0, k.Run("HEALTHY", k.App).ExitCode);
        Assert.Equal(0, fx.Run("rollout", "status", "deployment/web", "-n", k.Ns, "--timeout=5s").ExitCode);

        fx.Api.HeldNamespaces.Add(k.Ns);
        try
        {
            fx.Api.SetStatus("apps/v1", "Deployment", k.Ns, "web", JsonNode.Parse("""{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}""")!.AsObject());
            Assert.NotEqual(0, k.Run("HEALTHY", k.App).ExitCode);
            Assert.NotEqual(0, fx.Run("rollout", "status", "deployment/web", "-n", k.Ns, "--timeout=1s").ExitCode);
        }
        finally
        {
            fx.Api.HeldNamespaces.Remove(k.Ns);
            fx.Api.Reconcile();
        }

        var start = fx.Api.Exchanges.Count;
        k.Ok("PURGE", k.App);
        var moduleDelete = fx.Api.Exchanges.Skip(start).First(e => e.Method == "DELETE" && e.Path.EndsWith($"/namespaces/{k.Ns}/deployments/web", StringComparison.Ordinal));
        Assert.Empty(fx.Api.List("v1", "Pod", k.Ns));

        k.Ok("ROLLOUT", k.App, k.Manifests("m2", ("app.yaml", Manifests(k.Ns, string.Empty))));
        start = fx.Api.Exchanges.Count;
        fx.Ok("delete", "deployment", "web", "-n", k.Ns);
        var kubectlDelete = fx.Api.Exchanges.Skip(start).First(e => e.Method == "DELETE");
        Assert.Equal(kubectlDelete.Path, moduleDelete.Path);
        Assert.Equal("Background", JsonNode.Parse(kubectlDelete.Body)!["propagationPolicy"]!.GetValue<string>());
        Assert.Equal("Background", JsonNode.Parse(moduleDelete.Body)!["propagationPolicy"]!.GetValue<string>());
        Assert.Empty(fx.Api.List("v1", "Pod", k.Ns));
    }
}
