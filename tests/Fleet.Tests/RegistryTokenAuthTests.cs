using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Fleet.Core.Registry;
using TestSupport;

namespace Fleet.Tests;

/// <summary>Bearer token auth as Docker Hub does it, against a real docker-registry configured with
/// <c>auth: token</c>; the token server is a small RS256 JWT issuer in the test (its certificate is the
/// registry's rootcertbundle).</summary>
public sealed class RegistryTokenAuthTests : IDisposable
{
    private readonly TempDir _tmp = new("fleet-token");
    private readonly RSA _key = RSA.Create(2048);
    private readonly X509Certificate2 _cert;
    private readonly HttpListener _tokens = new();
    private readonly int _tokenPort = RedisServer.FreePort();
    private readonly RegistryServer _registry;
    private int _issued;
    private string? _lastScope;

    public RegistryTokenAuthTests()
    {
        var req = new CertificateRequest("CN=fleet-test-token-issuer", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        _cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var bundle = _tmp.Write("root.pem", _cert.ExportCertificatePem());
        _tokens.Prefixes.Add($"http://127.0.0.1:{_tokenPort}/");
        _tokens.Start();
        _ = Task.Run(ServeTokensAsync);
        _registry = RegistryServer.Start($"auth:\n  token:\n    realm: http://127.0.0.1:{_tokenPort}/token\n    service: fleet-test-registry\n    issuer: fleet-test-issuer\n    rootcertbundle: {bundle}\n");
        _registry.Push("appmodule/web:1.0", "locked/web:1.0", destCreds: "fleet:s3cret");
    }

    private async Task ServeTokensAsync()
    {
        while (_tokens.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _tokens.GetContextAsync(); } catch (Exception) { return; }
            var auth = ctx.Request.Headers["Authorization"];
            var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("fleet:s3cret"));
            if (auth != expected)
            {
                ctx.Response.StatusCode = 401;
                ctx.Response.Close();
                continue;
            }
            var scope = ctx.Request.QueryString["scope"] ?? "";
            _lastScope = scope;
            var parts = scope.Split(':');
            var body = JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["token"] = Jwt(parts.Length == 3 ? parts[1] : "", parts.Length == 3 ? parts[2].Split(',') : []),
                ["expires_in"] = 300,
            });
            Interlocked.Increment(ref _issued);
            ctx.Response.ContentType = "application/json";
            await ctx.Response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(body));
            ctx.Response.Close();
        }
    }

    private static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private string Jwt(string repo, string[] actions)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = JsonSerializer.Serialize(new Dictionary<string, object> { ["alg"] = "RS256", ["typ"] = "JWT", ["x5c"] = new[] { Convert.ToBase64String(_cert.RawData) } });
        var claims = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["iss"] = "fleet-test-issuer",
            ["sub"] = "fleet",
            ["aud"] = "fleet-test-registry",
            ["exp"] = now + 300,
            ["nbf"] = now - 10,
            ["iat"] = now,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["access"] = new[] { new Dictionary<string, object> { ["type"] = "repository", ["name"] = repo, ["actions"] = actions } },
        });
        var signingInput = B64(Encoding.UTF8.GetBytes(header)) + "." + B64(Encoding.UTF8.GetBytes(claims));
        var sig = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + B64(sig);
    }

    [SkippableFact]
    public async Task A_token_registry_is_answered_from_its_Bearer_challenge_and_the_token_is_reused_until_expiry()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;
        var img = ImageReference.Parse($"{_registry.Address}/locked/web");
        var c = new RegistryClient(new RegistryOptions { Credentials = new Dictionary<string, RegistryCredentials> { [_registry.Address] = new("fleet", "s3cret") } });
        var before = _issued;
        Assert.True(await c.TagExistsAsync(img, "1.0", ct));
        Assert.False(await c.TagExistsAsync(img, "9.0", ct));
        Assert.Equal(["1.0"], await c.ListTagsAsync(img, ct));
        Assert.Equal(1, _issued - before);
        Assert.Equal("repository:locked/web:pull", _lastScope);

        var wrong = new RegistryClient(new RegistryOptions { Credentials = new Dictionary<string, RegistryCredentials> { [_registry.Address] = new("fleet", "nope") } });
        var e = await Assert.ThrowsAsync<RegistryException>(() => wrong.TagExistsAsync(img, "1.0", ct));
        Assert.Contains("token server", e.Message);
        Assert.Contains("401", e.Message);
    }

    public void Dispose()
    {
        _registry.Dispose();
        _tokens.Close();
        _cert.Dispose();
        _key.Dispose();
        _tmp.Dispose();
    }
}
