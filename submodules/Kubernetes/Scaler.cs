using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// STOP and START: workloads are scaled to zero (the replicas remembered in an annotation; a DaemonSet gets a
/// node selector no node matches) and back. Nothing is deleted.
/// </summary>
internal sealed class Scaler(IKubeApi api, K8sSettings settings, Inventory inventory, Health health)
{
    public async Task StopAsync(string app, CancellationToken ct)
    {
        var workloads = await inventory.AppWorkloadsAsync(app, ct).ConfigureAwait(false);
        if (workloads.Count == 0)
        {
            Log.Info($"{app} has no workloads to stop");
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
                    ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [Workloads.StoppedReplicasAnnotation] = replicas.ToString(CultureInfo.InvariantCulture) } },
                    ["spec"] = new JsonObject { ["replicas"] = 0 },
                };
            }

            await api.MergePatchAsync(type, live.Namespace(), live.Name(), patch, settings.FieldManager, ct).ConfigureAwait(false);
            Log.Info($"stopped {Workloads.Describe(live)}");
        }

        // Wait until the pods are gone, so that a following ROLLOUT or image removal finds them stopped.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var running = new List<string>();
            foreach (var (type, live) in workloads)
            {
                var now = await api.GetObjectAsync(type, live.Namespace(), live.Name(), ct).ConfigureAwait(false);
                if (now is not null && !Workloads.IsScaledDown(now))
                {
                    running.Add(Workloads.Describe(now));
                }
            }

            if (running.Count == 0)
            {
                Log.Info($"{app} is stopped (persistent volume claims and namespaces kept)");
                return;
            }

            if (clock.Elapsed >= settings.RolloutTimeout)
            {
                throw new SubModuleFailure($"pods still running {settings.RolloutTimeout.TotalSeconds:0} s after scaling to zero: {string.Join(", ", running)}");
            }

            await Task.Delay(settings.PollInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Starts the application's stopped workloads and waits for them; false when it has no workloads in the cluster.</summary>
    public async Task<bool> StartAsync(string app, CancellationToken ct)
    {
        var workloads = await inventory.AppWorkloadsAsync(app, ct).ConfigureAwait(false);
        if (workloads.Count == 0)
        {
            return false;
        }

        foreach (var (type, live) in workloads.Where(w => Workloads.IsStopped(w.Live)))
        {
            await ResumeAsync(type, live, false, ct).ConfigureAwait(false);
        }

        await health.WaitRolledOutAsync(app, workloads.Select(w => (w.Type, w.Live.Namespace(), w.Live.Name())).ToList(), ct).ConfigureAwait(false);
        Log.Info($"{app} is started");
        return true;
    }

    /// <summary>Undoes a STOP: replicas back from the annotation (unless the manifest sets them), node selector removed.</summary>
    public async Task ResumeAsync(ResourceType type, JsonObject live, bool manifestSetsReplicas, CancellationToken ct)
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
            var replicas = long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var r) ? r : 1;
            patch["spec"] = new JsonObject { ["replicas"] = replicas };
        }

        await api.MergePatchAsync(type, live.Namespace(), live.Name(), patch, settings.FieldManager, ct).ConfigureAwait(false);
        Log.Info($"started {Workloads.Describe(live)}");
    }
}
