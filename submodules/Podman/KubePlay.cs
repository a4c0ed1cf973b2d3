using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AppModule.Runtime;
using Kubernetes;
using SubModule.Hosting;

namespace Podman;

/// <summary>A PersistentVolumeClaim of the manifests and the podman volume that holds it.</summary>
public sealed record PlayVolume(string Claim, string Volume);

/// <summary>
/// What <c>podman kube play</c> gets for one application: <paramref name="Yaml"/> (the documents, as JSON),
/// the workloads (Pods and Deployments, as the manifests name them) with the images they run, their kinds, and the volumes.
/// </summary>
public sealed record PlayPlan(string Yaml, IReadOnlyDictionary<string, IReadOnlyList<string>> Workloads, IReadOnlyDictionary<string, string> Kinds, IReadOnlyList<PlayVolume> Volumes);

/// <summary>
/// Turns Kubernetes manifests (read and checked by <see cref="Manifests"/> and <see cref="HostAccessCheck"/>, as the
/// k8s sub-module reads them) into what podman runs, so that applications never collide on one podman:
/// <list type="bullet">
/// <item>Pods and Deployments are named <c>&lt;app&gt;-&lt;name&gt;</c> and labelled with the application, their
/// own name and kind (podman's pods and containers are global, Kubernetes' are per namespace);</item>
/// <item>a PersistentVolumeClaim becomes the podman volume <c>&lt;app&gt;-&lt;claim&gt;</c>, created by the sub-module
/// (kube play refuses to play a claim whose volume exists) and kept across STOP, ROLLOUT and ROLLBACK;</item>
/// <item>a container port without hostPort is not published (Kubernetes semantics; podman 4.3 would publish it on
/// the same port of the host, so two pods with containerPort 8080 would collide);</item>
/// <item>ConfigMaps go as they are; Services and Namespaces are left out (podman has neither); any other kind is
/// refused before anything runs.</item>
/// </list>
/// </summary>
public static partial class KubePlay
{
    public static PlayPlan Plan(string app, IReadOnlyList<ManifestObject> objects)
    {
        ArgumentNullException.ThrowIfNull(objects);
        CheckApplication(app);
        var docs = new List<JsonObject>();
        var workloads = new SortedDictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var kinds = new Dictionary<string, string>(StringComparer.Ordinal);
        var claims = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var o in objects)
        {
            switch ((o.ApiVersion, o.Kind))
            {
                case ("v1", "Pod"):
                case ("apps/v1", "Deployment"):
                    if (!workloads.TryAdd(o.Name, PodTemplates.Images(o.Body).Distinct().ToList()))
                    {
                        throw new SubModuleFailure($"{o.Where}: a second Pod or Deployment named {o.Name}: podman runs the workloads of one application under their names, which must differ; nothing was applied");
                    }

                    kinds[o.Name] = o.Kind;
                    docs.Add(Workload(app, o, claims));
                    break;
                case ("v1", "PersistentVolumeClaim"):
                    claims.Add(o.Name);
                    break;
                case ("v1", "ConfigMap"):
                    docs.Add((JsonObject)o.Body.DeepClone());
                    break;
                case ("v1", "Service"):
                case ("v1", "Namespace"):
                    Log.Debug($"{o.Where}: {o.Kind} {o.Name} left out: podman has no {o.Kind}s (the containers of a pod share localhost; publish with hostPort)");
                    break;
                default:
                    throw new SubModuleFailure(
                        $"{o.Where}: {o.Kind} {o.Name} ({o.ApiVersion}) cannot run on podman: `podman kube play` runs Pods, Deployments, " +
                        "PersistentVolumeClaims and ConfigMaps (Services and Namespaces are left out); remove it or use the k8s orchestrator; nothing was applied");
            }
        }

        if (workloads.Count == 0)
        {
            throw new SubModuleFailure($"the manifests of {app} hold no Pod or Deployment, so podman would run nothing; nothing was applied");
        }

        var yaml = new StringBuilder();
        foreach (var d in docs)
        {
            yaml.Append("---\n").Append(d.ToJsonString()).Append('\n');
        }

        return new PlayPlan(yaml.ToString(), workloads, kinds, claims.Select(c => new PlayVolume(c, VolumeName(app, c))).ToList());
    }

    /// <summary>The podman volume of the application's claim <paramref name="claim"/>.</summary>
    public static string VolumeName(string app, string claim) => $"{app}-{claim}";

    /// <summary>The name podman's pod of a Pod or Deployment is derived from.</summary>
    public static string PodName(string app, string workload) => $"{app}-{workload}";

    private static JsonObject Workload(string app, ManifestObject o, SortedSet<string> claims)
    {
        var body = (JsonObject)o.Body.DeepClone();
        var meta = (JsonObject)body["metadata"]!;
        meta["name"] = PodName(app, o.Name);
        Label(meta, app, o);
        JsonObject? spec;
        if (o.Kind == "Pod")
        {
            spec = body["spec"] as JsonObject;
        }
        else
        {
            if (body["spec"]?["replicas"] is JsonValue replicas && replicas.TryGetValue<long>(out var n) && n > 1)
            {
                Log.Warning($"{o.Where}: Deployment {o.Name} asks for {body["spec"]!["replicas"]} replicas; podman runs one pod of it");
            }

            var template = body["spec"]?["template"] as JsonObject
                           ?? throw new SubModuleFailure($"{o.Where}: Deployment {o.Name} has no spec.template; nothing was applied");
            if (template["metadata"] is not JsonObject templateMeta)
            {
                templateMeta = [];
                template["metadata"] = templateMeta;
            }

            Label(templateMeta, app, o);
            spec = template["spec"] as JsonObject;
        }

        if (spec?["containers"] is not JsonArray { Count: > 0 } containers)
        {
            throw new SubModuleFailure($"{o.Where}: {o.Kind} {o.Name} has no containers; nothing was applied");
        }

        foreach (var v in (spec["volumes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (v["persistentVolumeClaim"] is JsonObject pvc && pvc["claimName"] is JsonValue cv && cv.TryGetValue<string>(out var claim))
            {
                claims.Add(claim);
                pvc["claimName"] = VolumeName(app, claim);
            }
        }

        foreach (var c in containers.OfType<JsonObject>().Concat((spec["initContainers"] as JsonArray ?? []).OfType<JsonObject>()))
        {
            if (c["ports"] is JsonArray ports)
            {
                foreach (var p in ports.OfType<JsonObject>().Where(p => p["hostPort"] is null).ToList())
                {
                    ports.Remove(p);
                }
            }

            if (c["readinessProbe"] is not null && c["livenessProbe"] is null)
            {
                Log.Warning($"{o.Where}: container {c["name"]} of {o.Kind} {o.Name} has a readinessProbe, which podman does not run; its health comes from a livenessProbe (podman's healthcheck)");
            }
        }

        return body;
    }

    private static void Label(JsonObject meta, string app, ManifestObject workload)
    {
        if (meta["labels"] is not JsonObject labels)
        {
            labels = [];
            meta["labels"] = labels;
        }

        labels[PodmanCli.ApplicationLabel] = app;
        labels[PodmanCli.WorkloadLabel] = workload.Name;
        labels[PodmanCli.KindLabel] = workload.Kind;
    }

    public static void CheckApplication(string app)
    {
        if (!Name().IsMatch(app))
        {
            throw new SubModuleFailure($"application name \"{app}\" cannot name podman pods and volumes: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex Name();
}
