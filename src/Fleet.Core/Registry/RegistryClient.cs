using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Fleet.Core.Registry;

public sealed class RegistryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One layer of an image in a registry: its diff ID (uncompressed digest, from the config) and the size of its compressed blob.</summary>
public sealed record RemoteLayer(string DiffId, long CompressedSize);

/// <summary>An image as a registry holds it for one platform: its ID (the config's digest) and its layers in order.</summary>
public sealed record RemoteImage(string Id, IReadOnlyList<RemoteLayer> Layers);

/// <summary>What a tag offers for a platform: the digest of the manifest to pull (the platform's own manifest when the
/// tag names an index; the tag's manifest otherwise), or why the tag cannot be used for that platform
/// (<see cref="Refusal"/>; then <see cref="Digest"/> is null). <see cref="Offered"/>: the platforms the tag offers.</summary>
public sealed record PlatformManifest(string? Digest, string? Refusal, IReadOnlyList<string> Offered);

/// <summary>Observer for registry requests (metrics).</summary>
public delegate void RegistryRequestObserver(string operation, int status, TimeSpan elapsed);

/// <summary>Distribution (v2) API client: HEAD manifest existence checks, tag listing with pagination, Bearer
/// token and Basic auth from the registry's challenge, a cache with expiry, retries with exponential backoff and
/// jitter, and 429 Retry-After handling. For Docker Hub, tag listing falls back to hub.docker.com's repository API.</summary>
public sealed class RegistryClient
{
    private static readonly string[] ManifestTypes =
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ];

    private readonly HttpClient _http;
    private readonly RegistryOptions _o;
    private readonly TimeProvider _clock;
    private readonly Action<string> _log;
    private readonly ConcurrentDictionary<string, (bool Exists, DateTimeOffset Until)> _exists = new();
    private readonly ConcurrentDictionary<string, (IReadOnlyList<string> Tags, DateTimeOffset Until)> _tags = new();
    private readonly ConcurrentDictionary<string, (string Header, DateTimeOffset Until)> _auth = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<bool>>> _inflight = new();
    private readonly ConcurrentDictionary<string, (PlatformManifest Manifest, DateTimeOffset Until)> _platforms = new();

    public RegistryRequestObserver? Observer { get; init; }
    /// <summary>Number of HTTP requests sent (cache effectiveness, tests).</summary>
    public long RequestCount => Interlocked.Read(ref _requests);
    private long _requests;

    public RegistryClient(RegistryOptions options, HttpClient? http = null, TimeProvider? clock = null, Action<string>? log = null)
    {
        _o = options;
        _http = http ?? new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AllowAutoRedirect = true });
        _http.Timeout = Timeout.InfiniteTimeSpan;
        _clock = clock ?? TimeProvider.System;
        _log = log ?? (_ => { });
    }

    private Uri Base(ImageReference image)
    {
        if (image.IsDockerHub) return new Uri(_o.DockerHubRegistryApi.GetLeftPart(UriPartial.Authority) + "/");
        var host = image.IsDockerHub ? "registry-1.docker.io" : image.Registry;
        var hostOnly = host.Split(':')[0];
        bool plain = _o.PlainHttp.Contains(image.Registry) || hostOnly is "localhost" or "127.0.0.1" or "::1" || hostOnly.StartsWith("127.", StringComparison.Ordinal);
        return new Uri((plain ? "http://" : "https://") + host + "/");
    }

    /// <summary>Whether <paramref name="image"/>:<paramref name="tag"/> exists (HEAD on its manifest). Cached:
    /// positive answers for <see cref="RegistryOptions.PositiveTtl"/>, negative ones for NegativeTtl; concurrent
    /// lookups of the same tag share one request.</summary>
    public async Task<bool> TagExistsAsync(ImageReference image, string tag, CancellationToken ct)
    {
        var key = image + ":" + tag;
        var now = _clock.GetUtcNow();
        if (_exists.TryGetValue(key, out var hit) && hit.Until > now) return hit.Exists;
        if (_tags.TryGetValue(image.ToString(), out var list) && list.Until > now && list.Tags.Contains(tag)) return true;
        var lazy = _inflight.GetOrAdd(key, _ => new Lazy<Task<bool>>(() => HeadAsync(image, tag, key, ct)));
        try { return await lazy.Value.WaitAsync(ct); }
        finally { _inflight.TryRemove(KeyValuePair.Create(key, lazy)); }
    }

    private async Task<bool> HeadAsync(ImageReference image, string tag, string key, CancellationToken ct)
    {
        var uri = new Uri(Base(image), $"v2/{image.Repository}/manifests/{Uri.EscapeDataString(tag)}");
        using var resp = await SendAsync(image, "head_manifest", () =>
        {
            var req = new HttpRequestMessage(HttpMethod.Head, uri);
            foreach (var t in ManifestTypes) req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            return req;
        }, ct);
        bool exists = resp.StatusCode switch
        {
            HttpStatusCode.OK => true,
            HttpStatusCode.NotFound => false,
            _ => throw new RegistryException($"HEAD {uri} answered {(int)resp.StatusCode} {resp.ReasonPhrase}; check the registry address, credentials and repository name"),
        };
        _exists[key] = (exists, _clock.GetUtcNow() + (exists ? _o.PositiveTtl : _o.NegativeTtl));
        return exists;
    }

    /// <summary>
    /// The manifest of <paramref name="image"/>:<paramref name="tag"/> to pull on <paramref name="platform"/>
    /// (os/arch[/variant]; null: any, the tag's own manifest): an index (manifest list) must list the platform, and
    /// the platform's manifest digest is returned; a single image must be built for it (its config's os and
    /// architecture). Otherwise the answer carries the refusal, naming what the tag offers. Cached for PositiveTtl.
    /// </summary>
    public async Task<PlatformManifest> PlatformManifestAsync(ImageReference image, string tag, string? platform, CancellationToken ct)
    {
        var key = image + ":" + tag + "|" + platform;
        if (_platforms.TryGetValue(key, out var hit) && hit.Until > _clock.GetUtcNow()) return hit.Manifest;
        var where = $"{image}:{tag}";
        var (top, topDigest) = await GetManifestAsync(image, tag, ManifestTypes, where, ct);
        PlatformManifest answer;
        using (top)
        {
            var root = top.RootElement;
            if (root.TryGetProperty("manifests", out var entries) && entries.ValueKind == JsonValueKind.Array)
            {
                var offered = new List<string>();
                string? digest = null;
                foreach (var e in entries.EnumerateArray())
                {
                    if (!e.TryGetProperty("platform", out var p)) continue;
                    var (os, arch, variant) = (Str(p, "os") ?? "", Str(p, "architecture") ?? "", Str(p, "variant"));
                    if (os == "unknown") continue; // attestation manifests (buildx) are not images
                    offered.Add(os + "/" + arch + (string.IsNullOrEmpty(variant) ? "" : "/" + variant));
                    if (digest is null && platform is not null && AppModule.Core.Policy.Platforms.Matches(platform, os, arch, variant)) digest = Str(e, "digest");
                }
                answer = platform is null ? new PlatformManifest(topDigest, null, offered)
                    : digest is not null ? new PlatformManifest(digest, null, offered)
                    : new PlatformManifest(null, $"{where} offers {(offered.Count == 0 ? "no platform" : string.Join(", ", offered))}, not {platform}", offered);
            }
            else if (platform is null) answer = new PlatformManifest(topDigest, null, []);
            else if (!root.TryGetProperty("config", out var config) || Str(config, "digest") is not { } configDigest)
                answer = new PlatformManifest(null, $"{where} has a manifest without a config (schema 1?): its platform cannot be told; push it again with a current client", []);
            else
            {
                using var cfg = await GetJsonAsync(image, "get_config", $"v2/{image.Repository}/blobs/{configDigest}", [], where, ct);
                var c = cfg.RootElement;
                var (os, arch, variant) = (Str(c, "os") ?? "", Str(c, "architecture") ?? "", Str(c, "variant"));
                var one = os + "/" + arch + (string.IsNullOrEmpty(variant) ? "" : "/" + variant);
                answer = AppModule.Core.Policy.Platforms.Matches(platform, os, arch, variant)
                    ? new PlatformManifest(topDigest, null, [one])
                    : new PlatformManifest(null, $"{where} is a single-platform image for {one}, not {platform}", [one]);
            }
        }
        _platforms[key] = (answer, _clock.GetUtcNow() + _o.PositiveTtl);
        return answer;
    }

    /// <summary>A manifest and its digest (the registry's Docker-Content-Digest, else the SHA-256 of the bytes it sent).</summary>
    private async Task<(JsonDocument Doc, string Digest)> GetManifestAsync(ImageReference image, string reference, string[] accept, string where, CancellationToken ct)
    {
        var uri = new Uri(Base(image), $"v2/{image.Repository}/manifests/{Uri.EscapeDataString(reference)}");
        using var resp = await SendAsync(image, "get_manifest", () =>
        {
            var req = new HttpRequestMessage(HttpMethod.Get, uri);
            foreach (var t in accept) req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            return req;
        }, ct);
        if (resp.StatusCode == HttpStatusCode.NotFound)
            throw new RegistryException($"{where} does not exist in the registry (GET {uri} answered 404); push it or fix the target");
        if (!resp.IsSuccessStatusCode)
            throw new RegistryException($"GET {uri} for {where} answered {(int)resp.StatusCode} {resp.ReasonPhrase}");
        var bytes = await resp.Content.ReadAsByteArrayAsync(ct);
        var digest = resp.Headers.TryGetValues("Docker-Content-Digest", out var d) && d.FirstOrDefault() is { } h && h.StartsWith("sha256:", StringComparison.Ordinal)
            ? h : "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        try { return (JsonDocument.Parse(bytes), digest); }
        catch (JsonException e) { throw new RegistryException($"GET {uri} for {where} answered with invalid JSON: {e.Message}", e); }
    }

    /// <summary>
    /// What the registry holds under <paramref name="image"/>:<paramref name="tagOrDigest"/> for
    /// <paramref name="platform"/>, without pulling it: the image manifest (through an index when the tag names
    /// one), the image ID (its config's digest) and each layer's diff ID (from the config's rootfs) with the
    /// size of its compressed blob. Not cached: an install asks once.
    /// </summary>
    public async Task<RemoteImage> RemoteImageAsync(ImageReference image, string tagOrDigest, string platform, CancellationToken ct)
    {
        var where = $"{image}:{tagOrDigest}";
        using var top = await GetJsonAsync(image, "get_manifest", $"v2/{image.Repository}/manifests/{Uri.EscapeDataString(tagOrDigest)}", ManifestTypes, where, ct);
        var manifest = top.RootElement;
        if (manifest.TryGetProperty("manifests", out var entries) && entries.ValueKind == JsonValueKind.Array)
        {
            string? digest = null;
            foreach (var e in entries.EnumerateArray())
            {
                if (e.TryGetProperty("platform", out var p)
                    && AppModule.Core.Policy.Platforms.Matches(platform, Str(p, "os") ?? "", Str(p, "architecture") ?? "", Str(p, "variant")))
                {
                    digest = Str(e, "digest");
                    break;
                }
            }

            if (digest is null) throw new RegistryException($"{where} is an index without a manifest for {platform}");
            using var inner = await GetJsonAsync(image, "get_manifest", $"v2/{image.Repository}/manifests/{digest}", ManifestTypes[2..4], $"{where} ({platform})", ct);
            return await FromManifestAsync(image, inner.RootElement.Clone(), $"{where} ({platform})", ct);
        }

        return await FromManifestAsync(image, manifest.Clone(), where, ct);
    }

    private async Task<RemoteImage> FromManifestAsync(ImageReference image, JsonElement manifest, string where, CancellationToken ct)
    {
        if (!manifest.TryGetProperty("config", out var config) || Str(config, "digest") is not { } configDigest
            || !manifest.TryGetProperty("layers", out var layers) || layers.ValueKind != JsonValueKind.Array)
            throw new RegistryException($"the manifest of {where} names no config and layers (schema 1 or not an image)");
        var sizes = layers.EnumerateArray().Select(l => l.TryGetProperty("size", out var s) && s.TryGetInt64(out var n) ? n : -1).ToArray();
        using var cfg = await GetJsonAsync(image, "get_config", $"v2/{image.Repository}/blobs/{configDigest}", [], where, ct);
        if (!cfg.RootElement.TryGetProperty("rootfs", out var rootfs) || !rootfs.TryGetProperty("diff_ids", out var diffs) || diffs.ValueKind != JsonValueKind.Array)
            throw new RegistryException($"the config {configDigest} of {where} has no rootfs.diff_ids");
        var diffIds = diffs.EnumerateArray().Select(d => d.GetString() ?? "").ToArray();
        if (diffIds.Length != sizes.Length || sizes.Any(n => n < 0) || diffIds.Any(d => !d.StartsWith("sha256:", StringComparison.Ordinal)))
            throw new RegistryException($"the manifest of {where} lists {sizes.Length} layer(s), its config {diffIds.Length} diff ID(s); they do not pair up");
        return new RemoteImage(configDigest, diffIds.Zip(sizes, (d, n) => new RemoteLayer(d, n)).ToArray());
    }

    private async Task<JsonDocument> GetJsonAsync(ImageReference image, string op, string path, string[] accept, string where, CancellationToken ct)
    {
        var uri = new Uri(Base(image), path);
        using var resp = await SendAsync(image, op, () =>
        {
            var req = new HttpRequestMessage(HttpMethod.Get, uri);
            foreach (var t in accept) req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            return req;
        }, ct);
        if (!resp.IsSuccessStatusCode)
            throw new RegistryException($"GET {uri} for {where} answered {(int)resp.StatusCode} {resp.ReasonPhrase}");
        try { return await JsonDocument.ParseAsync(await resp.Content.ReadAsStreamAsync(ct), cancellationToken: ct); }
        catch (JsonException e) { throw new RegistryException($"GET {uri} for {where} answered with invalid JSON: {e.Message}", e); }
    }

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>All tags of the repository (GET /v2/&lt;name&gt;/tags/list, following Link pagination), cached for
    /// TagListTtl. For Docker Hub, a failure falls back to hub.docker.com/v2/repositories/&lt;ns&gt;/&lt;repo&gt;/tags.</summary>
    public async Task<IReadOnlyList<string>> ListTagsAsync(ImageReference image, CancellationToken ct)
    {
        var key = image.ToString();
        if (_tags.TryGetValue(key, out var hit) && hit.Until > _clock.GetUtcNow()) return hit.Tags;
        IReadOnlyList<string> tags;
        try
        {
            tags = await ListViaDistributionAsync(image, ct);
        }
        catch (JsonException e) when (!image.IsDockerHub)
        {
            throw new RegistryException($"{image.Registry} sent a tag list that is not valid JSON: {e.Message}", e);
        }
        catch (RegistryException e) when (image.IsDockerHub)
        {
            _log($"registry: tag list for {image} failed ({e.Message}); falling back to the Docker Hub repository API");
            try { tags = await ListViaDockerHubAsync(image, ct); }
            catch (JsonException je) { throw new RegistryException($"Docker Hub API sent a tag list that is not valid JSON: {je.Message}", je); }
        }
        _tags[key] = (tags, _clock.GetUtcNow() + _o.TagListTtl);
        return tags;
    }

    private async Task<IReadOnlyList<string>> ListViaDistributionAsync(ImageReference image, CancellationToken ct)
    {
        var result = new List<string>();
        var next = new Uri(Base(image), $"v2/{image.Repository}/tags/list?n=1000");
        for (int page = 0; page < 1000 && next is not null; page++)
        {
            var uri = next;
            using var resp = await SendAsync(image, "list_tags", () => new HttpRequestMessage(HttpMethod.Get, uri), ct);
            if (resp.StatusCode == HttpStatusCode.NotFound) return result; // no such repository: no tags
            if (!resp.IsSuccessStatusCode)
                throw new RegistryException($"GET {uri} answered {(int)resp.StatusCode} {resp.ReasonPhrase}");
            using var doc = JsonDocument.Parse(await resp.Content.ReadAsStreamAsync(ct));
            if (doc.RootElement.TryGetProperty("tags", out var arr) && arr.ValueKind == JsonValueKind.Array)
                foreach (var t in arr.EnumerateArray()) if (t.GetString() is { } s) result.Add(s);
            next = NextLink(resp, uri);
        }
        return result;
    }

    private static Uri? NextLink(HttpResponseMessage resp, Uri current)
    {
        if (!resp.Headers.TryGetValues("Link", out var links)) return null;
        foreach (var l in links)
        {
            int lt = l.IndexOf('<'), gt = l.IndexOf('>');
            if (lt >= 0 && gt > lt && l.Contains("rel=\"next\"", StringComparison.Ordinal)) return new Uri(current, l[(lt + 1)..gt]);
        }
        return null;
    }

    private async Task<IReadOnlyList<string>> ListViaDockerHubAsync(ImageReference image, CancellationToken ct)
    {
        var result = new List<string>();
        Uri? next = new(_o.DockerHubApi, $"v2/repositories/{image.Repository}/tags?page_size=100");
        _o.Credentials.TryGetValue(ImageReference.DockerHub, out var cred);
        for (int page = 0; page < 1000 && next is not null; page++)
        {
            var uri = next;
            using var resp = await SendRawAsync("hub_list_tags", () =>
            {
                var req = new HttpRequestMessage(HttpMethod.Get, uri);
                if (cred is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", cred.Password);
                return req;
            }, ct);
            if (resp.StatusCode == HttpStatusCode.NotFound) return result;
            if (!resp.IsSuccessStatusCode) throw new RegistryException($"Docker Hub API GET {uri} answered {(int)resp.StatusCode} {resp.ReasonPhrase}");
            using var doc = JsonDocument.Parse(await resp.Content.ReadAsStreamAsync(ct));
            if (doc.RootElement.TryGetProperty("results", out var arr) && arr.ValueKind == JsonValueKind.Array)
                foreach (var t in arr.EnumerateArray())
                    if (t.TryGetProperty("name", out var n) && n.GetString() is { } s) result.Add(s);
            next = doc.RootElement.TryGetProperty("next", out var nx) && nx.ValueKind == JsonValueKind.String ? new Uri(nx.GetString()!) : null;
        }
        return result;
    }

    /// <summary>Sends with auth: on a 401 answers the challenge (Bearer token from the realm, or Basic) and retries once.</summary>
    private async Task<HttpResponseMessage> SendAsync(ImageReference image, string op, Func<HttpRequestMessage> make, CancellationToken ct)
    {
        var scope = $"repository:{image.Repository}:pull";
        var authKey = image.Registry + "|" + scope;
        Func<HttpRequestMessage> withAuth = () =>
        {
            var r = make();
            if (_auth.TryGetValue(authKey, out var a) && a.Until > _clock.GetUtcNow())
                r.Headers.TryAddWithoutValidation("Authorization", a.Header);
            return r;
        };
        var resp = await SendRawAsync(op, withAuth, ct);
        if (resp.StatusCode != HttpStatusCode.Unauthorized) return resp;
        var challenge = resp.Headers.WwwAuthenticate.FirstOrDefault();
        resp.Dispose();
        if (challenge is null) throw new RegistryException($"{image.Registry} answered 401 without a WWW-Authenticate challenge");
        await AuthenticateAsync(image, challenge, scope, authKey, ct);
        resp = await SendRawAsync(op, withAuth, ct);
        if (resp.StatusCode == HttpStatusCode.Unauthorized)
        {
            resp.Dispose();
            throw new RegistryException($"{image.Registry} refused the credentials for {image.Repository} (401 after authenticating); check the username/token configured for {image.Registry}");
        }
        return resp;
    }

    private async Task AuthenticateAsync(ImageReference image, AuthenticationHeaderValue challenge, string scope, string authKey, CancellationToken ct)
    {
        _o.Credentials.TryGetValue(image.Registry, out var cred);
        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (cred is null) throw new RegistryException($"{image.Registry} requires credentials (Basic auth) and none are configured for it");
            _auth[authKey] = ("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(cred.Username + ":" + cred.Password)), DateTimeOffset.MaxValue);
            return;
        }
        if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            throw new RegistryException($"{image.Registry} asks for unsupported auth scheme '{challenge.Scheme}'");
        var p = ParseChallenge(challenge.Parameter ?? "");
        if (!p.TryGetValue("realm", out var realm)) throw new RegistryException($"{image.Registry}: Bearer challenge without realm");
        var q = new StringBuilder(realm).Append(realm.Contains('?') ? '&' : '?');
        if (p.TryGetValue("service", out var service)) q.Append("service=").Append(Uri.EscapeDataString(service)).Append('&');
        q.Append("scope=").Append(Uri.EscapeDataString(scope));
        var tokenUri = new Uri(q.ToString());
        using var resp = await SendRawAsync("token", () =>
        {
            var r = new HttpRequestMessage(HttpMethod.Get, tokenUri);
            if (cred is not null)
                r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(cred.Username + ":" + cred.Password)));
            return r;
        }, ct);
        if (!resp.IsSuccessStatusCode)
            throw new RegistryException($"token server {tokenUri.GetLeftPart(UriPartial.Path)} answered {(int)resp.StatusCode} {resp.ReasonPhrase} for {scope}; check the credentials for {image.Registry}");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(await resp.Content.ReadAsStreamAsync(ct)); }
        catch (JsonException je) { throw new RegistryException($"token server {tokenUri.Host} answered with invalid JSON: {je.Message}", je); }
        using var _ = doc;
        var root = doc.RootElement;
        string? token = root.TryGetProperty("token", out var t) ? t.GetString() : root.TryGetProperty("access_token", out var at) ? at.GetString() : null;
        if (string.IsNullOrEmpty(token)) throw new RegistryException($"token server {tokenUri.Host} returned no token");
        int expiresIn = root.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var ei) ? ei : 60;
        _auth[authKey] = ("Bearer " + token, _clock.GetUtcNow() + TimeSpan.FromSeconds(Math.Max(10, expiresIn - 10)));
    }

    internal static Dictionary<string, string> ParseChallenge(string s)
    {
        var d = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && (s[i] == ',' || s[i] == ' ')) i++;
            int eq = s.IndexOf('=', i);
            if (eq < 0) break;
            var name = s[i..eq].Trim();
            i = eq + 1;
            string value;
            if (i < s.Length && s[i] == '"')
            {
                int end = s.IndexOf('"', i + 1);
                if (end < 0) end = s.Length;
                value = s[(i + 1)..end];
                i = end + 1;
            }
            else
            {
                int end = s.IndexOf(',', i);
                if (end < 0) end = s.Length;
                value = s[i..end].Trim();
                i = end;
            }
            d[name] = value;
        }
        return d;
    }

    /// <summary>One request with retries: network errors, timeouts, 5xx and 429 are retried with exponential
    /// backoff and jitter (429 waits Retry-After when given, up to MaxRetryAfter).</summary>
    private async Task<HttpResponseMessage> SendRawAsync(string op, Func<HttpRequestMessage> make, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            var sw = Stopwatch.StartNew();
            HttpResponseMessage? resp = null;
            Exception? error = null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_o.RequestTimeout);
            try
            {
                Interlocked.Increment(ref _requests);
                using var req = make();
                resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            }
            catch (HttpRequestException e) { error = e; }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested) { error = e; }
            Observer?.Invoke(op, resp is null ? 0 : (int)resp.StatusCode, sw.Elapsed);

            TimeSpan? wait = null;
            string why;
            if (resp is null) why = error is OperationCanceledException ? $"timed out after {_o.RequestTimeout.TotalSeconds:0.#} s" : error!.Message;
            else if (resp.StatusCode == HttpStatusCode.TooManyRequests)
            {
                why = "rate limited (429)";
                wait = RetryAfter(resp);
                if (wait > _o.MaxRetryAfter)
                {
                    resp.Dispose();
                    throw new RegistryException($"{op}: the registry rate-limits us for {wait.Value.TotalSeconds:0} s (Retry-After), longer than max_retry_after; try again later or authenticate for a higher limit");
                }
            }
            else if ((int)resp.StatusCode >= 500) why = $"server error {(int)resp.StatusCode}";
            else return resp;

            resp?.Dispose();
            if (attempt >= _o.MaxAttempts)
                throw new RegistryException($"{op}: giving up after {attempt} attempts: {why}", error);
            var backoff = wait ?? Backoff(attempt);
            _log($"registry: {op} attempt {attempt} failed ({why}); retrying in {backoff.TotalMilliseconds:0} ms");
            await Task.Delay(backoff, _clock, ct);
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var ms = _o.BackoffBase.TotalMilliseconds * Math.Pow(2, attempt - 1);
        ms = Math.Min(ms, _o.BackoffMax.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(ms * (0.5 + Random.Shared.NextDouble() / 2));
    }

    private TimeSpan? RetryAfter(HttpResponseMessage resp)
    {
        var ra = resp.Headers.RetryAfter;
        if (ra?.Delta is { } d) return d;
        if (ra?.Date is { } date) { var w = date - _clock.GetUtcNow(); return w < TimeSpan.Zero ? TimeSpan.Zero : w; }
        return null;
    }

    /// <summary>Drops every cached answer (tests, SIGHUP).</summary>
    public void ClearCache() { _exists.Clear(); _tags.Clear(); _platforms.Clear(); }

    internal static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
