using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>An object of the manifests, resolved against the API server and labelled.</summary>
public sealed record PlannedObject(ManifestObject Source, ResourceType Type, string? Namespace, JsonObject Body)
{
    public string Name => Source.Name;

    public string Key => Keys.Of(Type.Group, Type.Kind, Namespace, Name);

    public string Describe => $"{Type.Kind.ToLowerInvariant()} {(Namespace is null ? string.Empty : Namespace + "/")}{Name}";
}

public static class Keys
{
    public static string Of(string group, string kind, string? ns, string name) => $"{group}|{kind}|{ns}|{name}";
}

/// <summary>
/// The k8s orchestrator sub-module. Objects are applied server-side, labelled
/// <c>app.mender.io/application=&lt;app&gt;</c>; everything else (prune, STOP, START, PURGE, ALIVE,
/// HEALTHY, LS_COMPONENTS) finds the application's objects by that label. STOP scales workloads to
/// zero (remembering the replicas in an annotation) and never deletes PersistentVolumeClaims or
/// namespaces. Images go to containerd's k8s.io namespace with <c>ctr</c>.
/// </summary>
public sealed partial class KubernetesSubModule : ISubModule, IDisposable
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

    private readonly K8sSettings _settings;
    private readonly SubModuleContext _context;
    private readonly Containerd _containerd;
    // Per application under state_dir: the snapshots "current" (the manifests last rolled out, as they came) and
    // "previous" (the ones before), and the record "types" (the kinds applied, one "apiVersion kind" a line, so that
    // prune and purge look for them even when they are not among the usual kinds).
    private const string CurrentSnapshot = "current";
    private const string PreviousSnapshot = "previous";
    private const string TypesRecord = "types";
    private const string RestartsRecord = "restarts";
    private readonly ManifestStore _state;
    private KubeApi? _api;

    public KubernetesSubModule(K8sSettings settings, SubModuleContext context)
    {
        _settings = settings;
        _context = context;
        _containerd = new Containerd(settings);
        _state = new ManifestStore(settings.StateDirectory);
    }

    /// <summary>Connected on first use, so that image calls work without a reachable cluster.</summary>
    private KubeApi Api => _api ??= KubeApi.Connect(_settings, _context.Variables);

    private string DefaultNamespace => _settings.NamespaceExplicit ? _settings.Namespace : Api.ContextNamespace ?? _settings.Namespace;

    private static string Selector(string app) => $"{Workloads.ApplicationLabel}={app}";

    // ---- images ---------------------------------------------------------------------------------

    public Task LoadAsync(SubModuleCall.Load call, CancellationToken ct)
    {
        if (call.UrlCurrent != call.UrlNew)
        {
            Log.Info($"{call.UrlNew}: the k8s sub-module does not apply deep deltas; {call.File} must hold the whole image");
        }

        return _containerd.ImportAsync(call.File, call.UrlNew, ct);
    }

    public Task SaveAsync(SubModuleCall.Save call, CancellationToken ct) => _containerd.ExportAsync(call.Url, call.OutputFile, ct);

    /// <summary>Removes an image from containerd, unless a workload or pod of the cluster still names it.</summary>
    public async Task DeleteAsync(SubModuleCall.Delete call, CancellationToken ct)
    {
        IReadOnlyList<string> users;
        try
        {
            users = await ImageUsersAsync(Containerd.Normalize(call.Url), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ConfigException || (e is SubModuleFailure && e is not KubeApiException))
        {
            Log.Warning($"cannot check whether the cluster still uses {call.Url} ({e.Message}); deleting it anyway");
            users = [];
        }

        if (users.Count > 0)
        {
            throw new SubModuleFailure($"image {call.Url} is in use by {string.Join(", ", users)}; stop or remove those first");
        }

        await _containerd.RemoveAsync(call.Url, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The objects of the whole cluster that name the image (normalized): workloads, jobs, cron jobs,
    /// ReplicaSets that still want pods, and pods that no controller owns (a controlled pod's owner is
    /// what keeps it, and pods being deleted are on their way out).
    /// </summary>
    private async Task<IReadOnlyList<string>> ImageUsersAsync(string normalizedImage, CancellationToken ct)
    {
        var users = new List<string>();
        foreach (var (apiVersion, kind) in Workloads.ImageKinds.Append(("apps/v1", "ReplicaSet")))
        {
            if (await Api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await Api.ListAsync(type, string.Empty, ct).ConfigureAwait(false))
            {
                var skip = kind switch
                {
                    "Pod" => IsControlled(live) || live["metadata"]?["deletionTimestamp"] is not null,
                    "ReplicaSet" => Workloads.Long(live["spec"]?["replicas"], 1) == 0,
                    "Job" => IsControlled(live) || (live["status"]?["conditions"] as JsonArray ?? []).Any(c =>
                        c?["type"]?.GetValue<string>() is "Complete" or "Failed" && c["status"]?.GetValue<string>() == "True"),
                    _ => false,
                };
                if (!skip && Workloads.Images(live).Any(i => Containerd.Normalize(i) == normalizedImage))
                {
                    users.Add(Workloads.Describe(live));
                }
            }
        }

        return users;
    }

    // ---- rollout --------------------------------------------------------------------------------

    public async Task RolloutAsync(SubModuleCall.Rollout call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        await RolloutDirectoryAsync(call.Application, call.ManifestsDirectory, ct).ConfigureAwait(false);
    }

    public async Task RollbackAsync(SubModuleCall.Rollback call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var dir = call.RollbackDirectory;
        if (!HasManifests(dir))
        {
            if (!_state.HasSnapshot(call.Application, PreviousSnapshot))
            {
                throw new SubModuleFailure($"cannot roll back {call.Application}: {dir} holds no manifests and no previous manifests were recorded in {_state.AppDirectory(call.Application)}");
            }

            Log.Info($"{dir} holds no manifests; rolling back to the previously applied manifests");
            dir = _state.Snapshot(call.Application, PreviousSnapshot);
        }

        if (call.FailedDirectory is not null)
        {
            Log.Info($"rolling back {call.Application}: objects only in the failed manifests ({call.FailedDirectory}) are pruned");
        }

        await RolloutDirectoryAsync(call.Application, dir, ct).ConfigureAwait(false);
    }

    /// <summary>Records a rollout: current becomes previous (unless <paramref name="manifestsDirectory"/> is current itself), the given manifests become current.</summary>
    private void Record(string app, string manifestsDirectory, IEnumerable<(string ApiVersion, string Kind)> types)
    {
        var same = string.Equals(Path.GetFullPath(_state.Snapshot(app, CurrentSnapshot)).TrimEnd('/'), Path.GetFullPath(manifestsDirectory).TrimEnd('/'), StringComparison.Ordinal);
        _state.Keep(app, CurrentSnapshot, manifestsDirectory, Manifests.Files, keepOldAs: same ? null : PreviousSnapshot);
        _state.WriteRecord(app, TypesRecord, AppliedTypes(app).Concat(types).Distinct().Select(t => $"{t.ApiVersion} {t.Kind}"));
    }

    /// <summary>(apiVersion, kind) pairs applied for the application so far.</summary>
    private IReadOnlyList<(string ApiVersion, string Kind)> AppliedTypes(string app) =>
        (_state.ReadRecord(app, TypesRecord) ?? [])
            .Select(l => l.Split(' ', 2, StringSplitOptions.TrimEntries))
            .Where(p => p.Length == 2 && p[0].Length > 0 && p[1].Length > 0)
            .Select(p => (p[0], p[1]))
            .ToList();

    private static bool HasManifests(string dir)
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

    private async Task RolloutDirectoryAsync(string app, string dir, CancellationToken ct)
    {
        // 1. Read and check everything before touching the cluster.
        var objects = Manifests.Load(dir);
        HostAccessCheck.Check(objects, _settings.HostAccess);
        var plan = await PlanAsync(app, objects, ct).ConfigureAwait(false);
        Log.Info($"rolling out {app}: {plan.Count} objects from {dir} to {Api.Server}");

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
                    Api.ResetDiscovery(); // the new kinds are served now
                }

                crdsWaited = true;
            }

            JsonObject live;
            try
            {
                live = await Api.ApplyAsync(o.Type, o.Namespace, o.Name, o.Body, _settings.FieldManager, _settings.ForceConflicts, ct).ConfigureAwait(false);
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
        var keep = plan.Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        await DeleteLabelledAsync(app, plan.Select(p => (p.Type.ApiVersion, p.Type.Kind)), keep, purge: false, ct).ConfigureAwait(false);

        // 4. Workloads stopped by an earlier STOP run again.
        foreach (var (o, live) in applied.Where(a => Workloads.IsWorkload(a.Object.Type.ApiVersion, a.Object.Type.Kind) && Workloads.IsStopped(a.Live)))
        {
            await ResumeAsync(o.Type, live, o.Body["spec"]?["replicas"] is not null, ct).ConfigureAwait(false);
        }

        Record(app, dir, plan.Select(p => (p.Type.ApiVersion, p.Type.Kind)));

        // 5. Wait for the workloads to roll out.
        var workloads = plan.Where(p => Workloads.IsWorkload(p.Type.ApiVersion, p.Type.Kind)).Select(p => (p.Type, p.Namespace, p.Name)).ToList();
        RecordRestarts(app, await WaitRolledOutAsync(workloads, ct).ConfigureAwait(false));
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
            var type = await Api.ResolveAsync(o.ApiVersion, o.Kind, ct).ConfigureAwait(false)
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
                var live = await Api.GetAsync(crd.Type.ObjectPath(null, crd.Name), ct).ConfigureAwait(false);
                var established = (live?["status"]?["conditions"] as JsonArray ?? [])
                    .Any(c => c?["type"]?.ToString() == "Established" && c["status"]?.ToString() == "True");
                if (established)
                {
                    break;
                }

                if (clock.Elapsed >= _settings.RolloutTimeout)
                {
                    throw new SubModuleFailure($"customresourcedefinition {crd.Name} is not Established within {_settings.RolloutTimeout.TotalSeconds:0} s; its custom resources cannot be applied");
                }

                await Task.Delay(_settings.PollInterval, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task EnsureNamespacesAsync(List<PlannedObject> plan, CancellationToken ct)
    {
        var declared = plan.Where(p => p.Type.Kind == "Namespace" && p.Type.Group.Length == 0).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var ns in plan.Where(p => p.Namespace is not null).Select(p => p.Namespace!).Distinct(StringComparer.Ordinal))
        {
            if (declared.Contains(ns) || await Api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(ns)}", ct).ConfigureAwait(false) is not null)
            {
                continue;
            }

            try
            {
                var body = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = ns } };
                await Api.CreateAsync("/api/v1/namespaces", body, _settings.FieldManager, ct).ConfigureAwait(false);
                Log.Info($"created namespace {ns}");
            }
            catch (KubeApiException e) when (e.Status == HttpStatusCode.Conflict)
            {
                // created meanwhile
            }
        }
    }

    /// <summary>
    /// Deletes the objects labelled with the application that are not in <paramref name="keep"/>.
    /// Namespaces are never deleted; PersistentVolumeClaims only when purging with purge_pvcs.
    /// Objects controlled by another object (pods of a ReplicaSet, ...) are left to the garbage collector.
    /// </summary>
    private async Task<int> DeleteLabelledAsync(string app, IEnumerable<(string ApiVersion, string Kind)> kinds, HashSet<string> keep, bool purge, CancellationToken ct)
    {
        var all = UsualKinds.Concat(AppliedTypes(app)).Concat(kinds).Distinct().ToList();
        var types = new List<ResourceType>();
        foreach (var (apiVersion, kind) in all)
        {
            if (await Api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is { } t)
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
            foreach (var live in await Api.ListAsync(type, Selector(app), ct).ConfigureAwait(false))
            {
                var meta = live["metadata"]!;
                var name = meta["name"]!.GetValue<string>();
                var ns = type.Namespaced ? meta["namespace"]?.GetValue<string>() : null;
                if (keep.Contains(Keys.Of(type.Group, type.Kind, ns, name)) || IsControlled(live))
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

                if (type.Kind == "PersistentVolumeClaim" && type.Group.Length == 0 && !(purge && _settings.PurgePvcs))
                {
                    keptPvcs.Add(what);
                    continue;
                }

                if (purge && _settings.PurgePvcs && type.Kind == "StatefulSet" && live["spec"]?["volumeClaimTemplates"] is JsonArray templates)
                {
                    foreach (var t in templates)
                    {
                        if (t?["metadata"]?["name"]?.GetValue<string>() is { } claim)
                        {
                            claimPrefixes.Add((ns!, $"{claim}-{name}-"));
                        }
                    }
                }

                if (await Api.DeleteAsync(type, ns, name, ct).ConfigureAwait(false))
                {
                    Log.Info($"{(purge ? "deleted" : "pruned")} {what}");
                    deleted++;
                }
            }
        }

        // PVCs made from StatefulSet volumeClaimTemplates do not carry our label; they are named <template>-<set>-<ordinal>.
        if (claimPrefixes.Count > 0 && await Api.ResolveAsync("v1", "PersistentVolumeClaim", ct).ConfigureAwait(false) is { } pvc)
        {
            foreach (var group in claimPrefixes.GroupBy(c => c.Namespace))
            {
                var list = await Api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(group.Key)}/persistentvolumeclaims", ct).ConfigureAwait(false);
                foreach (var item in (list?["items"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    var name = item["metadata"]!["name"]!.GetValue<string>();
                    if (group.Any(c => name.StartsWith(c.Prefix, StringComparison.Ordinal) && name[c.Prefix.Length..].All(char.IsAsciiDigit) && name.Length > c.Prefix.Length)
                        && await Api.DeleteAsync(pvc, group.Key, name, ct).ConfigureAwait(false))
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

    private static bool IsControlled(JsonObject live) =>
        live["metadata"]?["ownerReferences"] is JsonArray owners && owners.Any(o => o?["controller"]?.GetValue<bool>() == true);

    /// <summary>Records the restart counts a ROLLOUT or START left (record <c>restarts</c>: "pod-uid/container count" lines, HEALTHY's baseline).</summary>
    private void RecordRestarts(string app, IReadOnlyDictionary<string, long> counts) =>
        _state.WriteRecord(app, RestartsRecord, counts.Select(c => $"{c.Key} {c.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}"));

    /// <summary>The restart counts the last ROLLOUT/START left; empty when none were recorded.</summary>
    private Dictionary<string, long> Restarts(string app)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var p in (_state.ReadRecord(app, RestartsRecord) ?? []).Select(l => l.Split(' ')).Where(p => p.Length == 2))
        {
            counts[p[0]] = long.TryParse(p[1], System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
        }

        return counts;
    }

    /// <summary>
    /// Waits until every workload rolled out; a container that restarts meanwhile fails it at once (its restart
    /// count above what the first look saw). Returns the restart counts at the end: HEALTHY's baseline.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, long>> WaitRolledOutAsync(IReadOnlyList<(ResourceType Type, string? Namespace, string Name)> workloads, CancellationToken ct)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        if (workloads.Count == 0)
        {
            return counts;
        }

        var clock = Stopwatch.StartNew();
        var lastReport = new Dictionary<string, string>(StringComparer.Ordinal);
        while (true)
        {
            // The last round (timeout reached) also asks the pods what is wrong, for the message.
            var final = clock.Elapsed >= _settings.RolloutTimeout;
            var notReady = new List<string>();
            foreach (var (type, ns, name) in workloads)
            {
                var live = await Api.GetAsync(type.ObjectPath(ns, name), ct).ConfigureAwait(false);
                var what = $"{type.Kind.ToLowerInvariant()} {(ns is null ? string.Empty : ns + "/")}{name}";
                if (live is null)
                {
                    notReady.Add($"{what}: does not exist (deleted meanwhile?)");
                    continue;
                }

                var state = Workloads.Evaluate(live);
                if (state.Failed)
                {
                    throw new SubModuleFailure($"{what} failed to roll out: {state.Reason}");
                }

                var pods = await PodsOfAsync(live, ct).ConfigureAwait(false);
                if (Pods.RestartedSince(pods, counts, onlyKnown: true) is { Count: > 0 } restarted)
                {
                    throw new SubModuleFailure($"{what} failed to roll out: {string.Join("; ", restarted.Take(4))}");
                }

                foreach (var (key, count) in Pods.RestartCounts(pods))
                {
                    counts.TryAdd(key, count);
                }

                if (!state.RolledOut)
                {
                    notReady.Add($"{what}: {(final ? await WithPodProblemsAsync(live, state.Reason, ct).ConfigureAwait(false) : state.Reason)}");
                    if (!lastReport.TryGetValue(what, out var last) || last != state.Reason)
                    {
                        Log.Info($"waiting for {what}: {state.Reason}");
                        lastReport[what] = state.Reason;
                    }
                }
            }

            if (notReady.Count == 0)
            {
                return counts;
            }

            if (final)
            {
                throw new SubModuleFailure($"not rolled out within {_settings.RolloutTimeout.TotalSeconds:0} s (rollout_timeout_seconds): {string.Join("; ", notReady)}");
            }

            await Task.Delay(_settings.PollInterval, ct).ConfigureAwait(false);
        }
    }

    // ---- stop / start ---------------------------------------------------------------------------

    private async Task<List<(ResourceType Type, JsonObject Live)>> AppWorkloadsAsync(string app, CancellationToken ct)
    {
        var result = new List<(ResourceType, JsonObject)>();
        foreach (var (apiVersion, kind) in Workloads.Kinds)
        {
            if (await Api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await Api.ListAsync(type, Selector(app), ct).ConfigureAwait(false))
            {
                if (!IsControlled(live))
                {
                    result.Add((type, live));
                }
            }
        }

        return result;
    }

    private static string? NamespaceOf(JsonObject live) => live["metadata"]?["namespace"]?.GetValue<string>();

    private static string NameOf(JsonObject live) => live["metadata"]!["name"]!.GetValue<string>();

    public async Task StopAsync(SubModuleCall.Stop call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var workloads = await AppWorkloadsAsync(call.Application, ct).ConfigureAwait(false);
        if (workloads.Count == 0)
        {
            Log.Info($"{call.Application} has no workloads to stop");
            return;
        }

        foreach (var (type, live) in workloads)
        {
            if (Workloads.IsStopped(live))
            {
                Log.Info($"{Workloads.Describe(live)} is already stopped");
                continue;
            }

            JsonObject patch;
            if (type.Kind == "DaemonSet")
            {
                // A DaemonSet cannot be scaled; a node selector no node matches takes its pods away.
                patch = new JsonObject
                {
                    ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [Workloads.StoppedAnnotation] = "true" } },
                    ["spec"] = new JsonObject { ["template"] = new JsonObject { ["spec"] = new JsonObject { ["nodeSelector"] = new JsonObject { [Workloads.StoppedNodeSelector] = "true" } } } },
                };
            }
            else
            {
                var replicas = Workloads.Long(live["spec"]?["replicas"], 1);
                patch = new JsonObject
                {
                    ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [Workloads.StoppedReplicasAnnotation] = replicas.ToString(System.Globalization.CultureInfo.InvariantCulture) } },
                    ["spec"] = new JsonObject { ["replicas"] = 0 },
                };
            }

            await Api.MergePatchAsync(type, NamespaceOf(live), NameOf(live), patch, _settings.FieldManager, ct).ConfigureAwait(false);
            Log.Info($"stopped {Workloads.Describe(live)}");
        }

        // Wait until the pods are gone, so that a following ROLLOUT or image removal finds them stopped.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var running = new List<string>();
            foreach (var (type, live) in workloads)
            {
                var now = await Api.GetAsync(type.ObjectPath(NamespaceOf(live), NameOf(live)), ct).ConfigureAwait(false);
                if (now is not null && !Workloads.IsScaledDown(now))
                {
                    running.Add(Workloads.Describe(now));
                }
            }

            if (running.Count == 0)
            {
                Log.Info($"{call.Application} is stopped (persistent volume claims and namespaces kept)");
                return;
            }

            if (clock.Elapsed >= _settings.RolloutTimeout)
            {
                throw new SubModuleFailure($"pods still running {_settings.RolloutTimeout.TotalSeconds:0} s after scaling to zero: {string.Join(", ", running)}");
            }

            await Task.Delay(_settings.PollInterval, ct).ConfigureAwait(false);
        }
    }

    public async Task StartAsync(SubModuleCall.Start call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var workloads = await AppWorkloadsAsync(call.Application, ct).ConfigureAwait(false);
        if (workloads.Count == 0)
        {
            if (call.ManifestsDirectory is not null && HasManifests(call.ManifestsDirectory))
            {
                Log.Info($"{call.Application} has no workloads in the cluster; rolling out {call.ManifestsDirectory}");
                await RolloutDirectoryAsync(call.Application, call.ManifestsDirectory, ct).ConfigureAwait(false);
                return;
            }

            throw new SubModuleFailure($"nothing to start: no Deployments, StatefulSets or DaemonSets are labelled {Selector(call.Application)}; roll the application out");
        }

        foreach (var (type, live) in workloads.Where(w => Workloads.IsStopped(w.Live)))
        {
            await ResumeAsync(type, live, false, ct).ConfigureAwait(false);
        }

        RecordRestarts(call.Application, await WaitRolledOutAsync(workloads.Select(w => (w.Type, NamespaceOf(w.Live), NameOf(w.Live))).ToList(), ct).ConfigureAwait(false));
        Log.Info($"{call.Application} is started");
    }

    /// <summary>Undoes a STOP: replicas back from the annotation (unless the manifest sets them), node selector removed.</summary>
    private async Task ResumeAsync(ResourceType type, JsonObject live, bool manifestSetsReplicas, CancellationToken ct)
    {
        var annotations = new JsonObject { [Workloads.StoppedAnnotation] = null, [Workloads.StoppedReplicasAnnotation] = null };
        var patch = new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = annotations } };
        if (type.Kind == "DaemonSet")
        {
            patch["spec"] = new JsonObject { ["template"] = new JsonObject { ["spec"] = new JsonObject { ["nodeSelector"] = new JsonObject { [Workloads.StoppedNodeSelector] = null } } } };
        }
        else if (!manifestSetsReplicas)
        {
            var raw = live["metadata"]?["annotations"]?[Workloads.StoppedReplicasAnnotation]?.GetValue<string>();
            var replicas = long.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var r) ? r : 1;
            patch["spec"] = new JsonObject { ["replicas"] = replicas };
        }

        await Api.MergePatchAsync(type, NamespaceOf(live), NameOf(live), patch, _settings.FieldManager, ct).ConfigureAwait(false);
        Log.Info($"started {Workloads.Describe(live)}");
    }

    // ---- queries --------------------------------------------------------------------------------

    public async Task AliveAsync(SubModuleCall.Alive call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var workloads = await RequireWorkloadsAsync(call.Application, ct).ConfigureAwait(false);
        var dead = new List<string>();
        foreach (var (_, live) in workloads)
        {
            if (Workloads.IsStopped(live))
            {
                dead.Add($"{Workloads.Describe(live)}: stopped by STOP");
                continue;
            }

            if (Workloads.Desired(live) == 0)
            {
                continue; // nothing is meant to run
            }

            var pods = await PodsOfAsync(live, ct).ConfigureAwait(false);
            if (!pods.Any(Pods.IsRunning))
            {
                var problems = Pods.Problems(pods);
                dead.Add($"{Workloads.Describe(live)}: no running pod{(problems.Length > 0 ? " (" + problems + ")" : pods.Count == 0 ? " (no pods)" : string.Empty)}");
            }
        }

        if (dead.Count > 0)
        {
            throw new SubModuleFailure($"{call.Application} is not alive: {string.Join("; ", dead)}");
        }
    }

    public async Task HealthyAsync(SubModuleCall.Healthy call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var workloads = await RequireWorkloadsAsync(call.Application, ct).ConfigureAwait(false);
        var unhealthy = new List<string>();
        var baseline = Restarts(call.Application);
        foreach (var (_, live) in workloads)
        {
            // A restart since the rollout is named first: a container between two runs (back-off) also makes its
            // workload not ready, and the restart count says more than that does.
            var state = Workloads.Evaluate(live);
            if (Pods.RestartedSince(await PodsOfAsync(live, ct).ConfigureAwait(false), baseline) is { Count: > 0 } restarted)
            {
                unhealthy.Add($"{Workloads.Describe(live)}: {string.Join("; ", restarted.Take(4))}");
            }
            else if (!state.RolledOut)
            {
                unhealthy.Add($"{Workloads.Describe(live)}: {await WithPodProblemsAsync(live, state.Reason, ct).ConfigureAwait(false)}");
            }
        }

        if (unhealthy.Count > 0)
        {
            throw new SubModuleFailure($"{call.Application} is not healthy: {string.Join("; ", unhealthy)}");
        }
    }

    /// <summary>The pods a workload selects (spec.selector), in its namespace.</summary>
    private async Task<IReadOnlyList<JsonObject>> PodsOfAsync(JsonObject workload, CancellationToken ct)
    {
        var ns = NamespaceOf(workload);
        var selector = Pods.Selector(workload["spec"]?["selector"] as JsonObject);
        if (ns is null || selector is null)
        {
            return [];
        }

        var list = await Api.GetAsync($"/api/v1/namespaces/{Uri.EscapeDataString(ns)}/pods?labelSelector={Uri.EscapeDataString(selector)}", ct).ConfigureAwait(false);
        return (list?["items"] as JsonArray ?? []).OfType<JsonObject>().Where(p => p["metadata"]?["deletionTimestamp"] is null).ToList();
    }

    private async Task<string> WithPodProblemsAsync(JsonObject workload, string reason, CancellationToken ct)
    {
        var problems = Pods.Problems(await PodsOfAsync(workload, ct).ConfigureAwait(false));
        return problems.Length == 0 ? reason : $"{reason}; {problems}";
    }

    private async Task<List<(ResourceType Type, JsonObject Live)>> RequireWorkloadsAsync(string app, CancellationToken ct)
    {
        var workloads = await AppWorkloadsAsync(app, ct).ConfigureAwait(false);
        return workloads.Count > 0
            ? workloads
            : throw new SubModuleFailure($"no Deployments, StatefulSets or DaemonSets are labelled {Selector(app)}");
    }

    public async Task<IReadOnlyList<Component>> ListComponentsAsync(SubModuleCall.LsComponents call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var users = await AppImagesAsync(call.Application, ct).ConfigureAwait(false);
        var result = new List<Component>();
        foreach (var (image, names) in users.OrderBy(u => u.Key, StringComparer.Ordinal))
        {
            var extra = new Dictionary<string, string>(StringComparer.Ordinal) { ["services"] = string.Join(',', names.Order(StringComparer.Ordinal)) };
            try
            {
                if (await _containerd.ImageIdAsync(image, ct).ConfigureAwait(false) is { } id)
                {
                    extra["image_id"] = id;
                }
            }
            catch (Exception e) when (e is SubModuleFailure or ChildProcessException)
            {
                Log.Debug($"no image ID for {image}: {e.Message}");
            }

            result.Add(new Component("image", image, extra));
        }

        return result;
    }

    /// <summary>The images of the application's workloads, pods and jobs, each with the names of the objects using it.</summary>
    private async Task<Dictionary<string, SortedSet<string>>> AppImagesAsync(string app, CancellationToken ct)
    {
        var users = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (apiVersion, kind) in Workloads.ImageKinds)
        {
            if (await Api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await Api.ListAsync(type, Selector(app), ct).ConfigureAwait(false))
            {
                if (IsControlled(live))
                {
                    continue;
                }

                foreach (var image in Workloads.Images(live))
                {
                    if (!users.TryGetValue(image, out var set))
                    {
                        set = new SortedSet<string>(StringComparer.Ordinal);
                        users[image] = set;
                    }

                    set.Add(NameOf(live));
                }
            }
        }

        return users;
    }

    public Task ExportManifestAsync(SubModuleCall.ExportManifest call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        if (!_state.HasSnapshot(call.Application, CurrentSnapshot))
        {
            throw new SubModuleFailure($"no manifests of {call.Application} were rolled out by this module (nothing in {_state.Snapshot(call.Application, CurrentSnapshot)})");
        }

        ManifestStore.CopyFiles(_state.Snapshot(call.Application, CurrentSnapshot), call.OutputDirectory, Manifests.Files);
        return Task.CompletedTask;
    }

    public async Task PurgeAsync(SubModuleCall.Purge call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        var images = (await AppImagesAsync(call.Application, ct).ConfigureAwait(false)).Keys.ToList();
        var deleted = await DeleteLabelledAsync(call.Application, [], new HashSet<string>(StringComparer.Ordinal), purge: true, ct).ConfigureAwait(false);

        // The images go too, unless something else in the cluster still runs them.
        foreach (var image in images)
        {
            var users = await ImageUsersAsync(Containerd.Normalize(image), ct).ConfigureAwait(false);
            if (users.Count > 0)
            {
                Log.Info($"kept image {image}: used by {string.Join(", ", users)}");
                continue;
            }

            try
            {
                await _containerd.RemoveAsync(image, ct).ConfigureAwait(false);
                Log.Info($"deleted image {image}");
            }
            catch (Exception e) when (e is SubModuleFailure or ChildProcessException)
            {
                Log.Warning($"could not delete image {image}: {e.Message}");
            }
        }

        _state.Forget(call.Application);
        Log.Info($"purged {call.Application}: {deleted} objects and {images.Count} images deleted{(_settings.PurgePvcs ? string.Empty : " (persistent volume claims kept: purge_pvcs = false)")}");
    }

    public Task<EngineStorage> StorageAsync(CancellationToken ct) => _containerd.StorageAsync(ct);

    public async Task<IReadOnlyList<Requirement>> RequirementsAsync(CancellationToken ct)
    {
        var result = new List<Requirement>();
        try
        {
            var version = await Api.GetAsync("/version", ct).ConfigureAwait(false);
            var api = await Api.GetAsync("/api", ct).ConfigureAwait(false);
            result.Add(api is null
                ? new Requirement("api-server", false, "error", $"{Api.Server} answers but serves no Kubernetes API (kubeconfig: {Api.Source})")
                : new Requirement("api-server", true, "error", $"{Api.Server} (Kubernetes {version?["gitVersion"]?.GetValue<string>() ?? "?"}, kubeconfig: {Api.Source})"));
        }
        catch (Exception e) when (e is SubModuleFailure or ConfigException)
        {
            result.Add(new Requirement("api-server", false, "error", e.Message));
        }

        var (ok, detail) = await _containerd.ProbeAsync(ct).ConfigureAwait(false);
        result.Add(new Requirement("containerd", ok, "error", detail));

        // The artifact's platform (set by `app` from its meta-data) must be this machine's: containerd
        // imports images for the node it runs on.
        if (_settings.Platform is { } platform)
        {
            var machine = Platforms.Machine();
            var parts = machine.Split('/');
            var same = Platforms.Matches(platform, parts[0], parts[1], null);
            result.Add(new Requirement("platform", same, "error", same
                ? $"{platform} on a {machine} machine"
                : $"the artifact is for {platform}, but this machine is {machine}: install the artifact built for {machine}"));
        }

        // With MENDER_APP_MANIFESTS_DIR (set by `app` for the version it is about to install): the
        // manifests must parse into objects that the device's host-access policy allows, before anything stops.
        if (_context.PreCheckManifests is { } manifests)
        {
            try
            {
                var objects = Manifests.Load(manifests);
                HostAccessCheck.Check(objects, _settings.HostAccess);
                result.Add(new Requirement("manifests", true, "error", $"{objects.Count} object(s)"));
            }
            catch (SubModuleFailure e)
            {
                result.Add(new Requirement("manifests", false, "error", e.Message));
            }
        }

        return result;
    }

    private static void CheckApplication(string app)
    {
        if (!LabelValue().IsMatch(app))
        {
            throw new SubModuleFailure($"application name \"{app}\" cannot be used as a Kubernetes label value: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex LabelValue();

    public void Dispose() => _api?.Dispose();
}
