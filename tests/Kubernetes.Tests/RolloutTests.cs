using System.Text.Json.Nodes;

namespace Kubernetes.Tests;

[Collection("kube")]
public sealed class RolloutTests(KubeFixture fx)
{
    private const string AppLabel = "app.mender.io/application";

    private static string? Label(JsonObject? o, string key) => o?["metadata"]?["labels"]?[key]?.GetValue<string>();

    [Fact]
    public void Rollout_applies_every_document_of_every_file_recursively_labels_them_and_creates_the_namespace()
    {
        using var k = new K8sRun(fx, "multi");
        var dir = k.Manifests("m",
            ("app.yaml", k.Deployment("web") + "---\n" + $"""
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: settings
                  namespace: {k.Ns}
                data:
                  mode: "2"
                  flag: "yes"
                ---
                # an empty document is fine
                """),
            ("nested/deeper/svc.yml", $$$"""
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "{{{k.Ns}}}"}, "spec": {"ports": [{"port": 80}]}}
                """),
            ("nested/ignored.txt", "not a manifest"));
        Assert.False(fx.Api.NamespaceExists(k.Ns));

        k.Ok("ROLLOUT", k.App, dir);

        Assert.True(fx.Api.NamespaceExists(k.Ns));
        var web = fx.Api.Get("apps/v1", "Deployment", k.Ns, "web");
        var cm = fx.Api.Get("v1", "ConfigMap", k.Ns, "settings");
        var svc = fx.Api.Get("v1", "Service", k.Ns, "web");
        Assert.Equal(k.App, Label(web, AppLabel));
        Assert.Equal(k.App, Label(cm, AppLabel));
        Assert.Equal(k.App, Label(svc, AppLabel));

        // Quoted scalars stay strings (an unquoted yes is a boolean, refused: see the next test).
        Assert.Equal("2", cm!["data"]!["mode"]!.GetValue<string>());
        Assert.Equal("yes", cm["data"]!["flag"]!.GetValue<string>());

        // Server-side apply with the configured field manager.
        var managers = web!["metadata"]!["managedFields"]!.AsArray().Select(m => (m!["manager"]!.GetValue<string>(), m["operation"]!.GetValue<string>()));
        Assert.Contains(("mender-app", "Apply"), managers);
        Assert.Contains(fx.Api.Requests, r => r.StartsWith($"PATCH /apis/apps/v1/namespaces/{k.Ns}/deployments/web?fieldManager=mender-app&force=true", StringComparison.Ordinal));
    }

    [Fact]
    public void An_unquoted_yes_in_configmap_data_is_a_boolean_the_api_refuses_so_it_is_rejected_before_anything_is_applied()
    {
        // YAML 1.1, as kubectl reads it, makes `flag: yes` the boolean true; ConfigMap data is map[string]string and
        // the API server refuses it (the kubectl conformance suite shows the fake refusing it as a real server does).
        using var k = new K8sRun(fx, "yes");
        var dir = k.Manifests("m",
            ("a-web.yaml", k.Deployment("web")),
            ("b-settings.yaml", $"""
                # settings
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: settings
                  namespace: {k.Ns}
                data:
                  mode: "2"
                  flag: yes
                """));
        var before = fx.Api.Requests.Count;

        var r = k.Fails(1, "ROLLOUT", k.App, dir);

        Assert.Contains("b-settings.yaml:2: ConfigMap settings: data.flag is the boolean true, but the Kubernetes API accepts only strings there", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("quote the value", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("nothing was applied", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Api.Requests.Skip(before), q => !q.StartsWith("GET", StringComparison.Ordinal));
        Assert.False(fx.Api.NamespaceExists(k.Ns));
    }

    [Fact]
    public void Bad_yaml_is_rejected_before_anything_is_applied_naming_file_and_line()
    {
        using var k = new K8sRun(fx, "badyaml");
        var dir = k.Manifests("m",
            ("a-good.yaml", k.Deployment("web")),
            ("b-bad.yaml", $"""
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: ok
                  namespace: {k.Ns}
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: broken
                data:
                  key: [unclosed
                """));
        var before = fx.Api.Requests.Count;

        var r = k.Fails(1, "ROLLOUT", k.App, dir);

        Assert.Contains("b-bad.yaml:", r.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"b-bad\.yaml:1[2-3]:\d+: invalid YAML", r.Stderr);
        Assert.Contains("nothing was applied", r.Stderr, StringComparison.Ordinal);
        Assert.Empty(fx.Api.Requests.Skip(before));
        Assert.False(fx.Api.NamespaceExists(k.Ns));
    }

    [Fact]
    public void A_document_that_is_not_a_kubernetes_object_or_of_an_unknown_kind_is_rejected_before_anything_is_applied()
    {
        using var k = new K8sRun(fx, "nokind");
        var noKind = k.Manifests("a", ("ok.yaml", k.Deployment("web")), ("x.yaml", "apiVersion: v1\nmetadata:\n  name: x\n"));
        var r = k.Fails(1, "ROLLOUT", k.App, noKind);
        Assert.Contains("x.yaml:1: the document has no kind", r.Stderr, StringComparison.Ordinal);

        var unknown = k.Manifests("b", ("ok.yaml", k.Deployment("web")), ("crd.yaml", "---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"));
        r = k.Fails(1, "ROLLOUT", k.App, unknown);
        Assert.Contains("crd.yaml:2: the API server does not serve kind Widget in apiVersion example.com/v1", r.Stderr, StringComparison.Ordinal);

        var twice = k.Manifests("c", ("one.yaml", k.Deployment("web")), ("two.yaml", k.Deployment("web")));
        r = k.Fails(1, "ROLLOUT", k.App, twice);
        Assert.Contains("is also defined at", r.Stderr, StringComparison.Ordinal);

        Assert.DoesNotContain(fx.Api.Requests, q => q.StartsWith("PATCH", StringComparison.Ordinal) && q.Contains($"/namespaces/{k.Ns}/", StringComparison.Ordinal));
        Assert.False(fx.Api.NamespaceExists(k.Ns));
    }

    [Fact]
    public void Custom_resources_whose_definition_is_in_the_same_manifests_are_applied_after_it_and_pruned_later()
    {
        using var k = new K8sRun(fx, "crd");
        var group = k.App + ".example.com";
        var crd = $"""
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata:
              name: widgets.{group}
            spec:
              group: {group}
              scope: Namespaced
              names:
                kind: Widget
                plural: widgets
                singular: widget
              versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true

            """;
        string Widget(string name) => $"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {k.Ns}\nspec:\n  size: 3\n";
        var v1 = k.Manifests("v1", ("a-widgets.yaml", Widget("one") + "---\n" + Widget("two")), ("z-crd.yaml", crd));
        var r = k.Ok("ROLLOUT", k.App, v1);
        Assert.Contains("applied widget", r.Stderr, StringComparison.Ordinal);
        Assert.Contains(fx.Api.Requests, q => q.StartsWith($"PATCH /apis/{group}/v1/namespaces/{k.Ns}/widgets/two?", StringComparison.Ordinal));

        var v2 = k.Manifests("v2", ("a-widgets.yaml", Widget("one")));
        r = k.Ok("ROLLOUT", k.App, v2);
        Assert.Contains($"pruned widget {k.Ns}/two", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"kept customresourcedefinition widgets.{group}", r.Stderr, StringComparison.Ordinal);
        Assert.Contains(fx.Api.Requests, q => q.StartsWith($"DELETE /apis/{group}/v1/namespaces/{k.Ns}/widgets/two", StringComparison.Ordinal));
    }

    [Fact]
    public void Rollout_prunes_objects_dropped_from_the_manifests_but_keeps_claims_and_namespaces()
    {
        using var k = new K8sRun(fx, "prune");
        string Cm(string name) => $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {k.Ns}\ndata:\n  a: b\n";
        var pvc = $"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: {k.Ns}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Mi\n";
        var v1 = k.Manifests("v1", ("web.yaml", k.Deployment("web")), ("old.yaml", k.Deployment("old")), ("cm.yaml", Cm("keep") + "---\n" + Cm("drop")), ("pvc.yaml", pvc));
        k.Ok("ROLLOUT", k.App, v1);
        Assert.NotNull(fx.Api.Get("apps/v1", "Deployment", k.Ns, "old"));
        Assert.Contains(fx.Api.List("v1", "Pod", k.Ns), p => p["metadata"]!["name"]!.GetValue<string>().StartsWith("old-", StringComparison.Ordinal));

        // Something in the same namespace that is not ours must survive the prune.
        fx.Api.WriteVolume(k.Ns, "data", "precious");
        var v2 = k.Manifests("v2", ("web.yaml", k.Deployment("web")), ("cm.yaml", Cm("keep")));
        var r = k.Ok("ROLLOUT", k.App, v2);

        Assert.Null(fx.Api.Get("apps/v1", "Deployment", k.Ns, "old"));
        Assert.DoesNotContain(fx.Api.List("v1", "Pod", k.Ns), p => p["metadata"]!["name"]!.GetValue<string>().StartsWith("old-", StringComparison.Ordinal));
        Assert.Null(fx.Api.Get("v1", "ConfigMap", k.Ns, "drop"));
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", k.Ns, "keep"));
        Assert.NotNull(fx.Api.Get("apps/v1", "Deployment", k.Ns, "web"));
        Assert.Equal("precious", fx.Api.ReadVolume(k.Ns, "data"));
        Assert.True(fx.Api.NamespaceExists(k.Ns));
        Assert.Contains("pruned deployment", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("kept persistentvolumeclaim", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Objects_of_another_application_in_the_same_namespace_are_never_pruned()
    {
        using var a = new K8sRun(fx, "owna");
        var otherApp = a.App + "-b";
        var dirA = a.Manifests("a", ("web.yaml", a.Deployment("web-a")));
        var dirB = a.Manifests("b", ("web.yaml", a.Deployment("web-b")));
        a.Ok("ROLLOUT", a.App, dirA);
        a.Ok("ROLLOUT", otherApp, dirB);
        a.Ok("ROLLOUT", a.App, dirA);
        Assert.NotNull(fx.Api.Get("apps/v1", "Deployment", a.Ns, "web-b"));
        a.Ok("PURGE", a.App);
        Assert.Null(fx.Api.Get("apps/v1", "Deployment", a.Ns, "web-a"));
        Assert.NotNull(fx.Api.Get("apps/v1", "Deployment", a.Ns, "web-b"));
    }

    [Fact]
    public void Server_side_apply_removes_what_the_manifest_no_longer_sets_but_keeps_fields_of_other_managers()
    {
        using var k = new K8sRun(fx, "ssa");
        var v1 = k.Manifests("v1", ("cm.yaml", $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: {k.Ns}\n  labels:\n    tier: one\ndata:\n  a: \"1\"\n  b: \"2\"\n"));
        k.Ok("ROLLOUT", k.App, v1);

        // Another actor (e.g. an operator) adds its own key.
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", fx.Api.Token);
        var patch = new StringContent("""{"data":{"extra":"theirs"}}""");
        patch.Headers.ContentType = new("application/merge-patch+json");
        Assert.True(http.PatchAsync($"{fx.Api.Url}/api/v1/namespaces/{k.Ns}/configmaps/c?fieldManager=operator", patch).Result.IsSuccessStatusCode);

        var v2 = k.Manifests("v2", ("cm.yaml", $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: {k.Ns}\ndata:\n  a: \"10\"\n"));
        k.Ok("ROLLOUT", k.App, v2);

        var cm = fx.Api.Get("v1", "ConfigMap", k.Ns, "c")!;
        Assert.Equal("10", cm["data"]!["a"]!.GetValue<string>());
        Assert.Null(cm["data"]!["b"]);
        Assert.Equal("theirs", cm["data"]!["extra"]!.GetValue<string>());
        Assert.Null(Label(cm, "tier"));
        Assert.Equal(k.App, Label(cm, AppLabel));
    }

    [Fact]
    public void A_field_owned_by_another_manager_is_a_conflict_unless_force_conflicts_is_on()
    {
        using var strict = new K8sRun(fx, "conflict", "force_conflicts = false");
        var v1 = strict.Manifests("v1", ("web.yaml", strict.Deployment("web", replicas: 1)));
        strict.Ok("ROLLOUT", strict.App, v1);
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", fx.Api.Token);
        var patch = new StringContent("""{"spec":{"replicas":4}}""");
        patch.Headers.ContentType = new("application/merge-patch+json");
        Assert.True(http.PatchAsync($"{fx.Api.Url}/apis/apps/v1/namespaces/{strict.Ns}/deployments/web?fieldManager=autoscaler", patch).Result.IsSuccessStatusCode);

        var v2 = strict.Manifests("v2", ("web.yaml", strict.Deployment("web", replicas: 2)));
        var r = strict.Fails(1, "ROLLOUT", strict.App, v2);
        Assert.Contains("applying deployment", r.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"conflict with ""autoscaler"" using apps/v1 at \S+: \.spec\.replicas", r.Stderr);
        Assert.Contains("force_conflicts", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(4, fx.Api.Get("apps/v1", "Deployment", strict.Ns, "web")!["spec"]!["replicas"]!.GetValue<long>());

        File.WriteAllText(strict.ConfigPath, File.ReadAllText(strict.ConfigPath).Replace("force_conflicts = false", "force_conflicts = true", StringComparison.Ordinal));
        strict.Ok("ROLLOUT", strict.App, v2);
        Assert.Equal(2, fx.Api.Get("apps/v1", "Deployment", strict.Ns, "web")!["spec"]!["replicas"]!.GetValue<long>());
    }

    [Fact]
    public void Rollout_waits_for_the_workloads_and_fails_after_the_timeout_naming_the_one_not_ready_and_why()
    {
        using var k = new K8sRun(fx, "slow", "rollout_timeout_seconds = 10");
        fx.Api.HeldNamespaces.Add(k.Ns);
        try
        {
            var dir = k.Manifests("m", ("web.yaml", k.Deployment("web", replicas: 2)), ("db.yaml", k.Deployment("db")));
            var rollout = Task.Run(() => k.Run("ROLLOUT", k.App, dir));

            // The controller observes db but only one of the two web replicas becomes available.
            Assert.True(SpinWait.SpinUntil(() => fx.Api.Get("apps/v1", "Deployment", k.Ns, "db") is not null, TimeSpan.FromSeconds(30)));
            fx.Api.SetStatus("apps/v1", "Deployment", k.Ns, "db", new JsonObject { ["observedGeneration"] = 1, ["replicas"] = 1, ["updatedReplicas"] = 1, ["readyReplicas"] = 1, ["availableReplicas"] = 1 });
            Assert.True(SpinWait.SpinUntil(() => fx.Api.Get("apps/v1", "Deployment", k.Ns, "web") is not null, TimeSpan.FromSeconds(30)));
            fx.Api.SetStatus("apps/v1", "Deployment", k.Ns, "web", JsonNode.Parse("""
                {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1,
                 "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]}
                """)!.AsObject());

            var r = rollout.Result;
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"deployment {k.Ns}/web: 1 of 2 updated replicas available", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("MinimumReplicasUnavailable", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("rollout_timeout_seconds", r.Stderr, StringComparison.Ordinal);
            // db may be logged as waiting (info) if the module polls it before the test sets its status; it must not be named as failing.
            Assert.DoesNotContain(r.Stderr.Split('\n'), l => l.Contains($"deployment {k.Ns}/db:", StringComparison.Ordinal) && !l.Contains("info: waiting for", StringComparison.Ordinal));
        }
        finally
        {
            fx.Api.HeldNamespaces.Remove(k.Ns);
        }
    }

    [Fact]
    public void Rollout_succeeds_once_the_controller_reports_the_new_generation_rolled_out()
    {
        using var k = new K8sRun(fx, "gen", "rollout_timeout_seconds = 60");
        var v1 = k.Manifests("v1", ("web.yaml", k.Deployment("web")));
        k.Ok("ROLLOUT", k.App, v1);
        fx.Api.HeldNamespaces.Add(k.Ns);
        try
        {
            var v2 = k.Manifests("v2", ("web.yaml", k.Deployment("web", image: "appmodule/web:2.0")));
            var rollout = Task.Run(() => k.Run("ROLLOUT", k.App, v2));
            Assert.True(SpinWait.SpinUntil(() => fx.Api.Get("apps/v1", "Deployment", k.Ns, "web")?["metadata"]?["generation"]?.GetValue<long>() == 2, TimeSpan.FromSeconds(30)));
            Assert.True(SpinWait.SpinUntil(() => rollout.IsCompleted || fx.Api.Requests.Count(q => q.StartsWith($"GET /apis/apps/v1/namespaces/{k.Ns}/deployments/web", StringComparison.Ordinal)) >= 2, TimeSpan.FromSeconds(30)));
            Assert.False(rollout.IsCompleted, "ROLLOUT must wait while the controller has not observed generation 2");
            fx.Api.HeldNamespaces.Remove(k.Ns);
            fx.Api.Reconcile();
            var r = rollout.Result;
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains($"waiting for deployment {k.Ns}/web: waiting for the controller to observe generation 2", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            fx.Api.HeldNamespaces.Remove(k.Ns);
        }
    }
}
