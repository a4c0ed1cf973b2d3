using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FakeKubeApi;

/// <summary>
/// An in-process Kubernetes API server for tests (no real cluster can run on these machines). It
/// serves, over plain HTTP on 127.0.0.1 with a bearer token, what the k8s sub-module uses, with the
/// real API's semantics:
/// <list type="bullet">
/// <item>discovery: /version, /api, /apis, resource lists per group version;</item>
/// <item>server-side apply (PATCH application/apply-patch+yaml, fieldManager required, force):
/// creates or updates, tracks field ownership per manager and operation, reports conflicts (409)
/// unless forced, removes fields a manager stops applying;</item>
/// <item>JSON merge patch (application/merge-patch+json), POST create, GET, LIST (in a namespace or
/// across all, with label selectors), DELETE (a namespace takes its objects with it);</item>
/// <item>namespaces: objects in a namespace that does not exist are refused (404), as by the real API;</item>
/// <item>metadata.generation bumps on changes outside metadata and status; status is ignored in
/// apply and patch for kinds with a status subresource; spec.replicas defaults to 1;</item>
/// <item>a controller: workload status follows spec at once (observedGeneration, updated, ready and
/// available replicas) and pods are created per replica (with owner references, deleted with their
/// workload), except for images in <see cref="CrashingImages"/> (pods crash-loop) or
/// <see cref="UnreadyImages"/> (pods run but are never ready), and
/// namespaces in <see cref="HeldNamespaces"/> (status left to the test, <see cref="SetStatus"/>);
/// StatefulSets create PVCs from volumeClaimTemplates; DaemonSets run on one node, fake-node.</item>
/// </list>
/// </summary>
public sealed class FakeKubeApiServer : IAsyncDisposable
{
    public const string NodeName = "fake-node";
    private static readonly Dictionary<string, string> NodeLabels = new() { ["kubernetes.io/hostname"] = NodeName, ["kubernetes.io/os"] = "linux", ["kubernetes.io/arch"] = "amd64" };
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Group, string Resource, string Ns, string Name), Stored> _objects = new();
    private readonly List<string> _requests = [];
    private long _resourceVersion = 100;

    private FakeKubeApiServer(WebApplication app, string token)
    {
        _app = app;
        Token = token;
        foreach (var ns in new[] { "default", "kube-system", "kube-public" })
        {
            var def = ResourceTypes.Find(string.Empty, "v1", "namespaces")!;
            var obj = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = ns } };
            Insert(def, string.Empty, ns, obj);
        }
    }

    public string Url { get; private set; } = string.Empty;

    /// <summary>Kinds served because a CustomResourceDefinition defines them.</summary>
    private readonly List<ResourceDef> _custom = [];

    private IEnumerable<ResourceDef> AllDefs => ResourceTypes.All.Concat(_custom);

    private ResourceDef? FindDef(string group, string version, string resource) =>
        AllDefs.FirstOrDefault(r => r.Group == group && r.Version == version && r.Resource == resource);

    private ResourceDef? FindKindDef(string apiVersion, string kind) => AllDefs.FirstOrDefault(r => r.GroupVersion == apiVersion && r.Kind == kind);

    public string Token { get; }

    /// <summary>Images whose containers exit at start, so their pods crash-loop (state waiting: CrashLoopBackOff).</summary>
    public HashSet<string> CrashingImages { get; } = new(StringComparer.Ordinal);

    /// <summary>Images whose containers run but never pass their readiness probe.</summary>
    public HashSet<string> UnreadyImages { get; } = new(StringComparer.Ordinal);

    private readonly Dictionary<string, string> _volumeData = new(StringComparer.Ordinal);

    /// <summary>Stores data "in" a PersistentVolumeClaim: it lives as long as that claim (same uid).</summary>
    public void WriteVolume(string ns, string claim, string data)
    {
        lock (_gate)
        {
            var pvc = Lookup(ResourceTypes.FindKind("v1", "PersistentVolumeClaim")!, ns, claim);
            _volumeData[pvc.Object["metadata"]!["uid"]!.GetValue<string>()] = data;
        }
    }

    /// <summary>The data stored in the claim, or null (no claim, or a new claim of the same name).</summary>
    public string? ReadVolume(string ns, string claim)
    {
        lock (_gate)
        {
            return _objects.TryGetValue((string.Empty, "persistentvolumeclaims", ns, claim), out var pvc)
                   && _volumeData.TryGetValue(pvc.Object["metadata"]!["uid"]!.GetValue<string>(), out var d) ? d : null;
        }
    }

    /// <summary>Namespaces whose workloads the controller leaves alone; the test drives their status.</summary>
    public HashSet<string> HeldNamespaces { get; } = new(StringComparer.Ordinal);

    /// <summary>"METHOD path?query" of every request, in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The server's self-signed certificate (PEM) when it serves https, else null.</summary>
    public string? CertificatePem { get; private set; }

    public static Task<FakeKubeApiServer> StartAsync(CancellationToken ct = default) => StartAsync(false, ct);

    /// <summary>Starts on a free port of 127.0.0.1: http, or https with a fresh self-signed certificate (as clusters do).</summary>
    public static async Task<FakeKubeApiServer> StartAsync(bool https, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        X509Certificate2? cert = https ? SelfSigned() : null;
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0, l =>
        {
            if (cert is not null)
            {
                l.UseHttps(cert);
            }
        }));
        var app = builder.Build();
        var server = new FakeKubeApiServer(app, "fake-token-" + Guid.NewGuid().ToString("N")[..12]);
        app.Run(server.HandleAsync);
        await app.StartAsync(ct).ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        server.Url = addresses.First().Replace("[::1]", "127.0.0.1", StringComparison.Ordinal);
        server.CertificatePem = cert?.ExportCertificatePem();
        return server;
    }

    private static X509Certificate2 SelfSigned()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=fake-kube-apiserver", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
    }

    /// <summary>Writes a kubeconfig for this server (and optionally a context namespace); returns its path.</summary>
    public string WriteKubeConfig(string path, string? contextNamespace = null, string? token = null)
    {
        var ns = contextNamespace is null ? string.Empty : $"\n    namespace: {contextNamespace}";
        var ca = CertificatePem is null ? string.Empty : $"\n    certificate-authority-data: {Convert.ToBase64String(Encoding.UTF8.GetBytes(CertificatePem))}";
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {Url}{ca}
            users:
            - name: tester
              user:
                token: {token ?? Token}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: tester{ns}
            current-context: fake

            """);
        return path;
    }

    // ---- test API -------------------------------------------------------------------------------

    public JsonObject? Get(string apiVersion, string kind, string? ns, string name)
    {
        var def = FindKindDef(apiVersion, kind) ?? throw new ArgumentException($"unknown kind {kind} {apiVersion}");
        lock (_gate)
        {
            return _objects.TryGetValue((def.Group, def.Resource, def.Namespaced ? ns ?? string.Empty : string.Empty, name), out var s) ? Copy(s.Object) : null;
        }
    }

    public IReadOnlyList<JsonObject> List(string apiVersion, string kind, string? ns = null)
    {
        var def = FindKindDef(apiVersion, kind) ?? throw new ArgumentException($"unknown kind {kind} {apiVersion}");
        lock (_gate)
        {
            return _objects.Where(p => p.Key.Group == def.Group && p.Key.Resource == def.Resource && (ns is null || p.Key.Ns == ns))
                .OrderBy(p => p.Key.Ns, StringComparer.Ordinal).ThenBy(p => p.Key.Name, StringComparer.Ordinal)
                .Select(p => Copy(p.Value.Object)).ToList();
        }
    }

    public bool NamespaceExists(string ns) => Get("v1", "Namespace", null, ns) is not null;

    /// <summary>Deletes a namespace and everything in it (test cleanup); no-op when absent.</summary>
    public void DeleteNamespace(string ns)
    {
        lock (_gate)
        {
            if (_objects.ContainsKey((string.Empty, "namespaces", string.Empty, ns)))
            {
                Delete(ResourceTypes.FindKind("v1", "Namespace")!, null, ns);
            }
        }
    }

    /// <summary>Replaces the status of an object (as a controller would).</summary>
    public void SetStatus(string apiVersion, string kind, string? ns, string name, JsonObject status)
    {
        var def = FindKindDef(apiVersion, kind) ?? throw new ArgumentException($"unknown kind {kind} {apiVersion}");
        lock (_gate)
        {
            var s = _objects[(def.Group, def.Resource, def.Namespaced ? ns ?? string.Empty : string.Empty, name)];
            s.Object["status"] = status.DeepClone();
            s.Object["metadata"]!["resourceVersion"] = NextVersion();
        }
    }

    /// <summary>Runs the controller for every workload now (e.g. after releasing a held namespace).</summary>
    public void Reconcile()
    {
        lock (_gate)
        {
            foreach (var (key, s) in _objects.ToList())
            {
                Controller(s.Def, s);
            }
        }
    }

    // ---- HTTP -----------------------------------------------------------------------------------

    private async Task HandleAsync(HttpContext ctx)
    {
        var req = ctx.Request;
        var path = req.Path.Value ?? "/";
        string body;
        using (var reader = new StreamReader(req.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync(ctx.RequestAborted).ConfigureAwait(false);
        }

        (int Code, JsonNode Body) result;
        lock (_gate)
        {
            _requests.Add($"{req.Method} {path}{req.QueryString}");
            if (req.Headers.Authorization.ToString() != $"Bearer {Token}")
            {
                result = Status(401, "Unauthorized", "Unauthorized");
            }
            else
            {
                try
                {
                    result = Route(req.Method, path, req.Query, req.ContentType, body);
                }
                catch (ApiError e)
                {
                    result = Status(e.Code, e.Reason, e.Message);
                }
                catch (ArgumentException e)
                {
                    result = Status(400, "BadRequest", e.Message);
                }
                catch (JsonException e)
                {
                    result = Status(400, "BadRequest", $"the request body is not valid JSON: {e.Message}");
                }
                catch (Exception e)
                {
                    result = Status(500, "InternalError", $"fake API server bug: {e}");
                }
            }
        }

        ctx.Response.StatusCode = result.Code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(result.Body.ToJsonString(), ctx.RequestAborted).ConfigureAwait(false);
    }

    private (int, JsonNode) Route(string method, string path, IQueryCollection query, string? contentType, string body)
    {
        var seg = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        if (method == "GET" && seg is ["version"])
        {
            return (200, new JsonObject { ["major"] = "1", ["minor"] = "31", ["gitVersion"] = "v1.31.0-fake", ["platform"] = "linux/amd64" });
        }

        if (method == "GET" && seg is ["api"])
        {
            return (200, new JsonObject { ["kind"] = "APIVersions", ["versions"] = new JsonArray("v1") });
        }

        if (method == "GET" && seg is ["apis"])
        {
            var groups = new JsonArray();
            foreach (var g in AllDefs.Where(r => r.Group.Length > 0).GroupBy(r => (r.Group, r.Version)))
            {
                var gv = new JsonObject { ["groupVersion"] = $"{g.Key.Group}/{g.Key.Version}", ["version"] = g.Key.Version };
                groups.Add(new JsonObject { ["name"] = g.Key.Group, ["versions"] = new JsonArray(gv), ["preferredVersion"] = gv.DeepClone() });
            }

            return (200, new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups });
        }

        string group, version;
        string[] rest;
        if (seg.Length >= 2 && seg[0] == "api")
        {
            (group, version, rest) = (string.Empty, seg[1], seg[2..]);
        }
        else if (seg.Length >= 3 && seg[0] == "apis")
        {
            (group, version, rest) = (seg[1], seg[2], seg[3..]);
        }
        else
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        if (rest.Length == 0)
        {
            return method == "GET" ? (200, Discovery(group, version)) : throw new ApiError(405, "MethodNotAllowed", "method not allowed");
        }

        string? ns = null, resource, name = null, sub = null;
        if (rest[0] == "namespaces" && rest.Length >= 3)
        {
            ns = rest[1];
            resource = rest[2];
            name = rest.ElementAtOrDefault(3);
            sub = rest.ElementAtOrDefault(4);
        }
        else
        {
            resource = rest[0];
            name = rest.ElementAtOrDefault(1);
            sub = rest.ElementAtOrDefault(2);
        }

        var def = FindDef(group, version, resource) ?? throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        if (sub is not null || (!def.Namespaced && ns is not null) || (def.Namespaced && ns is null && name is not null))
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        return (method, name) switch
        {
            ("GET", null) => (200, ListObjects(def, ns, query["labelSelector"].ToString())),
            ("GET", { } n) => (200, Lookup(def, ns, n).Object.DeepClone()),
            ("POST", null) => Create(def, ns, query["fieldManager"].ToString(), Parse(body)),
            ("PATCH", { } n) => Patch(def, ns, n, query, contentType, body),
            ("DELETE", { } n) => (200, Delete(def, ns, n)),
            _ => throw new ApiError(405, "MethodNotAllowed", $"{method} is not supported on this path by the fake"),
        };
    }

    private JsonObject Discovery(string group, string version)
    {
        var defs = AllDefs.Where(r => r.Group == group && r.Version == version).ToList();
        if (defs.Count == 0)
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        var resources = new JsonArray();
        foreach (var d in defs)
        {
            resources.Add(new JsonObject
            {
                ["name"] = d.Resource, ["singularName"] = d.Singular, ["namespaced"] = d.Namespaced, ["kind"] = d.Kind,
                ["verbs"] = new JsonArray("create", "delete", "get", "list", "patch", "update", "watch"),
            });
            if (d.HasStatus)
            {
                resources.Add(new JsonObject { ["name"] = d.Resource + "/status", ["singularName"] = string.Empty, ["namespaced"] = d.Namespaced, ["kind"] = d.Kind, ["verbs"] = new JsonArray("get", "patch", "update") });
            }
        }

        return new JsonObject { ["kind"] = "APIResourceList", ["apiVersion"] = "v1", ["groupVersion"] = defs[0].GroupVersion, ["resources"] = resources };
    }

    private static JsonObject Parse(string body)
    {
        var trimmed = body.TrimStart();
        if (!trimmed.StartsWith('{'))
        {
            throw new ApiError(415, "UnsupportedMediaType", "the fake API server reads JSON bodies only (JSON is YAML, so the real API accepts it too)");
        }

        return JsonNode.Parse(body) as JsonObject ?? throw new ApiError(400, "BadRequest", "the body must be a JSON object");
    }

    private Stored Lookup(ResourceDef def, string? ns, string name) =>
        _objects.TryGetValue((def.Group, def.Resource, ns ?? string.Empty, name), out var s)
            ? s
            : throw new ApiError(404, "NotFound", $"{def.QualifiedResource} \"{name}\" not found");

    private JsonObject ListObjects(ResourceDef def, string? ns, string selector)
    {
        var requirements = LabelSelector.Parse(selector);
        var items = new JsonArray();
        foreach (var (key, s) in _objects.OrderBy(p => p.Key.Ns, StringComparer.Ordinal).ThenBy(p => p.Key.Name, StringComparer.Ordinal))
        {
            if (key.Group != def.Group || key.Resource != def.Resource || (ns is not null && key.Ns != ns))
            {
                continue;
            }

            var labels = s.Object["metadata"]?["labels"] as JsonObject;
            if (!LabelSelector.Matches(requirements, labels))
            {
                continue;
            }

            var item = (JsonObject)s.Object.DeepClone();
            item.Remove("apiVersion"); // the real API leaves type information to the list
            item.Remove("kind");
            items.Add(item);
        }

        return new JsonObject
        {
            ["kind"] = def.Kind + "List", ["apiVersion"] = def.GroupVersion,
            ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
            ["items"] = items,
        };
    }

    private void RequireNamespace(ResourceDef def, string? ns)
    {
        if (def.Namespaced && !_objects.ContainsKey((string.Empty, "namespaces", string.Empty, ns!)))
        {
            throw new ApiError(404, "NotFound", $"namespaces \"{ns}\" not found");
        }
    }

    private static void CheckIdentity(ResourceDef def, string? ns, string? name, JsonObject body)
    {
        if (body["apiVersion"]?.GetValue<string>() is { } av && av != def.GroupVersion)
        {
            throw new ApiError(400, "BadRequest", $"the API version in the data ({av}) does not match the expected API version ({def.GroupVersion})");
        }

        if (body["kind"]?.GetValue<string>() is { } kind && kind != def.Kind)
        {
            throw new ApiError(400, "BadRequest", $"the kind in the data ({kind}) does not match the expected kind ({def.Kind})");
        }

        var meta = body["metadata"] as JsonObject ?? throw new ApiError(422, "Invalid", $"{def.Kind} is invalid: metadata: Required value");
        if (meta["name"]?.GetValue<string>() is not { Length: > 0 } n)
        {
            throw new ApiError(422, "Invalid", $"{def.Kind} is invalid: metadata.name: Required value: name or generateName is required");
        }

        if (name is not null && n != name)
        {
            throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
        }

        if (meta["namespace"]?.GetValue<string>() is { } bodyNs && def.Namespaced && bodyNs != ns)
        {
            throw new ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
        }

        if (meta["labels"] is JsonObject labels)
        {
            foreach (var (k, v) in labels)
            {
                if (v is not JsonValue value || value.GetValueKind() != JsonValueKind.String)
                {
                    throw new ApiError(400, "BadRequest", $"label {k} must be a string");
                }

                if (!LabelSelector.IsValidValue(value.GetValue<string>()))
                {
                    throw new ApiError(422, "Invalid", $"{def.Kind} \"{n}\" is invalid: metadata.labels: Invalid value: \"{value}\": a valid label must be 63 characters or less, beginning and ending with an alphanumeric character");
                }
            }
        }
    }

    private (int, JsonNode) Create(ResourceDef def, string? ns, string fieldManager, JsonObject body)
    {
        CheckIdentity(def, ns, null, body);
        var name = body["metadata"]!["name"]!.GetValue<string>();
        RequireNamespace(def, ns);
        if (_objects.ContainsKey((def.Group, def.Resource, ns ?? string.Empty, name)))
        {
            throw new ApiError(409, "AlreadyExists", $"{def.QualifiedResource} \"{name}\" already exists");
        }

        if (def.HasStatus)
        {
            body.Remove("status");
        }

        var s = Insert(def, ns ?? string.Empty, name, body);
        s.Owners[(fieldManager.Length == 0 ? "unknown" : fieldManager, "Update")] = Fields.Leaves(body, def.HasStatus).Keys.ToHashSet(StringComparer.Ordinal);
        AfterWrite(def, s, null);
        return (201, s.Object.DeepClone());
    }

    private Stored Insert(ResourceDef def, string ns, string name, JsonObject body)
    {
        var obj = (JsonObject)body.DeepClone();
        obj["apiVersion"] = def.GroupVersion;
        obj["kind"] = def.Kind;
        var meta = (JsonObject)obj["metadata"]!;
        if (def.Namespaced)
        {
            meta["namespace"] = ns;
        }

        meta["uid"] = Guid.NewGuid().ToString();
        meta["creationTimestamp"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        meta["generation"] = 1;
        meta["resourceVersion"] = NextVersion();
        if (def.Kind == "Namespace")
        {
            obj["status"] = new JsonObject { ["phase"] = "Active" };
        }

        var s = new Stored(def, obj);
        _objects[(def.Group, def.Resource, ns, name)] = s;
        return s;
    }

    private (int, JsonNode) Patch(ResourceDef def, string? ns, string name, IQueryCollection query, string? contentType, string body)
    {
        var manager = query["fieldManager"].ToString();
        var media = (contentType ?? string.Empty).Split(';')[0].Trim();
        switch (media)
        {
            case "application/apply-patch+yaml":
            {
                if (manager.Length == 0)
                {
                    throw new ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests");
                }

                var force = query["force"].ToString() == "true";
                var config = Parse(body);
                CheckIdentity(def, ns, name, config);
                if (config["apiVersion"] is null || config["kind"] is null)
                {
                    throw new ApiError(400, "BadRequest", "apiVersion and kind must be set in an apply configuration");
                }

                RequireNamespace(def, ns);
                return Apply(def, ns ?? string.Empty, name, manager, force, config);
            }

            case "application/merge-patch+json" or "application/strategic-merge-patch+json":
            {
                var s = Lookup(def, ns, name);
                var patch = Parse(body);
                if (def.HasStatus)
                {
                    patch.Remove("status");
                }

                var before = (JsonObject)s.Object.DeepClone();
                var merged = (JsonObject)Fields.MergePatch(s.Object, patch)!;
                merged["metadata"]!["name"] = name;
                var (set, removed) = Fields.PatchPaths(patch);
                var owner = (manager.Length == 0 ? "unknown" : manager, "Update");
                foreach (var p in set)
                {
                    var changed = !Fields.Same(Fields.Get(before, p).Value, Fields.Get(merged, p).Value);
                    foreach (var (k, owned) in s.Owners)
                    {
                        if (changed && k != owner)
                        {
                            owned.Remove(p);
                        }
                    }
                }

                foreach (var p in removed)
                {
                    foreach (var owned in s.Owners.Values)
                    {
                        owned.RemoveWhere(o => o == p || o.StartsWith(p + "/", StringComparison.Ordinal));
                    }
                }

                if (!s.Owners.TryGetValue(owner, out var mine))
                {
                    mine = new HashSet<string>(StringComparer.Ordinal);
                    s.Owners[owner] = mine;
                }

                mine.UnionWith(set);
                s.Object = merged;
                AfterWrite(def, s, before);
                return (200, s.Object.DeepClone());
            }

            default:
                throw new ApiError(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got \"{media}\")");
        }
    }

    private (int, JsonNode) Apply(ResourceDef def, string ns, string name, string manager, bool force, JsonObject config)
    {
        var key = (manager, "Apply");
        var leaves = Fields.Leaves(config, def.HasStatus);
        if (def.HasStatus)
        {
            config.Remove("status");
        }

        if (!_objects.TryGetValue((def.Group, def.Resource, ns, name), out var s))
        {
            s = Insert(def, ns, name, config);
            s.Owners[key] = leaves.Keys.ToHashSet(StringComparer.Ordinal);
            AfterWrite(def, s, null);
            return (201, s.Object.DeepClone());
        }

        var before = (JsonObject)s.Object.DeepClone();

        // Conflicts: a field another manager owns, whose value this configuration changes.
        var conflicts = new List<(string Manager, string Path)>();
        foreach (var (path, value) in leaves)
        {
            var live = Fields.Get(s.Object, path);
            if (live.Found && Fields.Same(live.Value, value))
            {
                continue;
            }

            foreach (var (owner, owned) in s.Owners)
            {
                if (owner != key && owned.Contains(path))
                {
                    conflicts.Add((owner.Manager, path));
                }
            }
        }

        if (conflicts.Count > 0 && !force)
        {
            var list = string.Join("\n", conflicts.Select(c => $"- conflict with \"{c.Manager}\": {Fields.Display(c.Path)}"));
            throw new ApiError(409, "Conflict", $"Apply failed with {conflicts.Count} conflict{(conflicts.Count == 1 ? string.Empty : "s")}: {list}");
        }

        foreach (var (_, path) in conflicts)
        {
            foreach (var (owner, owned) in s.Owners)
            {
                if (owner != key)
                {
                    owned.Remove(path);
                }
            }
        }

        // Fields this manager applied before and applies no more are removed, unless someone else owns them.
        var previously = s.Owners.TryGetValue(key, out var prev) ? prev : [];
        foreach (var path in previously.Where(p => !leaves.ContainsKey(p)).ToList())
        {
            if (!s.Owners.Any(o => o.Key != key && o.Value.Contains(path)))
            {
                Fields.Remove(s.Object, path);
            }
        }

        foreach (var (path, value) in leaves)
        {
            Fields.Set(s.Object, path, value);
        }

        s.Owners[key] = leaves.Keys.ToHashSet(StringComparer.Ordinal);
        AfterWrite(def, s, before);
        return (200, s.Object.DeepClone());
    }

    private JsonObject Delete(ResourceDef def, string? ns, string name)
    {
        var s = Lookup(def, ns, name);
        _objects.Remove((def.Group, def.Resource, ns ?? string.Empty, name));
        RemoveDependents(s.Object["metadata"]!["uid"]!.GetValue<string>());
        if (def.Kind == "Namespace")
        {
            foreach (var k in _objects.Keys.Where(k => k.Ns == name).ToList())
            {
                _objects.Remove(k);
            }
        }

        return (JsonObject)s.Object.DeepClone();
    }

    /// <summary>The garbage collector: objects whose controller owner is gone go too.</summary>
    private void RemoveDependents(string uid)
    {
        foreach (var (key, dependent) in _objects.Where(p => OwnerUid(p.Value.Object) == uid).ToList())
        {
            _objects.Remove(key);
            RemoveDependents(dependent.Object["metadata"]!["uid"]!.GetValue<string>());
        }
    }

    private static string? OwnerUid(JsonObject o) =>
        (o["metadata"]?["ownerReferences"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(r => r["controller"]?.GetValue<bool>() == true)?["uid"]?.GetValue<string>();

    /// <summary>Defaulting, generation, resourceVersion, managedFields, then the controller.</summary>
    private void AfterWrite(ResourceDef def, Stored s, JsonObject? before)
    {
        if (def.Kind is "Deployment" or "StatefulSet" && s.Object["spec"] is JsonObject spec && spec["replicas"] is null)
        {
            spec["replicas"] = 1;
        }

        var meta = (JsonObject)s.Object["metadata"]!;
        if (before is not null)
        {
            if (!Fields.Same(Content(before), Content(s.Object)))
            {
                meta["generation"] = Num(before["metadata"]?["generation"], 1) + 1;
            }

            if (!Fields.Same(before, s.Object))
            {
                meta["resourceVersion"] = NextVersion();
            }
        }

        var managed = new JsonArray();
        foreach (var ((manager, operation), owned) in s.Owners.Where(o => o.Value.Count > 0).OrderBy(o => o.Key.Manager, StringComparer.Ordinal))
        {
            managed.Add(new JsonObject
            {
                ["manager"] = manager, ["operation"] = operation, ["apiVersion"] = def.GroupVersion, ["fieldsType"] = "FieldsV1",
                ["fieldsV1"] = new JsonArray(owned.Order(StringComparer.Ordinal).Select(p => (JsonNode)Fields.Display(p)).ToArray()),
            });
        }

        meta["managedFields"] = managed;
        Controller(def, s);
    }

    private static long Num(JsonNode? n, long fallback) =>
        n is null ? fallback : long.Parse(n.ToJsonString(), CultureInfo.InvariantCulture);

    /// <summary>Objects handed out are parsed from text, so numbers read as any integer type.</summary>
    private static JsonObject Copy(JsonObject o) => JsonNode.Parse(o.ToJsonString())!.AsObject();

    private static JsonObject Content(JsonObject o)
    {
        var c = (JsonObject)o.DeepClone();
        c.Remove("metadata");
        c.Remove("status");
        return c;
    }

    private string NextVersion() => (++_resourceVersion).ToString(CultureInfo.InvariantCulture);

    // ---- controller -----------------------------------------------------------------------------

    private void Controller(ResourceDef def, Stored s)
    {
        var meta = s.Object["metadata"]!;
        var ns = meta["namespace"]?.GetValue<string>() ?? string.Empty;
        if (def.Kind == "PersistentVolumeClaim" && s.Object["status"] is null)
        {
            s.Object["status"] = new JsonObject { ["phase"] = "Bound" };
        }

        if (def.Kind == "CustomResourceDefinition")
        {
            ServeCustomResource(s.Object);
            return;
        }

        if (def.Kind is not ("Deployment" or "StatefulSet" or "DaemonSet") || HeldNamespaces.Contains(ns))
        {
            return;
        }

        var generation = Num(meta["generation"], 1);
        var template = s.Object["spec"]?["template"] as JsonObject;
        var containers = new[] { "initContainers", "containers" }
            .SelectMany(l => template?["spec"]?[l] as JsonArray ?? [])
            .OfType<JsonObject>().ToList();
        var crashing = containers.Any(c => CrashingImages.Contains(c["image"]?.GetValue<string>() ?? string.Empty));
        var unready = containers.Any(c => UnreadyImages.Contains(c["image"]?.GetValue<string>() ?? string.Empty));
        var healthy = !crashing && !unready;
        var status = new JsonObject { ["observedGeneration"] = generation };
        long desired;
        if (def.Kind == "DaemonSet")
        {
            var selector = template?["spec"]?["nodeSelector"] as JsonObject;
            var fits = selector is null || selector.All(p => NodeLabels.TryGetValue(p.Key, out var v) && v == p.Value?.GetValue<string>());
            desired = fits ? 1 : 0;
            var ready = healthy ? desired : 0;
            status["currentNumberScheduled"] = desired;
            status["desiredNumberScheduled"] = desired;
            status["numberMisscheduled"] = 0;
            status["updatedNumberScheduled"] = desired;
            NonZero(status, "numberReady", ready);
            NonZero(status, "numberAvailable", ready);
            NonZero(status, "numberUnavailable", desired - ready);
        }
        else
        {
            desired = Num(s.Object["spec"]?["replicas"], 1);
            var ready = healthy ? desired : 0;
            NonZero(status, "replicas", desired);
            NonZero(status, "updatedReplicas", desired);
            NonZero(status, "readyReplicas", ready);
            NonZero(status, "availableReplicas", ready);
            if (def.Kind == "Deployment")
            {
                NonZero(status, "unavailableReplicas", desired - ready);
                status["conditions"] = new JsonArray(
                    ready >= desired
                        ? Condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
                        : Condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                    Condition("Progressing", "True", ready >= desired ? "NewReplicaSetAvailable" : "ReplicaSetUpdated", $"ReplicaSet \"{meta["name"]}-{TemplateHash(template)}\" is progressing."));
            }
            else
            {
                NonZero(status, "currentReplicas", desired);
                CreateClaims(s, ns, desired);
            }
        }

        s.Object["status"] = status;
        SyncPods(def, s, ns, template, desired);
    }

    /// <summary>The apiextensions controller: serve the CRD's versions and mark it Established.</summary>
    private void ServeCustomResource(JsonObject crd)
    {
        var spec = crd["spec"];
        var group = spec?["group"]?.GetValue<string>() ?? string.Empty;
        var kind = spec?["names"]?["kind"]?.GetValue<string>();
        var plural = spec?["names"]?["plural"]?.GetValue<string>();
        if (kind is null || plural is null)
        {
            return;
        }

        _custom.RemoveAll(d => d.Group == group && d.Resource == plural);
        foreach (var v in (spec?["versions"] as JsonArray ?? []).OfType<JsonObject>().Where(v => v["served"]?.GetValue<bool>() != false))
        {
            _custom.Add(new ResourceDef(group, v["name"]!.GetValue<string>(), plural, kind, spec?["scope"]?.GetValue<string>() != "Cluster", false));
        }

        crd["status"] = new JsonObject
        {
            ["conditions"] = new JsonArray(Condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"), Condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted")),
            ["acceptedNames"] = spec?["names"]?.DeepClone(),
        };
    }

    private static string TemplateHash(JsonNode? template) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(template?.ToJsonString() ?? string.Empty)))[..10];

    /// <summary>Creates and deletes the workload's pods so that <paramref name="desired"/> pods of the current template exist.</summary>
    private void SyncPods(ResourceDef def, Stored workload, string ns, JsonObject? template, long desired)
    {
        var meta = workload.Object["metadata"]!;
        var uid = meta["uid"]!.GetValue<string>();
        var name = meta["name"]!.GetValue<string>();
        var hash = TemplateHash(template);
        var names = new List<string>();
        for (var i = 0; i < desired; i++)
        {
            names.Add(def.Kind switch
            {
                "Deployment" => $"{name}-{hash}-{i}",
                "StatefulSet" => $"{name}-{i}",
                _ => $"{name}-{NodeName}",
            });
        }

        foreach (var (key, pod) in _objects.Where(p => p.Key.Resource == "pods" && p.Key.Group.Length == 0 && OwnerUid(p.Value.Object) == uid).ToList())
        {
            if (!names.Contains(key.Name) || pod.Object["metadata"]?["annotations"]?["fake.k8s.io/template-hash"]?.GetValue<string>() != hash)
            {
                _objects.Remove(key);
            }
        }

        var podDef = ResourceTypes.FindKind("v1", "Pod")!;
        foreach (var podName in names.Where(n => !_objects.ContainsKey((string.Empty, "pods", ns, n))))
        {
            var labels = template?["metadata"]?["labels"]?.DeepClone() as JsonObject ?? [];
            labels["pod-template-hash"] = hash;
            var spec = template?["spec"]?.DeepClone() as JsonObject ?? [];
            spec["nodeName"] = NodeName;
            var body = new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Pod",
                ["metadata"] = new JsonObject
                {
                    ["name"] = podName, ["labels"] = labels,
                    ["annotations"] = new JsonObject { ["fake.k8s.io/template-hash"] = hash },
                    ["ownerReferences"] = new JsonArray(new JsonObject
                    {
                        ["apiVersion"] = def.GroupVersion, ["kind"] = def.Kind, ["name"] = name, ["uid"] = uid, ["controller"] = true, ["blockOwnerDeletion"] = true,
                    }),
                },
                ["spec"] = spec,
            };
            var pod = Insert(podDef, ns, podName, body);
            pod.Object["status"] = PodStatus(spec);
        }
    }

    private JsonObject PodStatus(JsonObject spec)
    {
        var started = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        var statuses = new JsonArray();
        var allReady = true;
        foreach (var c in spec["containers"] as JsonArray ?? [])
        {
            var image = c?["image"]?.GetValue<string>() ?? string.Empty;
            var cname = c?["name"]?.GetValue<string>() ?? "main";
            var initCrashes = (spec["initContainers"] as JsonArray ?? []).Any(x => CrashingImages.Contains(x?["image"]?.GetValue<string>() ?? string.Empty));
            var crash = CrashingImages.Contains(image) || initCrashes;
            var ready = !crash && !UnreadyImages.Contains(image);
            allReady &= ready;
            var st = new JsonObject { ["name"] = cname, ["image"] = image, ["ready"] = ready, ["started"] = !crash, ["restartCount"] = crash ? 4 : 0 };
            if (crash)
            {
                st["state"] = new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "CrashLoopBackOff", ["message"] = $"back-off 1m20s restarting failed container={cname}" } };
                st["lastState"] = new JsonObject { ["terminated"] = new JsonObject { ["exitCode"] = 1, ["reason"] = "Error", ["startedAt"] = started, ["finishedAt"] = started } };
            }
            else
            {
                st["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = started } };
            }

            statuses.Add(st);
        }

        var readyCondition = allReady ? "True" : "False";
        return new JsonObject
        {
            ["phase"] = "Running", ["hostIP"] = "10.0.0.1", ["podIP"] = "10.42.0.10", ["startTime"] = started,
            ["conditions"] = new JsonArray(
                Condition("Ready", readyCondition, allReady ? string.Empty : "ContainersNotReady", allReady ? string.Empty : "containers with unready status"),
                Condition("ContainersReady", readyCondition, allReady ? string.Empty : "ContainersNotReady", string.Empty)),
            ["containerStatuses"] = statuses,
        };
    }

    /// <summary>A StatefulSet's controller creates &lt;template&gt;-&lt;set&gt;-&lt;ordinal&gt; claims and never deletes them.</summary>
    private void CreateClaims(Stored s, string ns, long replicas)
    {
        if (s.Object["spec"]?["volumeClaimTemplates"] is not JsonArray templates)
        {
            return;
        }

        var pvc = ResourceTypes.FindKind("v1", "PersistentVolumeClaim")!;
        var set = s.Object["metadata"]!["name"]!.GetValue<string>();
        foreach (var t in templates.OfType<JsonObject>())
        {
            var claim = t["metadata"]?["name"]?.GetValue<string>();
            for (var i = 0; i < replicas && claim is not null; i++)
            {
                var name = $"{claim}-{set}-{i}";
                if (_objects.ContainsKey((string.Empty, "persistentvolumeclaims", ns, name)))
                {
                    continue;
                }

                var body = new JsonObject
                {
                    ["apiVersion"] = "v1", ["kind"] = "PersistentVolumeClaim",
                    ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = t["metadata"]?["labels"]?.DeepClone() },
                    ["spec"] = t["spec"]?.DeepClone(),
                };
                if (body["metadata"]!["labels"] is null)
                {
                    ((JsonObject)body["metadata"]!).Remove("labels");
                }

                var stored = Insert(pvc, ns, name, body);
                stored.Object["status"] = new JsonObject { ["phase"] = "Bound" };
            }
        }
    }

    private static void NonZero(JsonObject o, string key, long value)
    {
        if (value != 0)
        {
            o[key] = value; // the real API omits zero counts
        }
    }

    private static JsonObject Condition(string type, string status, string reason, string message) =>
        new() { ["type"] = type, ["status"] = status, ["reason"] = reason, ["message"] = message };

    private static (int, JsonNode) Status(int code, string reason, string message) =>
        (code, new JsonObject
        {
            ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Failure",
            ["message"] = message, ["reason"] = reason, ["code"] = code,
        });

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Stored(ResourceDef def, JsonObject obj)
    {
        public ResourceDef Def { get; } = def;

        public JsonObject Object { get; set; } = obj;

        public Dictionary<(string Manager, string Operation), HashSet<string>> Owners { get; } = new();
    }

    private sealed class ApiError(int code, string reason, string message) : Exception(message)
    {
        public int Code { get; } = code;

        public string Reason { get; } = reason;
    }
}
