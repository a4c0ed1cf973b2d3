using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using Fleet.Core.Registry;
using Fleet.Core.Versioning;
using TestSupport;

namespace Fleet.Tests;

/// <summary>A docker-registry holding fleettest/web:1.0 and :2.0 pushed from the engine.</summary>
public sealed class PushedRegistry : IDisposable
{
    public RegistryServer Server { get; } = new();
    public ImageReference Web { get; }

    public PushedRegistry()
    {
        Server.Push("appmodule/web:1.0", "fleettest/web:1.0");
        Server.Push("appmodule/web:2.0", "fleettest/web:2.0");
        Web = ImageReference.Parse($"{Server.Address}/fleettest/web");
    }

    public void Dispose() => Server.Dispose();

    private Task<MultiPlatformImage>? _multi;

    /// <summary>fleettest/multi:2.0, an index (manifest list) of web:2.0 as pushed (for the engine's platform) and of
    /// the same layers under a config that says another architecture (arm64, or amd64 on an arm64 machine): what
    /// <c>docker buildx --platform a,b</c> pushes, built with the registry's API. Made once, on first use.</summary>
    public Task<MultiPlatformImage> MultiPlatformAsync() => _multi ??= MakeMultiPlatformAsync();

    private async Task<MultiPlatformImage> MakeMultiPlatformAsync()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{Server.Address}/v2/") };
        const string manifestType = "application/vnd.docker.distribution.manifest.v2+json";
        var get = new HttpRequestMessage(HttpMethod.Get, "fleettest/web/manifests/2.0");
        get.Headers.Accept.ParseAdd(manifestType);
        using var got = await http.SendAsync(get);
        got.EnsureSuccessStatusCode();
        var nativeBytes = await got.Content.ReadAsByteArrayAsync();
        var nativeDigest = Digest(nativeBytes);
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(nativeBytes)!;
        var configDigest = (string)manifest["config"]!["digest"]!;
        foreach (var blob in manifest["layers"]!.AsArray().Select(l => (string)l!["digest"]!).Append(configDigest))
        {
            using var mount = await http.PostAsync($"fleettest/multi/blobs/uploads/?mount={blob}&from=fleettest/web", null);
            Assert.Equal(HttpStatusCode.Created, mount.StatusCode);
        }
        var config = System.Text.Json.Nodes.JsonNode.Parse(await http.GetByteArrayAsync($"fleettest/web/blobs/{configDigest}"))!;
        var nativeArch = (string)config["architecture"]!;
        var otherArch = nativeArch == "arm64" ? "amd64" : "arm64";
        config["architecture"] = otherArch;
        var otherConfig = Encoding.UTF8.GetBytes(config.ToJsonString());
        using (var start = await http.PostAsync("fleettest/multi/blobs/uploads/", null))
        {
            var upload = new Uri(http.BaseAddress!, start.Headers.Location!).ToString();
            using var body = new ByteArrayContent(otherConfig);
            body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var done = await http.PutAsync(upload + (upload.Contains('?') ? "&" : "?") + "digest=" + Digest(otherConfig), body);
            Assert.Equal(HttpStatusCode.Created, done.StatusCode);
        }
        manifest["config"]!["digest"] = Digest(otherConfig);
        manifest["config"]!["size"] = otherConfig.Length;
        var otherBytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        await PutManifestAsync(http, Digest(nativeBytes), nativeBytes, manifestType);
        await PutManifestAsync(http, Digest(otherBytes), otherBytes, manifestType);
        string Entry(byte[] m, string arch) =>
            "{\"mediaType\":\"" + manifestType + "\",\"size\":" + m.Length + ",\"digest\":\"" + Digest(m) + "\",\"platform\":{\"architecture\":\"" + arch + "\",\"os\":\"linux\""
            + (arch == "arm64" ? ",\"variant\":\"v8\"" : "") + "}}";
        var index = Encoding.UTF8.GetBytes($$"""{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{Entry(nativeBytes, nativeArch)}},{{Entry(otherBytes, otherArch)}}]}""");
        await PutManifestAsync(http, "2.0", index, "application/vnd.docker.distribution.manifest.list.v2+json");
        return new MultiPlatformImage(ImageReference.Parse($"{Server.Address}/fleettest/multi"), "linux/" + nativeArch, nativeDigest, "linux/" + otherArch, Digest(otherBytes), Digest(index));
    }

    private static async Task PutManifestAsync(HttpClient http, string reference, byte[] bytes, string type)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        using var r = await http.PutAsync($"fleettest/multi/manifests/{reference}", content);
        Assert.True(r.StatusCode == HttpStatusCode.Created, $"PUT manifest {reference}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    private static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(b));
}

/// <summary>An index of two platforms: the engine's own (<see cref="Native"/>, web:2.0's manifest) and another.</summary>
public sealed record MultiPlatformImage(ImageReference Image, string Native, string NativeDigest, string Other, string OtherDigest, string IndexDigest);

public sealed partial class RegistryClientTests(Deferred<PushedRegistry> deferred) : IClassFixture<Deferred<PushedRegistry>>
{
    private PushedRegistry reg => deferred.Value;

    private static readonly CancellationToken Ct = new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    [SkippableFact]
    public async Task Existence_is_checked_with_HEAD_and_cached_both_ways()
    {
        var c = new RegistryClient(new RegistryOptions());
        Assert.True(await c.TagExistsAsync(reg.Web, "2.0", Ct));
        Assert.False(await c.TagExistsAsync(reg.Web, "9.9", Ct));
        var sent = c.RequestCount;
        Assert.True(await c.TagExistsAsync(reg.Web, "2.0", Ct));
        Assert.False(await c.TagExistsAsync(reg.Web, "9.9", Ct));
        Assert.Equal(sent, c.RequestCount);
    }

    [SkippableFact]
    public async Task A_tag_offers_a_platform_when_it_is_built_for_it_or_its_index_lists_it_and_the_answer_names_the_manifest_to_pull()
    {
        var m = await reg.MultiPlatformAsync();
        var c = new RegistryClient(new RegistryOptions());
        // a single-platform image: its own manifest, for its platform only
        var own = await c.PlatformManifestAsync(reg.Web, "2.0", m.Native, Ct);
        Assert.Equal((m.NativeDigest, null), (own.Digest, own.Refusal));
        Assert.Equal([m.Native], own.Offered);
        Assert.Equal(m.NativeDigest, (await c.PlatformManifestAsync(reg.Web, "2.0", null, Ct)).Digest);
        var refused = await c.PlatformManifestAsync(reg.Web, "2.0", m.Other, Ct);
        Assert.Null(refused.Digest);
        Assert.Equal($"{reg.Web}:2.0 is a single-platform image for {m.Native}, not {m.Other}", refused.Refusal);
        // an index: the platform's own manifest; no platform asked: the index itself
        Assert.Equal(m.OtherDigest, (await c.PlatformManifestAsync(m.Image, "2.0", m.Other, Ct)).Digest);
        Assert.Equal(m.NativeDigest, (await c.PlatformManifestAsync(m.Image, "2.0", m.Native, Ct)).Digest);
        Assert.Equal(m.IndexDigest, (await c.PlatformManifestAsync(m.Image, "2.0", null, Ct)).Digest);
        var v7 = await c.PlatformManifestAsync(m.Image, "2.0", "linux/arm/v7", Ct);
        Assert.Null(v7.Digest);
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(m.Image + ":2.0")} offers linux/(amd64|arm64/v8), linux/(amd64|arm64/v8), not linux/arm/v7$", v7.Refusal);
        // answers are cached; a tag that does not exist says so
        var sent = c.RequestCount;
        Assert.Equal(m.OtherDigest, (await c.PlatformManifestAsync(m.Image, "2.0", m.Other, Ct)).Digest);
        Assert.Equal(sent, c.RequestCount);
        Assert.Contains("does not exist", (await Assert.ThrowsAsync<RegistryException>(() => c.PlatformManifestAsync(reg.Web, "9.9", m.Native, Ct))).Message);
    }

    [SkippableFact]
    public async Task Cached_answers_expire()
    {
        var c = new RegistryClient(new RegistryOptions { NegativeTtl = TimeSpan.FromMilliseconds(50) });
        Assert.False(await c.TagExistsAsync(reg.Web, "3.0", Ct));
        var sent = c.RequestCount;
        await Task.Delay(100, Ct);
        Assert.False(await c.TagExistsAsync(reg.Web, "3.0", Ct));
        Assert.True(c.RequestCount > sent);
    }

    [SkippableFact]
    public async Task Tags_are_listed_and_a_range_resolves_to_the_newest_existing_one()
    {
        var c = new RegistryClient(new RegistryOptions());
        var tags = await c.ListTagsAsync(reg.Web, Ct);
        Assert.Equal(["1.0", "2.0"], tags.Order());
        Assert.Equal("2.0", VersionTarget.Parse(">=1.5,<3").ResolveNewest(tags));
        Assert.Equal("1.0", VersionTarget.Parse("~1.0").ResolveNewest(tags));
        Assert.Empty(await c.ListTagsAsync(ImageReference.Parse($"{reg.Server.Address}/fleettest/nothing"), Ct));
    }

    [SkippableFact]
    public async Task A_429_answer_is_waited_out_per_Retry_After_and_retried()
    {
        using var proxy = new FlakyProxy(reg.Server.Port, failures: 2, HttpStatusCode.TooManyRequests, retryAfter: "0");
        var c = new RegistryClient(new RegistryOptions { BackoffBase = TimeSpan.FromMilliseconds(10) });
        var img = ImageReference.Parse($"127.0.0.1:{proxy.Port}/fleettest/web");
        Assert.True(await c.TagExistsAsync(img, "1.0", Ct));
        Assert.Equal(3, proxy.Requests);
    }

    [SkippableFact]
    public async Task Server_errors_are_retried_with_backoff_then_reported_with_the_cause()
    {
        using var proxy = new FlakyProxy(reg.Server.Port, failures: 100, HttpStatusCode.ServiceUnavailable, retryAfter: null);
        var c = new RegistryClient(new RegistryOptions { BackoffBase = TimeSpan.FromMilliseconds(5), MaxAttempts = 3 });
        var img = ImageReference.Parse($"127.0.0.1:{proxy.Port}/fleettest/web");
        var e = await Assert.ThrowsAsync<RegistryException>(() => c.TagExistsAsync(img, "1.0", Ct));
        Assert.Contains("3 attempts", e.Message);
        Assert.Contains("503", e.Message);
        Assert.Equal(3, proxy.Requests);
    }

    [SkippableFact]
    public async Task A_rate_limit_longer_than_allowed_fails_fast_with_advice()
    {
        using var proxy = new FlakyProxy(reg.Server.Port, failures: 100, HttpStatusCode.TooManyRequests, retryAfter: "3600");
        var c = new RegistryClient(new RegistryOptions());
        var e = await Assert.ThrowsAsync<RegistryException>(() => c.TagExistsAsync(ImageReference.Parse($"127.0.0.1:{proxy.Port}/fleettest/web"), "1.0", Ct));
        Assert.Contains("rate-limits", e.Message);
        Assert.Equal(1, proxy.Requests);
    }

    [SkippableFact]
    public async Task Docker_Hub_tag_listing_falls_back_to_the_hub_repository_API_with_pagination()
    {
        // Docker Hub is not reachable here: the distribution endpoint is a closed port, the hub API a local stand-in.
        using var hub = new HubApi();
        var c = new RegistryClient(new RegistryOptions
        {
            DockerHubRegistryApi = new Uri($"http://127.0.0.1:{RedisServer.FreePort()}"),
            DockerHubApi = new Uri($"http://127.0.0.1:{hub.Port}/"),
            MaxAttempts = 1,
            Credentials = new Dictionary<string, RegistryCredentials> { ["docker.io"] = new("mycompany", "dckr_pat_x") },
        });
        var tags = await c.ListTagsAsync(ImageReference.Parse("mycompany/app1"), Ct);
        Assert.Equal(["1.0.0", "2.1.0", "latest"], tags.Order());
        Assert.Equal("Bearer dckr_pat_x", hub.LastAuthorization);
    }

    [SkippableTheory]
    [InlineData("app1", "docker.io", "library/app1")]
    [InlineData("mycompany/app1:2.0", "docker.io", "mycompany/app1")]
    [InlineData("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app")]
    [InlineData("registry.example.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "registry.example.com", "app")]
    public void Image_names_split_into_registry_and_repository_like_the_engine(string image, string registry, string repo) =>
        Assert.Equal(new ImageReference(registry, repo), ImageReference.Parse(image).WithoutTagOrDigest());

    [DllImport("libcrypt.so.1", EntryPoint = "crypt")]
    private static extern IntPtr Crypt(string key, string salt);

    [SkippableFact]
    public async Task A_registry_with_basic_auth_is_answered_from_its_challenge_and_wrong_credentials_are_named()
    {
        var dir = Directory.CreateTempSubdirectory("htpasswd-").FullName;
        try
        {
            var hash = Marshal.PtrToStringAnsi(Crypt("s3cret", "$2b$05$abcdefghijklmnopqrstuu"))!;
            Assert.StartsWith("$2b$", hash);
            File.WriteAllText(Path.Combine(dir, "htpasswd"), $"fleet:{hash}\n");
            using var server = RegistryServer.Start($"auth:\n  htpasswd:\n    realm: test\n    path: {dir}/htpasswd\n");
            server.Push("appmodule/web:1.0", "locked/web:1.0", destCreds: "fleet:s3cret");
            var img = ImageReference.Parse($"{server.Address}/locked/web");
            var good = new RegistryClient(new RegistryOptions { Credentials = new Dictionary<string, RegistryCredentials> { [server.Address] = new("fleet", "s3cret") } });
            Assert.True(await good.TagExistsAsync(img, "1.0", Ct));
            Assert.Equal(["1.0"], await good.ListTagsAsync(img, Ct));
            var none = new RegistryClient(new RegistryOptions());
            Assert.Contains("none are configured", (await Assert.ThrowsAsync<RegistryException>(() => none.TagExistsAsync(img, "1.0", Ct))).Message);
            var bad = new RegistryClient(new RegistryOptions { Credentials = new Dictionary<string, RegistryCredentials> { [server.Address] = new("fleet", "wrong") } });
            Assert.Contains("refused the credentials", (await Assert.ThrowsAsync<RegistryException>(() => bad.TagExistsAsync(img, "1.0", Ct))).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Answers the first <c>failures</c> requests with a status, then forwards to the real registry.</summary>
    private sealed class FlakyProxy : IDisposable
    {
        private readonly HttpListener _l = new();
        private readonly HttpClient _http = new();
        private int _requests;
        public int Port { get; } = RedisServer.FreePort();
        public int Requests => _requests;

        public FlakyProxy(int target, int failures, HttpStatusCode status, string? retryAfter)
        {
            _l.Prefixes.Add($"http://127.0.0.1:{Port}/");
            _l.Start();
            _ = Task.Run(async () =>
            {
                while (_l.IsListening)
                {
                    HttpListenerContext ctx;
                    try { ctx = await _l.GetContextAsync(); } catch (Exception) { return; }
                    int n = Interlocked.Increment(ref _requests);
                    if (n <= failures)
                    {
                        ctx.Response.StatusCode = (int)status;
                        if (retryAfter is not null) ctx.Response.AddHeader("Retry-After", retryAfter);
                        ctx.Response.Close();
                        continue;
                    }
                    using var req = new HttpRequestMessage(new HttpMethod(ctx.Request.HttpMethod), $"http://127.0.0.1:{target}{ctx.Request.RawUrl}");
                    foreach (var a in ctx.Request.AcceptTypes ?? []) req.Headers.TryAddWithoutValidation("Accept", a);
                    using var resp = await _http.SendAsync(req);
                    ctx.Response.StatusCode = (int)resp.StatusCode;
                    var body = await resp.Content.ReadAsByteArrayAsync();
                    if (ctx.Request.HttpMethod != "HEAD") await ctx.Response.OutputStream.WriteAsync(body);
                    ctx.Response.Close();
                }
            });
        }

        public void Dispose() { _l.Close(); _http.Dispose(); }
    }

    /// <summary>Stand-in for hub.docker.com's repository API (no Internet here): two pages of tags.</summary>
    private sealed class HubApi : IDisposable
    {
        private readonly HttpListener _l = new();
        public int Port { get; } = RedisServer.FreePort();
        public string? LastAuthorization { get; private set; }

        public HubApi()
        {
            _l.Prefixes.Add($"http://127.0.0.1:{Port}/");
            _l.Start();
            _ = Task.Run(async () =>
            {
                while (_l.IsListening)
                {
                    HttpListenerContext ctx;
                    try { ctx = await _l.GetContextAsync(); } catch (Exception) { return; }
                    LastAuthorization = ctx.Request.Headers["Authorization"];
                    var path = ctx.Request.RawUrl ?? "";
                    string body = path.Contains("page=2")
                        ? """{"count":3,"next":null,"results":[{"name":"latest"}]}"""
                        : path.StartsWith("/v2/repositories/mycompany/app1/tags", StringComparison.Ordinal)
                            ? $$"""{"count":3,"next":"http://127.0.0.1:{{Port}}/v2/repositories/mycompany/app1/tags?page=2&page_size=100","results":[{"name":"2.1.0"},{"name":"1.0.0"}]}"""
                            : """{"detail":"not found"}""";
                    ctx.Response.StatusCode = body.Contains("detail") ? 404 : 200;
                    await ctx.Response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(body));
                    ctx.Response.Close();
                }
            });
        }

        public void Dispose() => _l.Close();
    }
}
