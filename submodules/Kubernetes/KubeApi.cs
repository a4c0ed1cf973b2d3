using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// The few REST calls the sub-module makes, sent with the kubeconfig's TLS settings and credentials
/// (<see cref="KubeConfig"/>, <see cref="KubeHttp"/>), on generic JSON objects so that any kind, including
/// custom resources, can be applied. Discovery (kind → resource) is our own.
/// </summary>
public sealed class KubeApi : IKubeApi, IDisposable
{
    private const string ApplyPatch = "application/apply-patch+yaml";
    private const string MergePatch = "application/merge-patch+json";
    private readonly KubeHttp _http;
    private readonly string _base;
    private readonly Dictionary<string, Dictionary<string, ResourceType>?> _discovery = new(StringComparer.Ordinal);

    private KubeApi(KubeConnection connection, TimeSpan timeout)
    {
        _http = new KubeHttp(connection, timeout);
        _base = connection.Server;
        Source = connection.Source;
        ContextNamespace = connection.Namespace;
    }

    /// <summary>Which kubeconfig (or in-cluster config) is used, for messages.</summary>
    public string Source { get; }

    public string Server => _base;

    /// <summary>The namespace of the kubeconfig context, if it names one.</summary>
    public string? ContextNamespace { get; }

    /// <summary>kubectl's variable naming the kubeconfig file(s).</summary>
    public const string KubeConfigVariable = "KUBECONFIG";

    /// <summary>Where ~/.kube/config is looked for.</summary>
    public const string HomeVariable = "HOME";

    /// <summary>
    /// Connects with the kubeconfig from, in order: the config file's <c>kubeconfig</c>, <c>$KUBECONFIG</c>,
    /// <c>~/.kube/config</c>, k3s's <c>/etc/rancher/k3s/k3s.yaml</c>, else the in-cluster service account.
    /// </summary>
    public static KubeApi Connect(K8sSettings settings, IReadOnlyDictionary<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(env);
        return new KubeApi(ResolveConfig(settings, env), settings.RequestTimeout);
    }

    private static KubeConnection ResolveConfig(K8sSettings settings, IReadOnlyDictionary<string, string?> env)
    {
        if (settings.KubeConfig is { } explicitPath)
        {
            if (!File.Exists(explicitPath))
            {
                throw new ConfigException($"{settings.ConfigSource}: kubeconfig = \"{explicitPath}\" does not exist; fix the path or remove the line to use $KUBECONFIG or ~/.kube/config");
            }

            return FromFile(explicitPath, settings);
        }

        if (env.TryGetValue(KubeConfigVariable, out var kubeconfig) && !string.IsNullOrWhiteSpace(kubeconfig))
        {
            var paths = kubeconfig.Split(':', StringSplitOptions.RemoveEmptyEntries).Where(File.Exists).ToArray();
            if (paths.Length == 0)
            {
                throw new ConfigException($"KUBECONFIG={kubeconfig} names no existing file; fix the variable or unset it");
            }

            if (paths.Length > 1)
            {
                Log.Warning($"KUBECONFIG names several files; only the first, {paths[0]}, is used");
            }

            return FromFile(paths[0], settings);
        }

        var home = env.TryGetValue(HomeVariable, out var h) && !string.IsNullOrEmpty(h) ? h : "/root";
        foreach (var candidate in new[] { Path.Combine(home, ".kube", "config"), "/etc/rancher/k3s/k3s.yaml" })
        {
            if (File.Exists(candidate))
            {
                return FromFile(candidate, settings);
            }
        }

        if (KubeConfig.IsInCluster(env))
        {
            return KubeConfig.InCluster(env);
        }

        throw new ConfigException(
            $"no kubeconfig found: set kubeconfig = \"/path\" in {settings.ConfigSource}, or KUBECONFIG, or provide {Path.Combine(home, ".kube", "config")} (k3s: /etc/rancher/k3s/k3s.yaml)");
    }

    private static KubeConnection FromFile(string path, K8sSettings settings)
    {
        try
        {
            return KubeConfig.Load(path, settings.Context);
        }
        catch (Exception e)
        {
            throw new ConfigException($"kubeconfig {path} cannot be used: {e.Message}; check the file (clusters, users, current-context)");
        }
    }

    /// <summary>Forgets what discovery said, e.g. after CustomResourceDefinitions were applied.</summary>
    public void ResetDiscovery() => _discovery.Clear();

    /// <summary>The resource type of a kind, or null when the API server does not serve it.</summary>
    public async Task<ResourceType?> ResolveAsync(string apiVersion, string kind, CancellationToken ct)
    {
        var types = await GroupVersionAsync(apiVersion, ct).ConfigureAwait(false);
        return types is not null && types.TryGetValue(kind, out var t) ? t : null;
    }

    private async Task<Dictionary<string, ResourceType>?> GroupVersionAsync(string apiVersion, CancellationToken ct)
    {
        if (_discovery.TryGetValue(apiVersion, out var cached))
        {
            return cached;
        }

        var path = apiVersion.Contains('/', StringComparison.Ordinal) ? $"/apis/{apiVersion}" : $"/api/{apiVersion}";
        var list = await GetAsync(path, ct).ConfigureAwait(false);
        Dictionary<string, ResourceType>? types = null;
        if (list?["resources"] is JsonArray resources)
        {
            types = new Dictionary<string, ResourceType>(StringComparer.Ordinal);
            foreach (var r in resources.OfType<JsonObject>())
            {
                var name = r["name"]?.GetValue<string>();
                var k = r["kind"]?.GetValue<string>();
                if (name is null || k is null || name.Contains('/', StringComparison.Ordinal))
                {
                    continue; // subresources such as deployments/scale
                }

                types.TryAdd(k, new ResourceType(apiVersion, k, name, r["namespaced"]?.GetValue<bool>() ?? false));
            }
        }

        _discovery[apiVersion] = types;
        return types;
    }

    /// <summary>GET; null when the object (or path) does not exist.</summary>
    public async Task<JsonObject?> GetAsync(string path, CancellationToken ct)
    {
        try
        {
            return await SendAsync(HttpMethod.Get, path, null, null, ct).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<JsonObject>> ListAsync(ResourceType type, string labelSelector, CancellationToken ct)
    {
        var list = await SendAsync(HttpMethod.Get, type.ListPath(labelSelector), null, null, ct).ConfigureAwait(false);
        var items = list["items"] as JsonArray ?? [];
        var result = new List<JsonObject>();
        foreach (var item in items.OfType<JsonObject>())
        {
            // List items carry no apiVersion/kind; fill them in so that callers can treat them like manifests.
            item["apiVersion"] ??= type.ApiVersion;
            item["kind"] ??= type.Kind;
            result.Add(item);
        }

        return result;
    }

    /// <summary>Server-side apply of one object (created when missing).</summary>
    public Task<JsonObject> ApplyAsync(ResourceType type, string? ns, string name, JsonObject body, string fieldManager, bool force, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, $"{type.ObjectPath(ns, name)}?fieldManager={Uri.EscapeDataString(fieldManager)}&force={(force ? "true" : "false")}", body.ToJsonString(), ApplyPatch, ct);

    public Task<JsonObject> MergePatchAsync(ResourceType type, string? ns, string name, JsonObject patch, string fieldManager, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, $"{type.ObjectPath(ns, name)}?fieldManager={Uri.EscapeDataString(fieldManager)}", patch.ToJsonString(), MergePatch, ct);

    public Task<JsonObject> CreateAsync(string collectionPath, JsonObject body, string fieldManager, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, $"{collectionPath}?fieldManager={Uri.EscapeDataString(fieldManager)}", body.ToJsonString(), "application/json", ct);

    /// <summary>DELETE with background propagation; false when it was already gone.</summary>
    public async Task<bool> DeleteAsync(ResourceType type, string? ns, string name, CancellationToken ct)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, type.ObjectPath(ns, name), """{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}""", "application/json", ct).ConfigureAwait(false);
            return true;
        }
        catch (KubeApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    public async Task<JsonObject> SendAsync(HttpMethod method, string path, string? body, string? contentType, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, _base + path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType ?? "application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new SubModuleFailure($"cannot reach the Kubernetes API server {_base} (kubeconfig: {Source}): {e.Message}; check that the cluster runs and the kubeconfig is right");
        }
        catch (TaskCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new SubModuleFailure($"the Kubernetes API server {_base} did not answer {method} {path} in time ({e.Message}); raise request_timeout_seconds or check the cluster");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            JsonObject? json = null;
            try
            {
                json = text.Length > 0 ? JsonNode.Parse(text) as JsonObject : null;
            }
            catch (JsonException)
            {
                // not JSON: keep the text for the message
            }

            if (response.IsSuccessStatusCode)
            {
                return json ?? [];
            }

            var reason = json?["reason"]?.GetValue<string>() ?? response.StatusCode.ToString();
            var message = json?["message"]?.GetValue<string>() ?? Truncate(text);
            Log.Debug($"{method} {path} -> {(int)response.StatusCode} {reason}: {message}");
            var hint = response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => "; the kubeconfig's credentials were refused",
                HttpStatusCode.Forbidden => "; the kubeconfig's user lacks the RBAC permission for this",
                _ => string.Empty,
            };
            throw new KubeApiException(response.StatusCode, reason, $"{message} ({(int)response.StatusCode} {reason}){hint}");
        }
    }

    private static string Truncate(string s) => s.Length > 300 ? s[..300] + "..." : s;

    public void Dispose() => _http.Dispose();
}
