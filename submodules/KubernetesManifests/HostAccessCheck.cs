using System.Text.Json.Nodes;
using AppModule.Core.Policy;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// The device's host-access policy (<see cref="HostAccessPolicy"/>) applied to manifests: every pod spec
/// (of a Pod, or the template of any workload, CronJob included: any object with a <c>containers</c> list)
/// is checked for hostPath volumes of <c>/</c> or an engine socket, privileged containers, hostPID and
/// hostNetwork. Checked at REQS (before the running version stops) and again at ROLLOUT.
/// </summary>
public static class HostAccessCheck
{
    /// <summary>Throws <see cref="SubModuleFailure"/> naming object, file:line, field and config key for the first refused access.</summary>
    public static void Check(IReadOnlyList<ManifestObject> objects, HostAccessPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(objects);
        ArgumentNullException.ThrowIfNull(policy);
        foreach (var o in objects)
        {
            foreach (var (spec, path) in PodSpecs(o.Body, string.Empty))
            {
                var subject = $"{o.Kind} {NameOf(o)} ({o.Where})";
                if (Refusal(spec, path, subject, policy) is { } refusal)
                {
                    throw new SubModuleFailure(refusal);
                }
            }
        }
    }

    private static string NameOf(ManifestObject o) => o.Body["metadata"]?["name"] is JsonValue v && v.TryGetValue<string>(out var n) ? n : "(unnamed)";

    private static string? Refusal(JsonObject spec, string path, string subject, HostAccessPolicy policy)
    {
        static bool True(JsonNode? n) => n is JsonValue v && v.TryGetValue<bool>(out var b) && b;
        if (True(spec["hostPID"]) && policy.Refusal(subject, HostAccessPolicy.HostPid, $"shares the host's PID namespace ({path}hostPID: true)") is { } pid)
        {
            return pid;
        }

        if (True(spec["hostNetwork"]) && policy.Refusal(subject, HostAccessPolicy.HostNetwork, $"shares the host's network namespace ({path}hostNetwork: true)") is { } net)
        {
            return net;
        }

        if (spec["volumes"] is JsonArray volumes)
        {
            foreach (var v in volumes.OfType<JsonObject>())
            {
                if (v["hostPath"]?["path"] is JsonValue hp && hp.TryGetValue<string>(out var hostPath)
                    && HostAccessPolicy.ClassifyHostPath(hostPath) is { } kind)
                {
                    var what = kind == HostAccessPolicy.RootMount
                        ? $"mounts the host's root directory ({path}volumes: hostPath {hostPath})"
                        : $"mounts the engine socket or its directory {hostPath} ({path}volumes: hostPath), which gives control of the host";
                    if (policy.Refusal(subject, kind, what) is { } r)
                    {
                        return r;
                    }
                }
            }
        }

        foreach (var list in new[] { "initContainers", "containers", "ephemeralContainers" })
        {
            if (spec[list] is not JsonArray containers)
            {
                continue;
            }

            foreach (var c in containers.OfType<JsonObject>())
            {
                if (True(c["securityContext"]?["privileged"]))
                {
                    var name = c["name"] is JsonValue nv && nv.TryGetValue<string>(out var n) ? n : "?";
                    if (policy.Refusal(subject, HostAccessPolicy.Privileged, $"runs container {name} privileged ({path}{list}[].securityContext.privileged: true)") is { } r)
                    {
                        return r;
                    }
                }
            }
        }

        return null;
    }

    /// <summary>Every object below <paramref name="node"/> that holds a <c>containers</c> list (a pod spec), with its path.</summary>
    private static IEnumerable<(JsonObject Spec, string Path)> PodSpecs(JsonNode? node, string path)
    {
        switch (node)
        {
            case JsonObject o:
                if (o["containers"] is JsonArray)
                {
                    yield return (o, path);
                }

                foreach (var (k, v) in o)
                {
                    foreach (var found in PodSpecs(v, $"{path}{k}."))
                    {
                        yield return found;
                    }
                }

                break;
            case JsonArray a:
                foreach (var item in a)
                {
                    foreach (var found in PodSpecs(item, path))
                    {
                        yield return found;
                    }
                }

                break;
        }
    }
}
