using System.Text.Json.Nodes;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// What the cluster holds of an application, found by its label: its workloads, their pods, the images
/// its objects name (LS_COMPONENTS), and which objects of the whole cluster name an image.
/// </summary>
internal sealed class Inventory(IKubeApi api, Containerd containerd)
{
    /// <summary>The label selector of the application's objects.</summary>
    public static string Selector(string app) => $"{Workloads.ApplicationLabel}={app}";

    /// <summary>The application's Deployments, StatefulSets and DaemonSets that no other object controls.</summary>
    public async Task<List<(ResourceType Type, JsonObject Live)>> AppWorkloadsAsync(string app, CancellationToken ct)
    {
        var result = new List<(ResourceType, JsonObject)>();
        foreach (var (apiVersion, kind) in Workloads.Kinds)
        {
            if (await api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await api.ListAsync(type, Selector(app), ct).ConfigureAwait(false))
            {
                if (!live.IsControlled())
                {
                    result.Add((type, live));
                }
            }
        }

        return result;
    }

    /// <summary>As <see cref="AppWorkloadsAsync"/>, but none is an error.</summary>
    public async Task<List<(ResourceType Type, JsonObject Live)>> RequireWorkloadsAsync(string app, CancellationToken ct)
    {
        var workloads = await AppWorkloadsAsync(app, ct).ConfigureAwait(false);
        return workloads.Count > 0
            ? workloads
            : throw new SubModuleFailure($"no Deployments, StatefulSets or DaemonSets are labelled {Selector(app)}");
    }

    /// <summary>The pods a workload selects (spec.selector), in its namespace, without those being deleted.</summary>
    public async Task<IReadOnlyList<JsonObject>> PodsOfAsync(JsonObject workload, CancellationToken ct)
    {
        var ns = workload.Namespace();
        var selector = Pods.Selector(workload["spec"]?["selector"] as JsonObject);
        if (ns is null || selector is null)
        {
            return [];
        }

        return (await api.PodsAsync(ns, selector, ct).ConfigureAwait(false)).Where(p => !p.IsDeleting()).ToList();
    }

    /// <summary>The reason, followed by what is wrong with the workload's pods, if anything.</summary>
    public async Task<string> WithPodProblemsAsync(JsonObject workload, string reason, CancellationToken ct)
    {
        var problems = Pods.Problems(await PodsOfAsync(workload, ct).ConfigureAwait(false));
        return problems.Length == 0 ? reason : $"{reason}; {problems}";
    }

    /// <summary>LS_COMPONENTS: one image component per image of the application, with the objects using it and its image ID.</summary>
    public async Task<IReadOnlyList<Component>> ComponentsAsync(string app, CancellationToken ct)
    {
        var users = await AppImagesAsync(app, ct).ConfigureAwait(false);
        var result = new List<Component>();
        foreach (var (image, names) in users.OrderBy(u => u.Key, StringComparer.Ordinal))
        {
            var extra = new Dictionary<string, string>(StringComparer.Ordinal) { ["services"] = string.Join(',', names.Order(StringComparer.Ordinal)) };
            try
            {
                if (await containerd.ImageIdAsync(image, ct).ConfigureAwait(false) is { } id)
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
    public async Task<Dictionary<string, SortedSet<string>>> AppImagesAsync(string app, CancellationToken ct)
    {
        var users = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (apiVersion, kind) in Workloads.ImageKinds)
        {
            if (await api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await api.ListAsync(type, Selector(app), ct).ConfigureAwait(false))
            {
                if (live.IsControlled())
                {
                    continue;
                }

                foreach (var image in PodTemplates.Images(live))
                {
                    if (!users.TryGetValue(image, out var set))
                    {
                        set = new SortedSet<string>(StringComparer.Ordinal);
                        users[image] = set;
                    }

                    set.Add(live.Name());
                }
            }
        }

        return users;
    }

    /// <summary>
    /// The objects of the whole cluster that name the image (normalized): workloads, jobs, cron jobs,
    /// ReplicaSets that still want pods, and pods that no controller owns (a controlled pod's owner is
    /// what keeps it, and pods being deleted are on their way out).
    /// </summary>
    public async Task<IReadOnlyList<string>> ImageUsersAsync(string normalizedImage, CancellationToken ct)
    {
        var users = new List<string>();
        foreach (var (apiVersion, kind) in Workloads.ImageKinds.Append(("apps/v1", "ReplicaSet")))
        {
            if (await api.ResolveAsync(apiVersion, kind, ct).ConfigureAwait(false) is not { } type)
            {
                continue;
            }

            foreach (var live in await api.ListAsync(type, string.Empty, ct).ConfigureAwait(false))
            {
                var skip = kind switch
                {
                    "Pod" => live.IsControlled() || live.IsDeleting(),
                    "ReplicaSet" => Workloads.Long(live["spec"]?["replicas"], 1) == 0,
                    "Job" => live.IsControlled() || (live["status"]?["conditions"] as JsonArray ?? []).Any(c =>
                        c?["type"]?.GetValue<string>() is "Complete" or "Failed" && c["status"]?.GetValue<string>() == "True"),
                    _ => false,
                };
                if (!skip && PodTemplates.Images(live).Any(i => Containerd.Normalize(i) == normalizedImage))
                {
                    users.Add(Workloads.Describe(live));
                }
            }
        }

        return users;
    }
}
