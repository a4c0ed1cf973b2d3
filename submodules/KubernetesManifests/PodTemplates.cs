using System.Text.Json.Nodes;

namespace Kubernetes;

/// <summary>
/// Reads the pod template of any object that has one (Pod, workload, Job, CronJob), as a manifest or as
/// the cluster returns it. Needs nothing of the cluster: an orchestrator that takes the same manifests can use it.
/// </summary>
public static class PodTemplates
{
    /// <summary>The container and init-container images of a workload, pod, job or cron job.</summary>
    public static IEnumerable<string> Images(JsonObject o)
    {
        var podSpec = o["kind"]?.GetValue<string>() switch
        {
            "Pod" => o["spec"],
            "CronJob" => o["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"],
            _ => o["spec"]?["template"]?["spec"],
        };
        foreach (var list in new[] { "initContainers", "containers" })
        {
            if (podSpec?[list] is JsonArray containers)
            {
                foreach (var c in containers)
                {
                    if (c?["image"]?.GetValue<string>() is { Length: > 0 } image)
                    {
                        yield return image;
                    }
                }
            }
        }
    }
}
