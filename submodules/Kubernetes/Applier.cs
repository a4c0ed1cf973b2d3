using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// ROLLOUT and ROLLBACK: the manifests are read and checked, resolved against the API server and labelled with
/// the application, then applied server-side (namespaces and CRDs first, then in file order); what the application
/// no longer has is pruned, workloads stopped by STOP run again, and the rollout is waited for and recorded.
/// </summary>
internal sealed class Applier(IKubeApi api, K8sSettings settings, AppRecords records, Pruner pruner, Scaler scaler, Health health)
{
    private string DefaultNamespace => settings.NamespaceExplicit ? settings.Namespace : api.ContextNamespace ?? settings.Namespace;

    /// <summary>True when the directory (or file) holds at least one manifest file.</summary>
    public static bool HasManifests(string dir)
    {
        try
        {
            return Manifests.Files(dir).Count > 0;
        }
        catch (SubModuleFailure)
        {
            return false;
        }
    }

    public async Task RollbackAsync(string app, string rollbackDirectory, string? failedDirectory, CancellationToken ct)
    {
        var dir = rollbackDirectory;
        if (!HasManifests(dir))
        {
            if (!records.HasPrevious(app))
            {
                throw new SubModuleFailure($"cannot roll back {app}: {dir} holds no manifests and no previous manifests were recorded in {records.AppDirectory(app)}");
            }

            Log.Info($"{dir} holds no manifests; rolling back to the previously applied manifests");
            dir = records.Previous(app);
        }

        if (failedDirectory is not null)
        {
            Log.Info($"rolling back {app}: objects only in the failed manifests ({failedDirectory}) are pruned");
        }

        await RolloutAsync(app, dir, ct).ConfigureAwait(false);
    }

    public async Task RolloutAsync(string app, string dir, CancellationToken ct)
    {
        // 1. Read and check everything before touching the cluster.
        var objects = Manifests.Load(dir);
        HostAccessCheck.Check(objects, settings.HostAccess);
        var plan = await PlanAsync(app, objects, ct).ConfigureAwait(false);
        Log.Info($"rolling out {app}: {plan.Count} objects from {dir} to {api.Server}");

        // 2. Namespaces, then the objects (namespaces and CRDs first, then in file order).
        await EnsureNamespacesAsync(plan, ct).ConfigureAwait(false);
        var applied = new List<(PlannedObject Object, JsonObject Live)>();
        var crdsWaited = false;
        foreach (var o in plan.OrderBy(ApplyRank))
        {
            if (ApplyRank(o) == 2 && !crdsWaited)
            {
                if (plan.Any(p => ApplyRank(p) == 1))
                {
                    await WaitEstablishedAsync(plan.Where(p => ApplyRank(p) == 1), ct).ConfigureAwait(false);
                    api.ResetDiscovery(); // the new kinds are served now
                }

                crdsWaited = true;
            }

            JsonObject live;
            try
            {
                live = await api.ApplyAsync(o.Type, o.Namespace, o.Name, o.Body, settings.FieldManager, settings.ForceConflicts, ct).ConfigureAwait(false);
            }
            catch (KubeApiException e)
            {
                var hint = e.Status == HttpStatusCode.Conflict ? "; another field manager owns these fields: set force_conflicts = true or resolve the conflict" : string.Empty;
                throw new SubModuleFailure($"applying {o.Describe} from {o.Source.Where} failed: {e.Message}{hint}");
            }

            Log.Info($"applied {o.Describe}");
            applied.Add((o, live));
        }

        // 3. Prune what is labelled with the application but no longer in the manifests.
        await pruner.PruneAsync(app, plan, ct).ConfigureAwait(false);

        // 4. Workloads stopped by an earlier STOP run again.
        foreach (var (o, live) in applied.Where(a => Workloads.IsWorkload(a.Object.Type.ApiVersion, a.Object.Type.Kind) && Workloads.IsStopped(a.Live)))
        {
            await scaler.ResumeAsync(o.Type, live, o.Body["spec"]?["replicas"] is not null, ct).ConfigureAwait(false);
        }

        records.Record(app, dir, plan.Select(p => (p.Type.ApiVersion, p.Type.Kind)));

        // 5. Wait for the workloads to roll out.
        var workloads = plan.Where(p => Workloads.IsWorkload(p.Type.ApiVersion, p.Type.Kind)).Select(p => (p.Type, p.Namespace, p.Name)).ToList();
        await health.WaitRolledOutAsync(app, workloads, ct).ConfigureAwait(false);
        Log.Info($"{app} is rolled out ({workloads.Count} workloads ready)");
    }

    private static int ApplyRank(PlannedObject o) => o.Type.Kind switch
    {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        _ => 2,
    };

    private async Task<List<PlannedObject>> PlanAsync(string app, IReadOnlyList<ManifestObject> objects, CancellationToken ct)
    {
        var plan = new List<PlannedObject>();
        var seen = new Dictionary<string, ManifestObject>(StringComparer.Ordinal);
        var defaultNs = DefaultNamespace;
        foreach (var o in objects)
        {
            var type = await api.ResolveAsync(o.ApiVersion, o.Kind, ct).ConfigureAwait(false)
                       ?? DefinedBy(objects, o.ApiVersion, o.Kind)
                       ?? throw new SubModuleFailure($"{o.Where}: the API server does not serve kind {o.Kind} in apiVersion {o.ApiVersion}, and no CustomResourceDefinition in the manifests defines it; fix apiVersion/kind; nothing was applied");
            var ns = type.Namespaced ? o.Namespace ?? defaultNs : null;
            var body = (JsonObject)o.Body.DeepClone();
            var meta = (JsonObject)body["metadata"]!;
            if (type.Namespaced)
            {
                meta["namespace"] = ns;
            }
            else
            {
                meta.Remove("namespace");
            }

            if (meta["labels"] is not JsonObject labels)
            {
                labels = [];
                meta["labels"] = labels;
            }

            if (labels[Workloads.ApplicationLabel]?.ToString() is { } other && other != app)
            {
                Log.Warning($"{o.Where}: label {Workloads.ApplicationLabel}={other} is replaced by {app}");
            }

            labels[Workloads.ApplicationLabel] = app;
            var planned = new PlannedObject(o, type, ns, body);
            if (seen.TryGetValue(planned.Key, out var first))
            {
                throw new SubModuleFailure($"{o.Where}: {planned.Describe} is also defined at {first.Where}; define each object once; nothing was applied");
            }

            seen[planned.Key] = o;
            plan.Add(planned);
        }

        return plan;
    }

    /// <summary>The resource type a CustomResourceDefinition among the manifests defines for this kind, or null.</summary>
    private static ResourceType? DefinedBy(IReadOnlyList<ManifestObject> objects, string apiVersion, string kind)
    {
        var slash = apiVersion.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            return null;
        }

        var (group, version) = (apiVersion[..slash], apiVersion[(slash + 1)..]);
        foreach (var crd in objects.Where(o => o.Kind == "CustomResourceDefinition" && o.ApiVersion.StartsWith("apiextensions.k8s.io/", StringComparison.Ordinal)))
        {
            var spec = crd.Body["spec"];
            if (spec?["group"]?.ToString() == group && spec["names"]?["kind"]?.ToString() == kind
                && (spec["versions"] as JsonArray ?? []).Any(v => v?["name"]?.ToString() == version)
                && spec["names"]?["plural"]?.ToString() is { Length: > 0 } plural)
            {
                return new ResourceType(apiVersion, kind, plural, spec["scope"]?.ToString() != "Cluster");
            }
        }

        return null;
    }

    /// <summary>Waits until the API server serves the custom resources of the CRDs just applied (condition Established).</summary>
    private async Task WaitEstablishedAsync(IEnumerable<PlannedObject> crds, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        foreach (var crd in crds)
        {
            while (true)
            {
                var live = await api.GetObjectAsync(crd.Type, null, crd.Name, ct).ConfigureAwait(false);
                var established = (live?["status"]?["conditions"] as JsonArray ?? [])
                    .Any(c => c?["type"]?.ToString() == "Established" && c["status"]?.ToString() == "True");
                if (established)
                {
                    break;
                }

                if (clock.Elapsed >= settings.RolloutTimeout)
                {
                    throw new SubModuleFailure($"customresourcedefinition {crd.Name} is not Established within {settings.RolloutTimeout.TotalSeconds:0} s; its custom resources cannot be applied");
                }

                await Task.Delay(settings.PollInterval, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task EnsureNamespacesAsync(List<PlannedObject> plan, CancellationToken ct)
    {
        var declared = plan.Where(p => p.Type.Kind == "Namespace" && p.Type.Group.Length == 0).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var ns in plan.Where(p => p.Namespace is not null).Select(p => p.Namespace!).Distinct(StringComparer.Ordinal))
        {
            if (declared.Contains(ns) || await api.NamespaceExistsAsync(ns, ct).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                await api.CreateNamespaceAsync(ns, settings.FieldManager, ct).ConfigureAwait(false);
                Log.Info($"created namespace {ns}");
            }
            catch (KubeApiException e) when (e.Status == HttpStatusCode.Conflict)
            {
                // created meanwhile
            }
        }
    }
}
