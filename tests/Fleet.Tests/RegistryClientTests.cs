using System.Net;
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
}

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
