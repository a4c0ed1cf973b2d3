using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FakeKubeApi;

/// <summary>
/// An in-process Kubernetes API server for tests (no real cluster can run on these machines). It
/// serves, on 127.0.0.1 with a bearer token (plain HTTP, or HTTPS with a self-signed certificate,
/// which the real kubectl needs to send the token), what the k8s sub-module and an operator's
/// kubectl use, with the real API's semantics. What it implements and leaves out, and the kubectl
/// suite that holds it to the real client (tests/Kubernetes.Tests/KubectlConformanceTests.cs): README.md.
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
    private string _userAgent = string.Empty;

    /// <summary>
    /// The field manager of a write: the fieldManager parameter, else the User-Agent up to its first '/'
    /// (k8s.io/apiserver/pkg/endpoints/handlers: managerOrUserAgent, prefixFromUserAgent).
    /// </summary>
    private string ManagerOf(string fieldManager) => fieldManager.Length > 0 ? fieldManager : _userAgent.Split('/')[0];

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

    /// <summary>
    /// Images whose containers run for the given time, then exit with code 1, restarted by the kubelet as a real
    /// one does (<see cref="Kubelet"/>): a pod of such an image looks Running and Ready most of the time, and only
    /// its restart count and last state show the loop.
    /// </summary>
    public Dictionary<string, TimeSpan> ExitingImages { get; } = new(StringComparer.Ordinal);

    private readonly Dictionary<string, DateTime> _podStarted = new(StringComparer.Ordinal);

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
            Kubelet();
            return _objects.TryGetValue((string.Empty, "persistentvolumeclaims", ns, claim), out var pvc)
                   && _volumeData.TryGetValue(pvc.Object["metadata"]!["uid"]!.GetValue<string>(), out var d) ? d : null;
        }
    }

    /// <summary>Namespaces whose workloads the controller leaves alone; the test drives their status.</summary>
    public HashSet<string> HeldNamespaces { get; } = new(StringComparer.Ordinal);

    /// <summary>One request as the fake received it.</summary>
    public sealed record Exchange(string Method, string Path, IReadOnlyDictionary<string, string> Query, string ContentType, string Body, string UserAgent);

    private readonly List<Exchange> _exchanges = [];

    /// <summary>Every request with its query, content type, body and User-Agent, in order (to compare what two clients send).</summary>
    public IReadOnlyList<Exchange> Exchanges
    {
        get
        {
            lock (_gate)
            {
                return [.. _exchanges];
            }
        }
    }

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
        var clientCa = https ? CertificateAuthority("CN=fake-client-ca") : null;
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0, l =>
        {
            if (cert is not null)
            {
                // As a real API server: a client certificate is asked for, not required; a bearer token does as well.
                // Which certificates authenticate is decided per request (ClientCertificateUser).
                l.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = cert,
                    ClientCertificateMode = ClientCertificateMode.AllowCertificate,
                    ClientCertificateValidation = (_, _, _) => true,
                });
            }
        }));
        var app = builder.Build();
        var server = new FakeKubeApiServer(app, "fake-token-" + Guid.NewGuid().ToString("N")[..12]);
        app.Run(server.HandleAsync);
        await app.StartAsync(ct).ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        server.Url = addresses.First().Replace("[::1]", "127.0.0.1", StringComparison.Ordinal);
        server.CertificatePem = cert?.ExportCertificatePem();
        server._clientCa = clientCa;
        return server;
    }

    private X509Certificate2? _clientCa;

    private static X509Certificate2 CertificateAuthority(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
    }

    /// <summary>
    /// A client certificate for <paramref name="user"/> as k3s writes it into its kubeconfig: an EC key ("EC PRIVATE
    /// KEY") and the certificate followed by the CA that issued it. Signed by this server's client CA when
    /// <paramref name="trusted"/>, else by a CA the server does not know. Only for an https server.
    /// </summary>
    public (string CertificatePem, string KeyPem) IssueClientCertificate(string user, bool trusted = true)
    {
        var ca = trusted ? _clientCa ?? throw new InvalidOperationException("client certificates need an https server") : CertificateAuthority("CN=unknown-ca");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={user}, O=system:masters", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        using var leaf = request.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), serial);
        return (leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n", key.ExportECPrivateKeyPem());
    }

    /// <summary>The user a client certificate issued by this server's client CA names (its CN), else null.</summary>
    private string? ClientCertificateUser(X509Certificate2? certificate)
    {
        if (certificate is null || _clientCa is null)
        {
            return null;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_clientCa);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate) ? certificate.GetNameInfo(X509NameType.SimpleName, false) : null;
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
    /// <remarks>The user has <paramref name="token"/> (else the server's own), or the client certificate and key given instead.</remarks>
    public string WriteKubeConfig(string path, string? contextNamespace = null, string? token = null, (string CertificatePem, string KeyPem)? clientCertificate = null)
    {
        static string B64(string pem) => Convert.ToBase64String(Encoding.UTF8.GetBytes(pem));
        var ns = contextNamespace is null ? string.Empty : $"\n    namespace: {contextNamespace}";
        var ca = CertificatePem is null ? string.Empty : $"\n    certificate-authority-data: {B64(CertificatePem)}";
        var credentials = clientCertificate is { } c
            ? $"client-certificate-data: {B64(c.CertificatePem)}\n    client-key-data: {B64(c.KeyPem)}"
            : $"token: {token ?? Token}";
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
                {credentials}
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
            Kubelet();
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
                Delete(ResourceTypes.FindKind("v1", "Namespace")!, null, ns, "Background");
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
        Watch? watch = null;
        lock (_gate)
        {
            _requests.Add($"{req.Method} {path}{req.QueryString}");
            _userAgent = req.Headers.UserAgent.ToString();
            _exchanges.Add(new Exchange(req.Method, path, req.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal), req.ContentType ?? string.Empty, body, _userAgent));
            if (req.Headers.Authorization.ToString() != $"Bearer {Token}" && ClientCertificateUser(ctx.Connection.ClientCertificate) is null)
            {
                result = Status(401, "Unauthorized", "Unauthorized");
            }
            else
            {
                try
                {
                    Kubelet();
                    result = Route(req.Method, path, req.Query, req.ContentType, req.Headers.Accept.ToString(), body, out watch);
                }
                catch (ApiError e)
                {
                    result = Status(e.Code, e.Reason, e.Message, e.Details);
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
        if (watch is not null)
        {
            await StreamWatchAsync(ctx, watch).ConfigureAwait(false);
            return;
        }

        await ctx.Response.WriteAsync(result.Body.ToJsonString(), ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>A watch request: which objects, from which resourceVersion, for how long.</summary>
    private sealed record Watch(ResourceDef Def, string? Ns, IReadOnlyList<LabelSelector.Requirement> Labels, IReadOnlyList<(string Field, string Op, string Value)> Fields, long FromVersion, TimeSpan Timeout);

    /// <summary>
    /// Streams watch events (one JSON object per line: ADDED, MODIFIED, DELETED) until the timeout or
    /// the client goes away. Without a resourceVersion the current objects come first as ADDED, as the
    /// real API does ("Get State and Start at Most Recent"); changes are found by polling the store.
    /// </summary>
    private async Task StreamWatchAsync(HttpContext ctx, Watch w)
    {
        var known = new Dictionary<(string Ns, string Name), (long Version, JsonObject Object)>();
        lock (_gate)
        {
            foreach (var o in Matching(w.Def, w.Ns, w.Labels, w.Fields))
            {
                var v = long.Parse(o["metadata"]!["resourceVersion"]!.GetValue<string>(), CultureInfo.InvariantCulture);
                if (w.FromVersion > 0 && v <= w.FromVersion)
                {
                    known[(o["metadata"]?["namespace"]?.GetValue<string>() ?? string.Empty, o["metadata"]!["name"]!.GetValue<string>())] = (v, o);
                }
            }
        }

        var until = DateTime.UtcNow + w.Timeout;
        try
        {
            await ctx.Response.StartAsync(ctx.RequestAborted).ConfigureAwait(false);
            while (!ctx.RequestAborted.IsCancellationRequested && DateTime.UtcNow < until)
            {
                var events = new List<JsonObject>();
                lock (_gate)
                {
                    var now = Matching(w.Def, w.Ns, w.Labels, w.Fields).ToDictionary(o => (o["metadata"]?["namespace"]?.GetValue<string>() ?? string.Empty, o["metadata"]!["name"]!.GetValue<string>()));
                    foreach (var (key, o) in now)
                    {
                        var v = long.Parse(o["metadata"]!["resourceVersion"]!.GetValue<string>(), CultureInfo.InvariantCulture);
                        if (!known.TryGetValue(key, out var had) || had.Version != v)
                        {
                            events.Add(new JsonObject { ["type"] = known.ContainsKey(key) ? "MODIFIED" : "ADDED", ["object"] = Typed(w.Def, o) });
                            known[key] = (v, o);
                        }
                    }

                    foreach (var key in known.Keys.Where(k => !now.ContainsKey(k)).ToList())
                    {
                        events.Add(new JsonObject { ["type"] = "DELETED", ["object"] = Typed(w.Def, known[key].Object) });
                        known.Remove(key);
                    }
                }

                foreach (var e in events)
                {
                    await ctx.Response.WriteAsync(e.ToJsonString() + "\n", ctx.RequestAborted).ConfigureAwait(false);
                }

                await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
                await Task.Delay(50, ctx.RequestAborted).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // the client closed the watch
        }
    }

    private static JsonObject Typed(ResourceDef def, JsonObject o)
    {
        var c = (JsonObject)o.DeepClone();
        c["apiVersion"] = def.GroupVersion;
        c["kind"] = def.Kind;
        return c;
    }

    private (int, JsonNode) Route(string method, string path, IQueryCollection query, string? contentType, string accept, string body, out Watch? watch)
    {
        watch = null;
        var seg = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        if (method == "GET" && seg is ["version"])
        {
            return (200, new JsonObject { ["major"] = "1", ["minor"] = "31", ["gitVersion"] = "v1.31.0-fake", ["platform"] = "linux/amd64" });
        }

        if (method == "GET" && seg is ["openapi", "v3"])
        {
            return (200, OpenApi.Index(AllDefs));
        }

        if (method == "GET" && seg.Length >= 3 && seg[0] == "openapi" && seg[1] == "v3")
        {
            var gv = string.Join('/', seg[2..]);
            var defs = AllDefs.Where(d => OpenApi.PathOf(d) == gv).ToList();
            return defs.Count > 0 ? (200, OpenApi.Document(defs)) : throw new ApiError(404, "NotFound", "the server could not find the requested resource");
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
        if (rest[0] == "namespaces" && rest.Length >= 3 && !(rest.Length == 3 && rest[2] is "status" or "finalize"))
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
        if ((!def.Namespaced && ns is not null) || (def.Namespaced && ns is null && name is not null)
            || (sub is not null && !((sub == "status" && def.HasStatus) || (sub == "scale" && def.HasScale))))
        {
            throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        }

        if (sub is not null)
        {
            return Subresource(def, ns, name!, sub, method, query, contentType, body);
        }

        var table = Tables.Wanted(accept);
        if (method == "GET" && name is null && query["watch"].ToString() is "true" or "1")
        {
            watch = new Watch(def, ns, LabelSelector.Parse(query["labelSelector"].ToString()), FieldSelector(def, query["fieldSelector"].ToString()),
                long.TryParse(query["resourceVersion"].ToString(), CultureInfo.InvariantCulture, out var from) ? from : 0,
                TimeSpan.FromSeconds(int.TryParse(query["timeoutSeconds"].ToString(), CultureInfo.InvariantCulture, out var t) ? t : 1800));
            return (200, new JsonObject());
        }

        return (method, name) switch
        {
            ("GET", null) => (200, ListObjects(def, ns, query["labelSelector"].ToString(), query["fieldSelector"].ToString(), table)),
            ("GET", { } n) => (200, table ? Tables.Convert(def, [Lookup(def, ns, n).Object], _resourceVersion.ToString(CultureInfo.InvariantCulture), DateTime.UtcNow) : Lookup(def, ns, n).Object.DeepClone()),
            ("POST", null) => Create(def, ns, query["fieldManager"].ToString(), query["fieldValidation"].ToString(), Parse(body)),
            ("PATCH", { } n) => Patch(def, ns, n, query, contentType, body),
            ("DELETE", { } n) => (200, Delete(def, ns, n, Propagation(query, body))),
            _ => throw new ApiError(405, "MethodNotAllowed", $"{method} is not supported on this path by the fake"),
        };
    }

    /// <summary>DeleteOptions.propagationPolicy from the query or the body; Background when absent (the default of most kinds).</summary>
    private static string Propagation(IQueryCollection query, string body)
    {
        var policy = query["propagationPolicy"].ToString();
        if (policy.Length == 0 && body.TrimStart().StartsWith('{'))
        {
            policy = JsonNode.Parse(body)?["propagationPolicy"]?.GetValue<string>() ?? string.Empty;
        }

        return policy switch
        {
            "" => "Background",
            "Orphan" or "Background" or "Foreground" => policy,
            _ => throw new ApiError(422, "Invalid", $"DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
        };
    }

    /// <summary>Field selectors: every kind supports metadata.name and metadata.namespace (apiserver's DefaultClusterScopedAttr / DefaultNamespaceScopedAttr).</summary>
    private static IReadOnlyList<(string Field, string Op, string Value)> FieldSelector(ResourceDef def, string selector)
    {
        var result = new List<(string, string, string)>();
        foreach (var part in selector.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var op = part.Contains("!=", StringComparison.Ordinal) ? "!=" : part.Contains("==", StringComparison.Ordinal) ? "==" : "=";
            var kv = part.Split(op, 2);
            if (kv.Length != 2)
            {
                throw new ApiError(400, "BadRequest", $"invalid selector: '{selector}'; can't understand '{part}'");
            }

            if (kv[0] is not ("metadata.name" or "metadata.namespace"))
            {
                throw new ApiError(400, "BadRequest", $"field label not supported: {kv[0]}");
            }

            result.Add((kv[0], op == "!=" ? "!=" : "=", kv[1]));
        }

        return result;
    }

    private IEnumerable<JsonObject> Matching(ResourceDef def, string? ns, IReadOnlyList<LabelSelector.Requirement> labels, IReadOnlyList<(string Field, string Op, string Value)> fields)
    {
        foreach (var (key, s) in _objects.OrderBy(p => p.Key.Ns, StringComparer.Ordinal).ThenBy(p => p.Key.Name, StringComparer.Ordinal))
        {
            if (key.Group != def.Group || key.Resource != def.Resource || (ns is not null && key.Ns != ns)
                || !LabelSelector.Matches(labels, s.Object["metadata"]?["labels"] as JsonObject)
                || !fields.All(f => (f.Field == "metadata.name" ? key.Name : key.Ns) == f.Value == (f.Op == "=")))
            {
                continue;
            }

            yield return s.Object;
        }
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
            var entry = new JsonObject
            {
                ["name"] = d.Resource,
                ["singularName"] = d.Singular,
                ["namespaced"] = d.Namespaced,
                ["kind"] = d.Kind,
                ["verbs"] = new JsonArray("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
            };
            if (d.ShortNames.Count > 0)
            {
                entry["shortNames"] = new JsonArray(d.ShortNames.Select(n => (JsonNode)n).ToArray());
            }

            if (d.Categories.Count > 0)
            {
                entry["categories"] = new JsonArray(d.Categories.Select(n => (JsonNode)n).ToArray());
            }

            resources.Add(entry);
            if (d.HasStatus)
            {
                resources.Add(new JsonObject { ["name"] = d.Resource + "/status", ["singularName"] = string.Empty, ["namespaced"] = d.Namespaced, ["kind"] = d.Kind, ["verbs"] = new JsonArray("get", "patch", "update") });
            }

            if (d.HasScale)
            {
                resources.Add(new JsonObject { ["name"] = d.Resource + "/scale", ["singularName"] = string.Empty, ["namespaced"] = d.Namespaced, ["group"] = "autoscaling", ["version"] = "v1", ["kind"] = "Scale", ["verbs"] = new JsonArray("get", "patch", "update") });
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

    private JsonNode ListObjects(ResourceDef def, string? ns, string selector, string fieldSelector, bool table)
    {
        var matching = Matching(def, ns, LabelSelector.Parse(selector), FieldSelector(def, fieldSelector)).ToList();
        var version = _resourceVersion.ToString(CultureInfo.InvariantCulture);
        if (table)
        {
            return Tables.Convert(def, matching, version, DateTime.UtcNow);
        }

        var items = new JsonArray();
        foreach (var o in matching)
        {
            var item = (JsonObject)o.DeepClone();
            item.Remove("apiVersion"); // the real API leaves type information to the list
            item.Remove("kind");
            items.Add(item);
        }

        return new JsonObject
        {
            ["kind"] = def.Kind + "List",
            ["apiVersion"] = def.GroupVersion,
            ["metadata"] = new JsonObject { ["resourceVersion"] = version },
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
                    continue; // a type error: the schema check answers it as the apiserver does (Schema.FirstError)
                }

                if (!LabelSelector.IsValidValue(value.GetValue<string>()))
                {
                    throw new ApiError(422, "Invalid", $"{def.Kind} \"{n}\" is invalid: metadata.labels: Invalid value: \"{value}\": a valid label must be 63 characters or less, beginning and ending with an alphanumeric character");
                }
            }
        }
    }

    private (int, JsonNode) Create(ResourceDef def, string? ns, string fieldManager, string fieldValidation, JsonObject body)
    {
        CheckIdentity(def, ns, null, body);
        CheckDecodable(def, body, fieldValidation);
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
        s.Owners[new Owner(ManagerOf(fieldManager), "Update", string.Empty)] = Fields.Leaves(body, def.HasStatus).Keys.ToHashSet(StringComparer.Ordinal);
        AfterWrite(def, s, null);
        return (201, s.Object.DeepClone());
    }

    private bool IsCustom(ResourceDef def) => _custom.Contains(def);

    /// <summary>
    /// A create or update body is decoded into the kind's Go type: a wrong type is a 400 from the JSON
    /// decoder; an unknown field is dropped, or refused with fieldValidation=Strict (which kubectl sends)
    /// (API concepts, "Field validation": https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).
    /// </summary>
    private void CheckDecodable(ResourceDef def, JsonObject body, string fieldValidation)
    {
        while (Schema.FirstError(def, body, IsCustom(def)) is var (path, problem))
        {
            if (problem.StartsWith("expected string", StringComparison.Ordinal))
            {
                var parts = path.TrimStart('.').Split('.');
                var field = $"{def.Kind}.{string.Join('.', parts[..^1])}";
                JsonNode? value = body;
                foreach (var part in parts)
                {
                    value = value?[part];
                }

                throw new ApiError(400, "BadRequest", $"{def.Kind} in version \"{def.Version}\" cannot be handled as a {def.Kind}: json: cannot unmarshal {Schema.JsonKind(value)} into Go struct field {field} of type string");
            }

            if (fieldValidation == "Strict")
            {
                throw new ApiError(400, "BadRequest", $"{def.Kind} in version \"{def.Version}\" cannot be handled as a {def.Kind}: strict decoding error: unknown field \"{path.TrimStart('.')}\"");
            }

            var segments = path.TrimStart('.').Split('.');
            var parent = segments.Length == 1 ? body : (JsonObject)body[segments[0]]!;
            parent.Remove(segments[^1]);
        }
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

                    // Server-side apply types the configuration with the kind's schema first; a field the schema does not
                    // declare or a value of the wrong type fails there, as a plain error, so the apiserver answers 500
                    // (k8s.io/apimachinery/pkg/util/managedfields/internal/structuredmerge.go; kubernetes/kubernetes#122480, #139253).
                    if (Schema.FirstError(def, config, IsCustom(def)) is var (path, problem))
                    {
                        var gvk = $"{def.GroupVersion}, Kind={def.Kind}";
                        throw new ApiError(500, string.Empty, $"failed to create typed patch object ({(def.Namespaced ? ns : string.Empty)}/{name}; {(def.Group.Length == 0 ? "/" : string.Empty)}{gvk}): {path}: {problem}");
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

                    MergeUpdate(def, s, patch, new Owner(ManagerOf(manager), "Update", string.Empty));
                    return (200, s.Object.DeepClone());
                }

            default:
                throw new ApiError(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got \"{media}\")");
        }
    }

    /// <summary>A merge patch by an Update manager: it takes over the fields it changes and drops the ones it removes.</summary>
    private void MergeUpdate(ResourceDef def, Stored s, JsonObject patch, Owner owner)
    {
        var before = (JsonObject)s.Object.DeepClone();
        var merged = (JsonObject)Fields.MergePatch(s.Object, patch)!;
        merged["metadata"]!["name"] = before["metadata"]!["name"]!.DeepClone();
        var (set, removed) = Fields.PatchPaths(patch);
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
        s.Times[owner] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        s.Object = merged;
        AfterWrite(def, s, before);
    }

    /// <summary>
    /// The status and scale subresources. Scale is autoscaling/v1 Scale over spec.replicas, status.replicas
    /// and the selector (API reference: "Scale v1 autoscaling"; kubectl scale PATCHes it, field manager
    /// kubectl-scale). Writes through a subresource are recorded with "subresource" in managedFields.
    /// </summary>
    private (int, JsonNode) Subresource(ResourceDef def, string? ns, string name, string sub, string method, IQueryCollection query, string? contentType, string body)
    {
        var s = Lookup(def, ns, name);
        var manager = ManagerOf(query["fieldManager"].ToString());
        if (sub == "status")
        {
            if (method == "GET")
            {
                return (200, s.Object.DeepClone());
            }

            if (method == "PATCH" && (contentType ?? string.Empty).StartsWith("application/merge-patch+json", StringComparison.Ordinal))
            {
                var patch = Parse(body);
                var before = (JsonObject)s.Object.DeepClone();
                s.Object["status"] = Fields.MergePatch(s.Object["status"], patch["status"]);
                s.Object["metadata"]!["resourceVersion"] = NextVersion();
                _ = before;
                return (200, s.Object.DeepClone());
            }

            throw new ApiError(405, "MethodNotAllowed", $"{method} {contentType} on {def.Resource}/status is not supported by the fake");
        }

        switch (method)
        {
            case "GET":
                return (200, Scale(def, s));
            case "PATCH" or "PUT":
                {
                    var patch = Parse(body);
                    if (method == "PATCH" && !(contentType ?? string.Empty).StartsWith("application/merge-patch+json", StringComparison.Ordinal)
                                          && !(contentType ?? string.Empty).StartsWith("application/strategic-merge-patch+json", StringComparison.Ordinal))
                    {
                        throw new ApiError(415, "UnsupportedMediaType", $"the fake scales with merge patches or PUT only (got {contentType})");
                    }

                    var scale = method == "PUT" ? patch : (JsonObject)Fields.MergePatch(Scale(def, s), patch)!;
                    if (scale["spec"]?["replicas"] is not JsonValue r || !r.TryGetValue<long>(out var replicas) || replicas < 0)
                    {
                        throw new ApiError(422, "Invalid", $"Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: must be greater than or equal to 0");
                    }

                    MergeUpdate(def, s, new JsonObject { ["spec"] = new JsonObject { ["replicas"] = replicas } }, new Owner(manager, "Update", "scale"));
                    return (200, Scale(def, s));
                }

            default:
                throw new ApiError(405, "MethodNotAllowed", $"{method} is not supported on {def.Resource}/scale");
        }
    }

    private static JsonObject Scale(ResourceDef def, Stored s)
    {
        var meta = s.Object["metadata"]!;
        var selector = s.Object["spec"]?["selector"]?["matchLabels"] as JsonObject ?? [];
        return new JsonObject
        {
            ["kind"] = "Scale",
            ["apiVersion"] = "autoscaling/v1",
            ["metadata"] = new JsonObject
            {
                ["name"] = meta["name"]!.DeepClone(),
                ["namespace"] = meta["namespace"]?.DeepClone(),
                ["uid"] = meta["uid"]!.DeepClone(),
                ["resourceVersion"] = meta["resourceVersion"]!.DeepClone(),
                ["creationTimestamp"] = meta["creationTimestamp"]!.DeepClone(),
            },
            ["spec"] = new JsonObject { ["replicas"] = Num(s.Object["spec"]?["replicas"], 1) },
            ["status"] = new JsonObject
            {
                ["replicas"] = Num(s.Object["status"]?["replicas"], 0),
                ["selector"] = string.Join(',', selector.Select(p => $"{p.Key}={p.Value?.GetValue<string>()}")),
            },
        };
    }

    private (int, JsonNode) Apply(ResourceDef def, string ns, string name, string manager, bool force, JsonObject config)
    {
        var key = new Owner(manager, "Apply", string.Empty);
        var leaves = Fields.Leaves(config, def.HasStatus);
        if (def.HasStatus)
        {
            config.Remove("status");
        }

        if (!_objects.TryGetValue((def.Group, def.Resource, ns, name), out var s))
        {
            s = Insert(def, ns, name, config);
            s.Owners[key] = leaves.Keys.ToHashSet(StringComparer.Ordinal);
            s.Times[key] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            AfterWrite(def, s, null);
            return (201, s.Object.DeepClone());
        }

        var before = (JsonObject)s.Object.DeepClone();

        // Conflicts: a field another manager owns, whose value this configuration changes.
        var conflicts = new List<(Owner Owner, string Path)>();
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
                    conflicts.Add((owner, path));
                }
            }
        }

        if (conflicts.Count > 0 && !force)
        {
            throw Conflict(def, s, name, conflicts);
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
        s.Times[key] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        AfterWrite(def, s, before);
        return (200, s.Object.DeepClone());
    }

    /// <summary>
    /// The apiserver's apply conflict: 409, reason Conflict, one cause per field, and the message of
    /// k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go (getConflictMessage, printManager).
    /// </summary>
    private static ApiError Conflict(ResourceDef def, Stored s, string name, List<(Owner Owner, string Path)> conflicts)
    {
        string Print(Owner o)
        {
            var text = $"\"{o.Manager}\"" + (o.Subresource.Length > 0 ? $" with subresource \"{o.Subresource}\"" : string.Empty);
            return o.Operation == "Update" ? $"{text} using {def.GroupVersion}" + (s.Times.TryGetValue(o, out var t) ? $" at {t}" : string.Empty) : text;
        }

        string message;
        if (conflicts.Count == 1)
        {
            message = $"Apply failed with 1 conflict: conflict with {Print(conflicts[0].Owner)}: {Fields.Display(conflicts[0].Path)}";
        }
        else
        {
            var lines = new List<string>();
            foreach (var g in conflicts.GroupBy(c => c.Owner).OrderBy(g => g.Key.Manager, StringComparer.Ordinal))
            {
                lines.Add($"conflicts with {Print(g.Key)}:");
                lines.AddRange(g.Select(c => $"- {Fields.Display(c.Path)}"));
            }

            message = $"Apply failed with {conflicts.Count} conflicts: {string.Join("\n", lines)}";
        }

        var details = new JsonObject
        {
            ["name"] = name,
            ["group"] = def.Group,
            ["kind"] = def.Resource,
            ["causes"] = new JsonArray(conflicts.Select(c => (JsonNode)new JsonObject
            {
                ["reason"] = "FieldManagerConflict",
                ["message"] = $"conflict with {Print(c.Owner)}",
                ["field"] = Fields.Display(c.Path),
            }).ToArray()),
        };
        return new ApiError(409, "Conflict", message, details);
    }

    /// <summary>
    /// DELETE with a propagation policy (API concepts, "Garbage collection": Background and Foreground delete the
    /// dependents, Orphan leaves them with the owner reference removed). The fake's garbage collector runs at
    /// once, so Foreground returns with the dependents already gone rather than with a deletionTimestamp.
    /// </summary>
    private JsonObject Delete(ResourceDef def, string? ns, string name, string propagation)
    {
        var s = Lookup(def, ns, name);
        _objects.Remove((def.Group, def.Resource, ns ?? string.Empty, name));
        var uid = s.Object["metadata"]!["uid"]!.GetValue<string>();
        if (propagation == "Orphan")
        {
            foreach (var dependent in _objects.Values.Where(d => OwnerUid(d.Object) == uid))
            {
                var refs = (JsonArray)dependent.Object["metadata"]!["ownerReferences"]!;
                foreach (var r in refs.Where(r => r?["uid"]?.GetValue<string>() == uid).ToList())
                {
                    refs.Remove(r);
                }

                if (refs.Count == 0)
                {
                    ((JsonObject)dependent.Object["metadata"]!).Remove("ownerReferences");
                }

                dependent.Object["metadata"]!["resourceVersion"] = NextVersion();
            }
        }
        else
        {
            RemoveDependents(uid);
        }

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
        foreach (var (owner, owned) in s.Owners.Where(o => o.Value.Count > 0).OrderBy(o => o.Key.Manager, StringComparer.Ordinal))
        {
            var entry = new JsonObject
            {
                ["manager"] = owner.Manager,
                ["operation"] = owner.Operation,
                ["apiVersion"] = def.GroupVersion,
                ["time"] = s.Times.TryGetValue(owner, out var t) ? t : meta["creationTimestamp"]?.DeepClone(),
                ["fieldsType"] = "FieldsV1",
                ["fieldsV1"] = Fields.ToFieldsV1(owned),
            };
            if (owner.Subresource.Length > 0)
            {
                entry["subresource"] = owner.Subresource;
            }

            managed.Add(entry);
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
            _custom.Add(new ResourceDef(group, v["name"]!.GetValue<string>(), plural, kind, spec?["scope"]?.GetValue<string>() != "Cluster", v["subresources"]?["status"] is not null)
            {
                ShortNames = (spec?["names"]?["shortNames"] as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToList(),
                Categories = (spec?["names"]?["categories"] as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToList(),
            });
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
                ["apiVersion"] = "v1",
                ["kind"] = "Pod",
                ["metadata"] = new JsonObject
                {
                    ["name"] = podName,
                    ["labels"] = labels,
                    ["annotations"] = new JsonObject { ["fake.k8s.io/template-hash"] = hash },
                    ["ownerReferences"] = new JsonArray(new JsonObject
                    {
                        ["apiVersion"] = def.GroupVersion,
                        ["kind"] = def.Kind,
                        ["name"] = name,
                        ["uid"] = uid,
                        ["controller"] = true,
                        ["blockOwnerDeletion"] = true,
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
            ["phase"] = "Running",
            ["hostIP"] = "10.0.0.1",
            ["podIP"] = "10.42.0.10",
            ["startTime"] = started,
            ["conditions"] = new JsonArray(
                Condition("Ready", readyCondition, allReady ? string.Empty : "ContainersNotReady", allReady ? string.Empty : "containers with unready status"),
                Condition("ContainersReady", readyCondition, allReady ? string.Empty : "ContainersNotReady", string.Empty)),
            ["containerStatuses"] = statuses,
        };
    }

    /// <summary>
    /// The kubelet for containers of <see cref="ExitingImages"/>, brought up to now before every request: each
    /// runs for its time, then terminates (exit code 1, reason Error) and is restarted, the first time at once, then
    /// after a back-off of 10 s doubling up to 300 s, during which it waits with reason CrashLoopBackOff (Kubernetes
    /// docs, "Pod Lifecycle", Container restarts: "exponential backoff delay (10s, 20s, 40s, …), that is capped at
    /// 300 seconds"; the kubelet's back-off starts with the first restart). Its ContainerStatus follows the API
    /// reference (Pod v1, ContainerStatus): <c>restartCount</c> counts the restarts, <c>state</c> is running (with
    /// <c>startedAt</c>) or waiting, <c>lastState.terminated</c> holds the previous run's exit, <c>ready</c> and
    /// <c>started</c> are true only while it runs; the pod's Ready condition and the owning workload's ready and
    /// available counts follow (a container without readiness probe is ready while it runs).
    /// </summary>
    private void Kubelet()
    {
        if (ExitingImages.Count == 0)
        {
            return;
        }

        var now = DateTime.UtcNow;
        var owners = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, pod) in _objects.Where(p => p.Key.Resource == "pods" && p.Key.Group.Length == 0).ToList())
        {
            var containers = (pod.Object["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>().ToList();
            if (!containers.Any(c => ExitingImages.ContainsKey(c["image"]?.GetValue<string>() ?? string.Empty)) || pod.Object["status"]?["containerStatuses"] is not JsonArray statuses)
            {
                continue;
            }

            var uid = pod.Object["metadata"]!["uid"]!.GetValue<string>();
            if (!_podStarted.TryGetValue(uid, out var t0))
            {
                _podStarted[uid] = t0 = now;
            }

            var changed = false;
            var allReady = true;
            foreach (var st in statuses.OfType<JsonObject>())
            {
                if (!ExitingImages.TryGetValue(st["image"]?.GetValue<string>() ?? string.Empty, out var run))
                {
                    allReady &= st["ready"]?.GetValue<bool>() == true;
                    continue;
                }

                var (runs, running, since, lastStart, lastEnd, backOff) = Timeline(t0, now, run);
                var restarts = runs - 1;
                allReady &= running;
                if (Num(st["restartCount"], 0) == restarts && (st["state"]?["running"] is not null) == running)
                {
                    continue;
                }

                changed = true;
                st["restartCount"] = restarts;
                st["state"] = running
                    ? new JsonObject { ["running"] = new JsonObject { ["startedAt"] = Stamp(since) } }
                    : new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "CrashLoopBackOff", ["message"] = $"back-off {backOff.TotalSeconds:0}s restarting failed container={st["name"]} pod={key.Name}_{key.Ns}({uid})" } };
                st["ready"] = running;
                st["started"] = running;
                if (lastEnd is { } end)
                {
                    st["lastState"] = new JsonObject { ["terminated"] = new JsonObject { ["exitCode"] = 1, ["reason"] = "Error", ["startedAt"] = Stamp(lastStart!.Value), ["finishedAt"] = Stamp(end) } };
                }
            }

            if (!changed)
            {
                continue;
            }

            var ready = allReady ? "True" : "False";
            pod.Object["status"]!["conditions"] = new JsonArray(
                Condition("Ready", ready, allReady ? string.Empty : "ContainersNotReady", allReady ? string.Empty : "containers with unready status"),
                Condition("ContainersReady", ready, allReady ? string.Empty : "ContainersNotReady", string.Empty));
            pod.Object["metadata"]!["resourceVersion"] = NextVersion();
            if (OwnerUid(pod.Object) is { } owner)
            {
                owners.Add(owner);
            }
        }

        foreach (var workload in _objects.Values.Where(s => s.Def.Kind is "Deployment" or "StatefulSet" or "DaemonSet" && owners.Contains(s.Object["metadata"]!["uid"]!.GetValue<string>())).ToList())
        {
            var uid = workload.Object["metadata"]!["uid"]!.GetValue<string>();
            var ready = _objects.Values.Count(p => p.Def.Kind == "Pod" && OwnerUid(p.Object) == uid
                && (p.Object["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>().Any(c => c["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True"));
            var status = workload.Object["status"] as JsonObject ?? [];
            if (workload.Def.Kind == "DaemonSet")
            {
                var desired = Num(status["desiredNumberScheduled"], 0);
                Count(status, "numberReady", ready);
                Count(status, "numberAvailable", ready);
                Count(status, "numberUnavailable", desired - ready);
            }
            else
            {
                var desired = Num(workload.Object["spec"]?["replicas"], 1);
                Count(status, "readyReplicas", ready);
                Count(status, "availableReplicas", ready);
                if (workload.Def.Kind == "Deployment")
                {
                    Count(status, "unavailableReplicas", desired - ready);
                    if (status["conditions"] is JsonArray { Count: > 0 } conditions)
                    {
                        conditions[0] = ready >= desired
                            ? Condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
                            : Condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.");
                    }
                }
            }

            workload.Object["status"] = status;
            workload.Object["metadata"]!["resourceVersion"] = NextVersion();
        }
    }

    /// <summary>
    /// Where a container that runs <paramref name="run"/> each time is at <paramref name="now"/>: how many runs
    /// began, whether it runs (since when) or waits, the previous run's start and end, the current back-off.
    /// </summary>
    private static (long Runs, bool Running, DateTime Since, DateTime? LastStart, DateTime? LastEnd, TimeSpan BackOff) Timeline(DateTime t0, DateTime now, TimeSpan run)
    {
        var start = t0;
        DateTime? lastStart = null, lastEnd = null;
        for (long k = 0; ; k++)
        {
            var end = start + run;
            if (now < end)
            {
                return (k + 1, true, start, lastStart, lastEnd, TimeSpan.Zero);
            }

            var backOff = k == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(300, 10 * Math.Pow(2, k - 1)));
            lastStart = start;
            lastEnd = end;
            if (now < end + backOff)
            {
                return (k + 1, false, end, lastStart, lastEnd, backOff);
            }

            start = end + backOff;
        }
    }

    private static string Stamp(DateTime t) => t.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    /// <summary>A count in a status: the real API omits it when zero.</summary>
    private static void Count(JsonObject o, string key, long value)
    {
        if (value != 0)
        {
            o[key] = value;
        }
        else
        {
            o.Remove(key);
        }
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
                    ["apiVersion"] = "v1",
                    ["kind"] = "PersistentVolumeClaim",
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

    private static (int, JsonNode) Status(int code, string reason, string message, JsonObject? details = null)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
        };
        if (reason.Length > 0)
        {
            status["reason"] = reason; // errors that are no API status (a plain Go error) have none
        }

        if (details is not null)
        {
            status["details"] = details;
        }

        status["code"] = code;
        return (code, status);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Stored(ResourceDef def, JsonObject obj)
    {
        public ResourceDef Def { get; } = def;

        public JsonObject Object { get; set; } = obj;

        public Dictionary<Owner, HashSet<string>> Owners { get; } = new();

        /// <summary>When each manager last wrote (managedFields[].time).</summary>
        public Dictionary<Owner, string> Times { get; } = new();
    }

    /// <summary>A field manager as managedFields names it.</summary>
    private sealed record Owner(string Manager, string Operation, string Subresource);

    private sealed class ApiError(int code, string reason, string message, JsonObject? details = null) : Exception(message)
    {
        public JsonObject? Details { get; } = details;

        public int Code { get; } = code;

        public string Reason { get; } = reason;
    }
}
