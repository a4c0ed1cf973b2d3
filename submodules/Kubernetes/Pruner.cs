using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Deletes what is labelled with the application: after a ROLLOUT, the objects no longer in the manifests
/// (prune); at PURGE, everything with its images. Namespaces and CustomResourceDefinitions are never deleted,
/// PersistentVolumeClaims only by PURGE with purge_pvcs.
/// </summary>
internal sealed class Pruner(IKubeApi api, K8sSettings settings, Containerd containerd, Inventory inventory, AppRecords records)
{
    /// <summary>Kinds looked for when pruning and purging, besides the kinds the application ever applied.</summary>
    private static readonly (string ApiVersion, string Kind)[] UsualKinds =
    [
        ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"), ("batch/v1", "CronJob"),
        ("v1", "Pod"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"), ("v1", "PersistentVolumeClaim"),
        ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1", "NetworkPolicy"),
        ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ];

    /// <summary>Prunes what is labelled with the application but not among the planned objects.</summary>
    public Task PruneAsync(string app, IReadOnlyList<PlannedObject> plan, CancellationToken ct) =>
        DeleteLabelledAsync(app, plan.Select(p => (p.Type.ApiVersion, p.Type.Kind)), plan.Select(p => p.Key).ToHashSet(StringComparer.Ordinal), purge: false, ct);

    /// <summary>PURGE: the application's objects, then its images unless something else in the cluster runs them, then its records.</summary>
    public async Task PurgeAsync(string app, CancellationToken ct)
    {
        var images = (await inventory.AppImagesAsync(app, ct).ConfigureAwait(false)).Keys.ToList();
        var deleted = await DeleteLabelledAsync(app, [], new HashSet<string>(StringComparer.Ordinal), purge: true, ct).ConfigureAwait(false);

        // The images go too, unless something else in the cluster still runs them.
        foreach (var image in images)
        {
            var users = await inventory.ImageUsersAsync(Containerd.Normalize(image), ct).ConfigureAwait(false);
            if (users.Count > 0)
            {
                Log.Info($"kept image {image}: used by {string.Join(", ", users)}");
                continue;
            }

            try
            {
                await containerd.RemoveAsync(image, ct).ConfigureAwait(false);
                Log.Info($"deleted image {image}");
            }
            catch (Exception e) when (e is SubModuleFailure or ChildProcessException)
            {
                Log.Warning($"could not delete image {image}: {e.Message}");
            }
        }

        records.Forget(app);
        Log.Info($"purged {app}: {deleted} objects and {images.Count} images deleted{(settings.PurgePvcs ? string.Empty : " (persistent volume claims kept: purge_pvcs = false)")}");
    }

    /// <summary>
    /// Deletes the objects labelled with the application that are not in <paramref name="keep"/>.
    /// Namespaces are never deleted; PersistentVolumeClaims only when purging with purge_pvcs.
    /// Objects controlled by another object (pods of a ReplicaSet, ...) are left to the garbage collector.
    /// </summary>
    private async Task<int> DeleteLabelledAsync(string app, IEnumerable<(string ApiVersion, string Kind)> kinds, HashSet<string> keep, bool purge, CancellationToken ct)
    {
        var all = UsualKinds.Concat(records.AppliedTypes(app)).Concat(kinds).Distinct().ToList();
        var types = new List<ResourceType>();
        foreach (var (apiVersion, kind) in all)
        {
            if (await api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is { } t)
            {
                types.Add(t);
            }
        }

        // Workloads first, so that their pods go before their config.
        types = types.OrderBy(t => Workloads.IsWorkload(t.ApiVersion, t.Kind) ? 0 : 1).ToList();
        var deleted = 0;
        var keptPvcs = new List<string>();
        var claimPrefixes = new List<(string Namespace, string Prefix)>();
        foreach (var type in types)
        {
            foreach (var live in await api.ListAsync(type, Inventory.Selector(app), ct).ConfigureAwait(false))
            {
                var name = live.Name();
                var ns = type.Namespaced ? live.Namespace() : null;
                if (keep.Contains(Keys.Of(type.Group, type.Kind, ns, name)) || live.IsControlled())
                {
                    continue;
                }

                var what = $"{type.Kind.ToLowerInvariant()} {(ns is null ? string.Empty : ns + "/")}{name}";
                if (type.Kind == "Namespace" && type.Group.Length == 0)
                {
                    Log.Info($"kept {what}: namespaces are never deleted");
                    continue;
                }

                if (type.Kind == "CustomResourceDefinition")
                {
                    Log.Info($"kept {what}: deleting it would delete every object of its kind in the cluster");
                    continue;
                }

                if (type.Kind == "PersistentVolumeClaim" && type.Group.Length == 0 && !(purge && settings.PurgePvcs))
                {
                    keptPvcs.Add(what);
                    continue;
                }

                if (purge && settings.PurgePvcs && type.Kind == "StatefulSet" && live["spec"]?["volumeClaimTemplates"] is JsonArray templates)
                {
                    foreach (var t in templates)
                    {
                        if (t?["metadata"]?["name"]?.GetValue<string>() is { } claim)
                        {
                            claimPrefixes.Add((ns!, $"{claim}-{name}-"));
                        }
                    }
                }

                if (await api.DeleteAsync(type, ns, name, ct).ConfigureAwait(false))
                {
                    Log.Info($"{(purge ? "deleted" : "pruned")} {what}");
                    deleted++;
                }
            }
        }

        // PVCs made from StatefulSet volumeClaimTemplates do not carry our label; they are named <template>-<set>-<ordinal>.
        if (claimPrefixes.Count > 0 && await api.ResolveAsync("v1", "PersistentVolumeClaim", ct).ConfigureAwait(false) is { } pvc)
        {
            foreach (var group in claimPrefixes.GroupBy(c => c.Namespace))
            {
                foreach (var item in await api.PersistentVolumeClaimsAsync(group.Key, ct).ConfigureAwait(false))
                {
                    var name = item.Name();
                    if (group.Any(c => name.StartsWith(c.Prefix, StringComparison.Ordinal) && name[c.Prefix.Length..].All(char.IsAsciiDigit) && name.Length > c.Prefix.Length)
                        && await api.DeleteAsync(pvc, group.Key, name, ct).ConfigureAwait(false))
                    {
                        Log.Info($"deleted persistentvolumeclaim {group.Key}/{name}");
                        deleted++;
                    }
                }
            }
        }

        if (keptPvcs.Count > 0)
        {
            Log.Info($"kept {string.Join(", ", keptPvcs)}: claims hold data and are deleted only by PURGE with purge_pvcs = true");
        }

        return deleted;
    }
}
