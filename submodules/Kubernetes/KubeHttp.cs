using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Sends requests to the API server of a <see cref="KubeConnection"/>: TLS as the kubeconfig says (its CA only, or
/// no verification when it says insecure-skip-tls-verify; tls-server-name; the client certificate) and each
/// request's credentials (token, token file read again every minute, basic auth, an exec plugin's token or
/// certificate, run again when it expires). The HttpClient is made on the first request.
/// </summary>
public sealed class KubeHttp(KubeConnection connection, TimeSpan timeout) : IDisposable
{
    private static readonly TimeSpan TokenFileReload = TimeSpan.FromMinutes(1);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private HttpClient? _client;
    private (string Token, DateTime ReadAt)? _fileToken;
    private ExecCredential? _exec;

    /// <summary>What an exec plugin printed: a token or a client certificate, and until when it holds.</summary>
    private sealed record ExecCredential(string? Token, string? CertificatePem, string? KeyPem, DateTimeOffset? Expires);

    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        HttpClient client;
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (connection.Exec is not null && (_exec is null || _exec.Expires <= DateTimeOffset.UtcNow.AddSeconds(10)))
            {
                var renewed = await RunExecAsync(connection.Exec, ct).ConfigureAwait(false);
                if (_exec is not null && (renewed.CertificatePem != _exec.CertificatePem || renewed.KeyPem != _exec.KeyPem))
                {
                    _client?.Dispose();
                    _client = null;
                }

                _exec = renewed;
            }

            client = _client ??= CreateClient();
            if (Authorization() is { } authorization)
            {
                request.Headers.Authorization = authorization;
            }
        }
        finally
        {
            _gate.Release();
        }

        return await client.SendAsync(request, ct).ConfigureAwait(false);
    }

    private AuthenticationHeaderValue? Authorization()
    {
        if (connection.TokenFile is { } file)
        {
            if (_fileToken is not { } cached || DateTime.UtcNow - cached.ReadAt > TokenFileReload)
            {
                try
                {
                    _fileToken = (File.ReadAllText(file).Trim(), DateTime.UtcNow);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new SubModuleFailure($"cannot read the token file {file} ({connection.Source}): {e.Message}; check that it exists and is readable");
                }
            }

            return new AuthenticationHeaderValue("Bearer", _fileToken.Value.Token);
        }

        if ((_exec?.Token ?? connection.Token) is { } token)
        {
            return new AuthenticationHeaderValue("Bearer", token);
        }

        if (connection.Username is { } user)
        {
            return new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{connection.Password}")));
        }

        return null;
    }

    private HttpClient CreateClient()
    {
        var ssl = new SslClientAuthenticationOptions();
        var insecure = connection.InsecureSkipTlsVerify;
        var ca = !insecure && connection.CertificateAuthorityPem is { } pem ? Certificates(pem, "certificate-authority") : null;
        var serverName = connection.TlsServerName;
        ssl.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => insecure || Trusted(certificate as X509Certificate2, chain, errors, ca, serverName);

        var certPem = _exec?.CertificatePem ?? connection.ClientCertificatePem;
        var keyPem = _exec?.KeyPem ?? connection.ClientKeyPem;
        if (certPem is not null && keyPem is not null)
        {
            ssl.ClientCertificateContext = ClientCertificate(certPem, keyPem);
        }

        var handler = new SocketsHttpHandler { SslOptions = ssl, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        var client = new HttpClient(handler) { Timeout = timeout };
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("mender-app-k8s", "1"));
        return client;
    }

    /// <summary>
    /// (Not called when the kubeconfig says insecure-skip-tls-verify: true, as kubectl then checks nothing.)
    /// With the kubeconfig's CA, the server's certificate must chain to it (and only to it, as kubectl checks) and name
    /// the host (or tls-server-name); without, the system's roots decide.
    /// </summary>
    private static bool Trusted(X509Certificate2? certificate, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection? ca, string? serverName)
    {
        if (certificate is null)
        {
            return false;
        }

        if (serverName is not null)
        {
            if (!certificate.MatchesHostname(serverName))
            {
                return false;
            }

            errors &= ~SslPolicyErrors.RemoteCertificateNameMismatch;
        }

        if (ca is null)
        {
            return errors == SslPolicyErrors.None;
        }

        if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(ca);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(certificate);
    }

    private X509Certificate2Collection Certificates(string pem, string what)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException e)
        {
            throw new ConfigException($"kubeconfig {connection.Source}: the {what} is not a PEM certificate: {e.Message}");
        }

        return certificates.Count > 0 ? certificates : throw new ConfigException($"kubeconfig {connection.Source}: the {what} holds no PEM certificate");
    }

    /// <summary>The client certificate (the first in the PEM) with its key, and the rest of the PEM as its chain.</summary>
    private SslStreamCertificateContext ClientCertificate(string certPem, string keyPem)
    {
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certPem, keyPem);
        }
        catch (CryptographicException e)
        {
            throw new ConfigException($"kubeconfig {connection.Source}: the client certificate and key cannot be used together: {e.Message}");
        }

        var chain = Certificates(certPem, "client-certificate");
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
        {
            if (c.Thumbprint != leaf.Thumbprint)
            {
                intermediates.Add(c);
            }
        }

        return SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
    }

    /// <summary>Runs the exec plugin as kubectl does (KUBERNETES_EXEC_INFO, not interactive) and reads its ExecCredential.</summary>
    private async Task<ExecCredential> RunExecAsync(KubeExec exec, CancellationToken ct)
    {
        var info = new JsonObject { ["apiVersion"] = exec.ApiVersion, ["kind"] = "ExecCredential", ["spec"] = new JsonObject { ["interactive"] = false } };
        var env = new Dictionary<string, string?>(exec.Environment, StringComparer.Ordinal) { ["KUBERNETES_EXEC_INFO"] = info.ToJsonString() };
        var spec = new ProcessSpec(exec.Command, exec.Arguments) { Environment = env, Timeout = timeout };
        ProcessResult result;
        try
        {
            result = await ChildProcess.RunAsync(spec, ct).ConfigureAwait(false);
        }
        catch (ChildProcessException e)
        {
            throw new SubModuleFailure($"the kubeconfig's exec credential plugin cannot run ({connection.Source}): {e.Message}; install it or fix the user's exec command");
        }

        if (!result.Succeeded)
        {
            throw new SubModuleFailure($"the kubeconfig's exec credential plugin {spec} failed ({(result.TimedOut ? "timed out" : $"exit {result.ExitCode}")}): {result.StderrTail.Trim()}; check the plugin's own configuration ({connection.Source})");
        }

        JsonObject? status;
        try
        {
            status = JsonNode.Parse(result.Stdout)?["status"] as JsonObject;
        }
        catch (JsonException e)
        {
            throw new SubModuleFailure($"the kubeconfig's exec credential plugin {spec} printed no ExecCredential JSON: {e.Message}");
        }

        string? Field(string name) => status?[name] is JsonValue v && v.ToString() is { Length: > 0 } s ? s : null;
        var credential = new ExecCredential(
            Field("token"),
            Field("clientCertificateData"),
            Field("clientKeyData"),
            Field("expirationTimestamp") is { } t && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var expires) ? expires : null);
        return credential.Token is not null || (credential.CertificatePem is not null && credential.KeyPem is not null)
            ? credential
            : throw new SubModuleFailure($"the kubeconfig's exec credential plugin {spec} gave neither a token nor a client certificate and key");
    }

    public void Dispose()
    {
        _client?.Dispose();
        _gate.Dispose();
    }
}
