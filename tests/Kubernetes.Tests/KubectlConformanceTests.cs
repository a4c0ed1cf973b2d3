using System.Text.Json.Nodes;

namespace Kubernetes.Tests;

/// <summary>
/// Holds the fake API server to the real client: every case drives the fake only through
/// <c>kubectl</c> (over HTTPS, with the fake's kubeconfig, validation on) and expects what a real
/// API server answers. Each expectation names where the real behaviour is written down.
/// </summary>
[Collection("kubectl")]
public sealed class KubectlConformanceTests(KubectlFixture fx) : IDisposable
{
    private readonly string _ns = Unique.Name("kc");

    private string Ns()
    {
        fx.Ok("create", "namespace", _ns);
        return _ns;
    }

    private string File(string yaml) => fx.Dir.Write($"{_ns}-{Guid.NewGuid():N}.yaml", yaml);

    private static string Deployment(string name, string ns, int replicas = 1, string image = "appmodule/web:1.0", string labels = "tier: web") => $"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}
          namespace: {ns}
          labels: {"{"}{labels}{"}"}
        spec:
          replicas: {replicas}
          selector:
            matchLabels: {"{"}app: {name}{"}"}
          template:
            metadata:
              labels: {"{"}app: {name}{"}"}
            spec:
              containers:
              - name: main
                image: {image}

        """;

    private static JsonObject Json(string text) => JsonNode.Parse(text)!.AsObject();

    // Discovery. Short names and categories are those of the apiserver's REST storage for each
    // kind (kubernetes/pkg/registry/*/storage: ShortNames(), Categories()), listed by `kubectl
    // api-resources` on any cluster; `all` is the category kubectl expands for `get all`
    // (https://kubernetes.io/docs/reference/kubectl/quick-reference/, "Viewing and finding resources").
    [SkippableFact]
    public void Discovery_lists_short_names_and_categories_so_ns_deploy_cm_pvc_and_all_work()
    {
        var resources = KubectlFixture.Table(fx.Ok("api-resources"));
        string Short(string name) => resources.Single(r => r["NAME"] == name)["SHORTNAMES"];
        Assert.Equal("ns", Short("namespaces"));
        Assert.Equal("cm", Short("configmaps"));
        Assert.Equal("pvc", Short("persistentvolumeclaims"));
        Assert.Equal("deploy", Short("deployments"));
        Assert.Equal("sts", Short("statefulsets"));
        Assert.Equal("po", Short("pods"));
        Assert.Equal("svc", Short("services"));
        Assert.Equal("crd,crds", Short("customresourcedefinitions"));

        var ns = KubectlFixture.Table(fx.Ok("get", "ns"));
        Assert.Contains(ns, r => r["NAME"] == "default" && r["STATUS"] == "Active");
        Assert.Contains(ns, r => r["NAME"] == "kube-system");

        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n) + $"""
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {"{"}name: settings, namespace: {n}{"}"}
            data: {"{"}mode: "2"{"}"}
            ---
            apiVersion: v1
            kind: Service
            metadata: {"{"}name: web, namespace: {n}{"}"}
            spec:
              selector: {"{"}app: web{"}"}
              ports: [{"{"}port: 80{"}"}]
            """));
        Assert.Equal("deployment.apps/web", fx.Ok("get", "deploy", "-n", n, "-o", "name").Trim());
        Assert.Equal("configmap/settings", fx.Ok("get", "cm", "-n", n, "-o", "name").Trim());

        // `all` holds pods, services and workloads, not ConfigMaps.
        var all = fx.Ok("get", "all", "-n", n, "-o", "name").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("deployment.apps/web", all);
        Assert.Contains("service/web", all);
        Assert.Contains(all, l => l.StartsWith("pod/web-", StringComparison.Ordinal));
        Assert.DoesNotContain("configmap/settings", all);
    }

    // Server-side apply: a field owned by another manager whose value changes is a conflict (409);
    // --force-conflicts takes the field over; an unchanged re-apply shares ownership
    // (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts). The message is
    // the apiserver's (k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go, getConflictMessage).
    [SkippableFact]
    public void Server_side_apply_reports_a_conflict_with_the_other_field_manager_unless_forced()
    {
        var n = Ns();
        Assert.Contains("deployment.apps/web serverside-applied", fx.Ok("apply", "--server-side", "--field-manager=alice", "-f", File(Deployment("web", n, replicas: 1))), StringComparison.Ordinal);
        Assert.Contains("deployment.apps/web serverside-applied", fx.Ok("apply", "--server-side", "--field-manager=bob", "-f", File(Deployment("web", n, replicas: 1))), StringComparison.Ordinal);

        var err = fx.Fails("apply", "--server-side", "--field-manager=bob", "-f", File(Deployment("web", n, replicas: 3)));
        Assert.Contains("Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas", err, StringComparison.Ordinal);
        Assert.Contains("--force-conflicts", err, StringComparison.Ordinal);
        Assert.Equal("1", fx.Ok("get", "deploy", "web", "-n", n, "-o", "jsonpath={.spec.replicas}").Trim());

        fx.Ok("apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", File(Deployment("web", n, replicas: 3)));
        var web = Json(fx.Ok("get", "deploy", "web", "-n", n, "-o", "json", "--show-managed-fields"));
        Assert.Equal(3, web["spec"]!["replicas"]!.GetValue<int>());
        var managers = web["metadata"]!["managedFields"]!.AsArray().OfType<JsonObject>().ToList();
        Assert.All(managers, m => Assert.Equal("Apply", m["operation"]!.GetValue<string>()));
        Assert.NotNull(managers.Single(m => m["manager"]!.GetValue<string>() == "bob")["fieldsV1"]!["f:spec"]!["f:replicas"]);
        Assert.Null(managers.Single(m => m["manager"]!.GetValue<string>() == "alice")["fieldsV1"]!["f:spec"]!["f:replicas"]);
    }

    // GET returns the stored object with the server-set metadata (API reference, ObjectMeta: uid,
    // resourceVersion, generation, creationTimestamp are "populated by the system"); -o yaml and
    // -o json show the same object; a list carries its items.
    [SkippableFact]
    public void Get_as_json_and_yaml_returns_the_object_with_the_metadata_the_server_sets()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File($"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {"{"}name: settings, namespace: {n}, labels: {"{"}tier: web{"}"}{"}"}
            data:
              mode: "2"
              flag: "yes"
            """));
        var cm = Json(fx.Ok("get", "cm", "settings", "-n", n, "-o", "json"));
        Assert.Equal("v1", cm["apiVersion"]!.GetValue<string>());
        Assert.Equal("ConfigMap", cm["kind"]!.GetValue<string>());
        Assert.Equal(n, cm["metadata"]!["namespace"]!.GetValue<string>());
        Assert.True(Guid.TryParse(cm["metadata"]!["uid"]!.GetValue<string>(), out _));
        Assert.False(string.IsNullOrEmpty(cm["metadata"]!["resourceVersion"]!.GetValue<string>()));
        Assert.EndsWith("Z", cm["metadata"]!["creationTimestamp"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("yes", cm["data"]!["flag"]!.GetValue<string>());

        var yaml = fx.Ok("get", "configmap", "settings", "-n", n, "-o", "yaml");
        Assert.Contains("  flag: \"yes\"", yaml, StringComparison.Ordinal);
        Assert.Contains("  mode: \"2\"", yaml, StringComparison.Ordinal);
        Assert.Contains($"  uid: {cm["metadata"]!["uid"]}", yaml, StringComparison.Ordinal);

        var list = Json(fx.Ok("get", "cm", "-n", n, "-o", "json"));
        Assert.Equal("List", list["kind"]!.GetValue<string>());
        Assert.Equal("settings", list["items"]!.AsArray().Single()!["metadata"]!["name"]!.GetValue<string>());
    }

    // kubectl get prints the server's Table (API concepts, "Receiving resources as Tables"); the
    // columns are the apiserver's printers (kubernetes/pkg/printers/internalversion/printers.go:
    // deploymentColumnDefinitions, podColumnDefinitions, persistentVolumeClaimColumnDefinitions,
    // configMapColumnDefinitions); a crash-looping container makes the pod's STATUS CrashLoopBackOff
    // and RESTARTS "<n> (<age> ago)" (printPod).
    [SkippableFact]
    public void Get_prints_the_server_side_table_with_ready_status_and_restarts_columns()
    {
        var n = Ns();
        fx.Api.CrashingImages.Add($"{n}/crash:1");
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n, replicas: 2) + "---\n" + Deployment("bad", n, image: $"{n}/crash:1") + $"""
            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {"{"}name: data, namespace: {n}{"}"}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {"{"}requests: {"{"}storage: 1Mi{"}"}{"}"}
            """));

        var deploy = fx.Ok("get", "deploy", "-n", n);
        Assert.Equal(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], KubectlFixture.Headers(deploy));
        var rows = KubectlFixture.Table(deploy);
        Assert.Equal(("2/2", "2", "2"), rows.Where(r => r["NAME"] == "web").Select(r => (r["READY"], r["UP-TO-DATE"], r["AVAILABLE"])).Single());
        Assert.Equal(("0/1", "1", "0"), rows.Where(r => r["NAME"] == "bad").Select(r => (r["READY"], r["UP-TO-DATE"], r["AVAILABLE"])).Single());
        Assert.Equal(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], KubectlFixture.Headers(fx.Ok("get", "deploy", "-n", n, "-o", "wide")));
        Assert.Equal("app=web", KubectlFixture.Table(fx.Ok("get", "deploy", "web", "-n", n, "-o", "wide")).Single()["SELECTOR"]);

        var pods = fx.Ok("get", "pods", "-n", n);
        Assert.Equal(["NAME", "READY", "STATUS", "RESTARTS", "AGE"], KubectlFixture.Headers(pods));
        var podRows = KubectlFixture.Table(pods);
        Assert.Equal(2, podRows.Count(r => r["NAME"].StartsWith("web-", StringComparison.Ordinal) && r["READY"] == "1/1" && r["STATUS"] == "Running" && r["RESTARTS"] == "0"));
        var bad = podRows.Single(r => r["NAME"].StartsWith("bad-", StringComparison.Ordinal));
        Assert.Equal(("0/1", "CrashLoopBackOff"), (bad["READY"], bad["STATUS"]));
        Assert.Matches(@"^4 \(\d+s ago\)$", bad["RESTARTS"]);

        var pvc = fx.Ok("get", "pvc", "-n", n);
        Assert.Equal(["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"], KubectlFixture.Headers(pvc));
        Assert.Equal("Bound", KubectlFixture.Table(pvc).Single()["STATUS"]);

        fx.Ok("create", "configmap", "two", "-n", n, "--from-literal=a=1", "--from-literal=b=2");
        Assert.Equal("2", KubectlFixture.Table(fx.Ok("get", "cm", "two", "-n", n)).Single()["DATA"]);
    }

    // kubectl scale PATCHes the scale subresource (autoscaling/v1 Scale; API reference "Deployment v1
    // apps", "replace scale of the specified Deployment"); the write is recorded in managedFields with
    // subresource "scale" and, without a fieldManager, the manager named by the User-Agent prefix
    // (k8s.io/apiserver/pkg/endpoints/handlers/create.go, managerOrUserAgent); a later apply of another
    // replica count conflicts with it (server-side-apply docs, "Conflicts").
    [SkippableFact]
    public void Scale_goes_through_the_scale_subresource_and_the_scaler_then_owns_the_replicas()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n, replicas: 2)));
        Assert.Equal(2, fx.Api.List("v1", "Pod", n).Count);

        Assert.Equal("deployment.apps/web scaled", fx.Ok("scale", "deployment", "web", "-n", n, "--replicas=0").Trim());
        Assert.Equal("0", fx.Ok("get", "deploy", "web", "-n", n, "-o", "jsonpath={.spec.replicas}").Trim());
        Assert.Empty(fx.Api.List("v1", "Pod", n));
        Assert.Contains(fx.Api.Requests, r => r.StartsWith($"PATCH /apis/apps/v1/namespaces/{n}/deployments/web/scale", StringComparison.Ordinal));

        var managers = Json(fx.Ok("get", "deploy", "web", "-n", n, "-o", "json", "--show-managed-fields"))["metadata"]!["managedFields"]!.AsArray().OfType<JsonObject>();
        var scaler = managers.Single(m => m["subresource"]?.GetValue<string>() == "scale");
        Assert.Equal("Update", scaler["operation"]!.GetValue<string>());
        Assert.NotNull(scaler["fieldsV1"]!["f:spec"]!["f:replicas"]);

        var err = fx.Fails("apply", "--server-side", "-f", File(Deployment("web", n, replicas: 2)));
        Assert.Matches(@"Apply failed with 1 conflict: conflict with ""[^""]+"" with subresource ""scale"" using apps/v1 at \S+: \.spec\.replicas", err);
        fx.Ok("scale", "deploy/web", "-n", n, "--replicas=1");
        Assert.Single(fx.Api.List("v1", "Pod", n));
    }

    // rollout status watches the Deployment until status.updatedReplicas/availableReplicas reach
    // spec.replicas for the observed generation, printing the reason it waits
    // (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go, DeploymentStatusViewer), and gives up
    // with "timed out waiting for the condition" after --timeout.
    [SkippableFact]
    public void Rollout_status_waits_through_a_watch_until_the_deployment_is_available()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n)));
        Assert.Contains("deployment \"web\" successfully rolled out", fx.Ok("rollout", "status", "deployment/web", "-n", n), StringComparison.Ordinal);

        fx.Api.HeldNamespaces.Add(n);
        try
        {
            fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n, replicas: 2, image: "appmodule/web:2.0")));
            var timedOut = fx.Run("rollout", "status", "deployment/web", "-n", n, "--timeout=2s");
            Assert.NotEqual(0, timedOut.ExitCode);
            Assert.Contains("Waiting for deployment spec update to be observed...", timedOut.Stdout, StringComparison.Ordinal);
            Assert.Contains("timed out waiting for the condition", timedOut.Stderr, StringComparison.Ordinal);

            var watching = Task.Run(() => fx.Run("rollout", "status", "deployment/web", "-n", n, "--timeout=60s"));
            Assert.True(SpinWait.SpinUntil(() => watching.IsCompleted || fx.Api.Requests.Any(r => r.Contains($"/namespaces/{n}/deployments?", StringComparison.Ordinal) && r.Contains("watch=true", StringComparison.Ordinal)), TimeSpan.FromSeconds(30)));
            fx.Api.SetStatus("apps/v1", "Deployment", n, "web", JsonNode.Parse("""{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}""")!.AsObject());
            fx.Api.SetStatus("apps/v1", "Deployment", n, "web", JsonNode.Parse("""{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}""")!.AsObject());
            var done = watching.Result;
            Assert.True(done.ExitCode == 0, done.ToString());
            Assert.Contains("deployment \"web\" successfully rolled out", done.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            fx.Api.HeldNamespaces.Remove(n);
        }
    }

    // Cascading deletion (https://kubernetes.io/docs/tasks/administer-cluster/use-cascading-deletion/):
    // background (kubectl's default) and foreground delete the dependents (pods); orphan leaves them,
    // with the owner reference removed by the garbage collector.
    [SkippableFact]
    public void Delete_propagates_to_the_pods_unless_the_cascade_is_orphan()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n) + "---\n" + Deployment("db", n) + "---\n" + Deployment("cache", n)));
        Assert.Equal(3, fx.Api.List("v1", "Pod", n).Count);

        Assert.Contains("deployment.apps \"web\" deleted", fx.Ok("delete", "deployment", "web", "-n", n), StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Api.List("v1", "Pod", n), p => p["metadata"]!["name"]!.GetValue<string>().StartsWith("web-", StringComparison.Ordinal));
        fx.Ok("delete", "deploy", "cache", "-n", n, "--cascade=foreground");
        Assert.DoesNotContain(fx.Api.List("v1", "Pod", n), p => p["metadata"]!["name"]!.GetValue<string>().StartsWith("cache-", StringComparison.Ordinal));

        fx.Ok("delete", "deploy", "db", "-n", n, "--cascade=orphan");
        var orphan = Assert.Single(fx.Api.List("v1", "Pod", n));
        Assert.Null(orphan["metadata"]!["ownerReferences"]);
        Assert.Contains("NotFound", fx.Fails("get", "deploy", "db", "-n", n), StringComparison.Ordinal);
        Assert.Contains("Error from server (NotFound): deployments.apps \"db\" not found", fx.Fails("delete", "deploy", "db", "-n", n), StringComparison.Ordinal);
    }

    // Label selectors: equality, inequality, set-based and existence
    // (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors);
    // field selectors on metadata.name, which every kind supports, and a refused unknown field
    // (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/).
    [SkippableFact]
    public void Label_and_field_selectors_choose_the_objects_as_the_api_does()
    {
        var n = Ns();
        fx.Ok("create", "configmap", "a", "-n", n);
        fx.Ok("create", "configmap", "b", "-n", n);
        fx.Ok("create", "configmap", "c", "-n", n);
        fx.Ok("label", "configmap", "a", "-n", n, "tier=web", "app=x");
        fx.Ok("label", "configmap", "b", "-n", n, "tier=db");

        string[] Names(params string[] selector) =>
            fx.Ok(["get", "cm", "-n", n, "-o", "name", .. selector]).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l["configmap/".Length..]).ToArray();

        Assert.Equal(["a"], Names("-l", "tier=web"));
        Assert.Equal(["b", "c"], Names("-l", "tier!=web"));
        Assert.Equal(["a", "b"], Names("-l", "tier in (web,db)"));
        Assert.Equal(["c"], Names("-l", "!tier"));
        Assert.Equal(["a"], Names("-l", "tier,app=x"));
        Assert.Equal(["b"], Names("--field-selector", "metadata.name=b"));
        Assert.Contains("field label not supported: data.x", fx.Fails("get", "cm", "-n", n, "--field-selector", "data.x=1"), StringComparison.Ordinal);
    }

    // Namespaces (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/):
    // objects cannot be created in a namespace that does not exist (404 NotFound naming the
    // namespace); -A lists across namespaces; deleting a namespace deletes everything in it.
    [SkippableFact]
    public void Namespaces_must_exist_hold_their_objects_and_take_them_when_deleted()
    {
        var missing = _ns + "-missing";
        var err = fx.Fails("apply", "--server-side", "-f", File(Deployment("web", missing)));
        Assert.Contains($"namespaces \"{missing}\" not found", err, StringComparison.Ordinal);

        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n)));
        Assert.Contains(KubectlFixture.Table(fx.Ok("get", "deploy", "-A")), r => r["NAMESPACE"] == n && r["NAME"] == "web");
        Assert.Contains($"namespace \"{n}\" deleted", fx.Ok("delete", "ns", n), StringComparison.Ordinal);
        Assert.Contains("No resources found", fx.Run("get", "deploy", "-n", n).Stderr, StringComparison.Ordinal);
        Assert.Empty(fx.Api.List("v1", "Pod", n));
    }

    // StatefulSet claims: the controller creates <template>-<set>-<ordinal> PVCs, and with the default
    // persistentVolumeClaimRetentionPolicy (whenDeleted: Retain) they survive the StatefulSet
    // (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention).
    [SkippableFact]
    public void Claims_of_a_stateful_set_are_retained_when_the_set_is_deleted()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File($"""
            apiVersion: apps/v1
            kind: StatefulSet
            metadata: {"{"}name: db, namespace: {n}{"}"}
            spec:
              replicas: 2
              serviceName: db
              selector: {"{"}matchLabels: {"{"}app: db{"}"}{"}"}
              template:
                metadata: {"{"}labels: {"{"}app: db{"}"}{"}"}
                spec:
                  containers: [{"{"}name: main, image: appmodule/db:1.0{"}"}]
              volumeClaimTemplates:
              - metadata: {"{"}name: data{"}"}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {"{"}requests: {"{"}storage: 1Mi{"}"}{"}"}
            """));
        Assert.Equal("2/2", KubectlFixture.Table(fx.Ok("get", "sts", "db", "-n", n)).Single()["READY"]);
        Assert.Equal(["data-db-0", "data-db-1"], KubectlFixture.Table(fx.Ok("get", "pvc", "-n", n)).Select(r => r["NAME"]));

        fx.Ok("delete", "statefulset", "db", "-n", n);
        Assert.Empty(fx.Api.List("v1", "Pod", n));
        Assert.Equal(["data-db-0", "data-db-1"], KubectlFixture.Table(fx.Ok("get", "pvc", "-n", n)).Select(r => r["NAME"]));
        fx.Ok("delete", "pvc", "data-db-0", "data-db-1", "-n", n);
        Assert.Contains("No resources found", fx.Run("get", "pvc", "-n", n).Stderr, StringComparison.Ordinal);
    }

    // Validation stays on: kubectl reads /openapi/v3, finds the fieldValidation parameter and leaves
    // validation to the server with fieldValidation=Strict (k8s.io/kubectl/pkg/cmd/util/
    // factory_client_access.go, Validator; https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).
    // An unknown field is refused: on create by the strict decoder (400), on server-side apply while
    // typing the patch ("field not declared in schema", a 500: kubernetes/kubernetes#122480).
    [SkippableFact]
    public void Validation_works_without_validate_false_and_unknown_fields_are_refused()
    {
        var n = Ns();
        fx.Ok("apply", "--server-side", "-f", File(Deployment("web", n)));
        Assert.Contains(fx.Api.Requests, r => r.StartsWith("GET /openapi/v3", StringComparison.Ordinal));
        Assert.Contains(fx.Api.Requests, r => r.StartsWith($"PATCH /apis/apps/v1/namespaces/{n}/deployments/web?", StringComparison.Ordinal) && r.Contains("fieldValidation=Strict", StringComparison.Ordinal));

        var unknown = $"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: odd, namespace: {n}}}\ndata: {{a: b}}\nspec: {{x: y}}\n";
        Assert.Contains($"failed to create typed patch object ({n}/odd; /v1, Kind=ConfigMap): .spec: field not declared in schema", fx.Fails("apply", "--server-side", "-f", File(unknown)), StringComparison.Ordinal);
        Assert.Contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\"", fx.Fails("create", "-f", File(unknown)), StringComparison.Ordinal);
        Assert.Contains("NotFound", fx.Fails("get", "cm", "odd", "-n", n), StringComparison.Ordinal);
    }

    // ConfigMap data is map[string]string (API reference, ConfigMap v1: "data (map[string]string)").
    // kubectl reads YAML 1.1 (sigs.k8s.io/yaml over go-yaml v2), so an unquoted `yes` is the boolean
    // true and the server refuses it: server-side apply fails typing the patch (500, "expected string",
    // kubernetes/kubernetes#139253), create fails decoding ("cannot unmarshal bool ... of type string").
    // Quoted, it is the string "yes".
    [SkippableFact]
    public void A_configmap_value_yes_unquoted_is_a_boolean_and_refused_quoted_it_is_a_string()
    {
        var n = Ns();
        string Cm(string flag) => $"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {n}}}\ndata:\n  mode: \"2\"\n  flag: {flag}\n";

        var applied = fx.Fails("apply", "--server-side", "-f", File(Cm("yes")));
        Assert.Contains($"failed to create typed patch object ({n}/settings; /v1, Kind=ConfigMap): .data.flag: expected string, got &value.valueUnstructured{{Value:true}}", applied, StringComparison.Ordinal);
        var created = fx.Fails("create", "-f", File(Cm("yes")));
        Assert.Contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal bool into Go struct field ConfigMap.data of type string", created, StringComparison.Ordinal);
        Assert.Contains("NotFound", fx.Fails("get", "cm", "settings", "-n", n), StringComparison.Ordinal);

        fx.Ok("apply", "--server-side", "-f", File(Cm("\"yes\"")));
        Assert.Equal("yes", fx.Ok("get", "cm", "settings", "-n", n, "-o", "jsonpath={.data.flag}").Trim());
    }

    public void Dispose() => fx.Api.DeleteNamespace(_ns);
}
