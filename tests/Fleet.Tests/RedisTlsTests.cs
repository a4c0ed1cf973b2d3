using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Fleet.Core.Bus;
using TestSupport;

namespace Fleet.Tests;

/// <summary>TLS to a real redis-server (built with OpenSSL) whose certificate comes from a private CA.</summary>
public sealed class RedisTlsTests
{
    [SkippableFact]
    public async Task A_TLS_connection_trusts_a_private_CA_file_and_refuses_without_it()
    {
        using var tmp = new TempDir("fleet-tls");
        using var caKey = RSA.Create(2048);
        var caReq = new CertificateRequest("CN=fleet-test-ca", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(2));
        using var key = RSA.Create(2048);
        var req = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = req.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);
        var caPem = tmp.Write("ca.pem", ca.ExportCertificatePem());
        var certPem = tmp.Write("server.pem", cert.ExportCertificatePem());
        var keyPem = tmp.Write("server.key", key.ExportPkcs8PrivateKeyPem());
        int tlsPort = RedisServer.FreePort();
        using var redis = RedisServer.Start("--tls-port", tlsPort.ToString(), "--tls-cert-file", certPem, "--tls-key-file", keyPem,
            "--tls-ca-cert-file", caPem, "--tls-auth-clients", "no");
        for (int i = 0; i < 100 && !Listening(tlsPort); i++) await Task.Delay(50);
        var ct = new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;
        var o = new RedisOptions { Host = "127.0.0.1", Port = tlsPort, Tls = true, TlsCaFile = caPem, TlsServerName = "localhost", ConnectTimeout = TimeSpan.FromSeconds(3) };
        await using (var bus = await RedisFleetBus.ConnectAsync(o, ct))
        {
            await bus.ListPushAsync("tls", [42], ct);
            Assert.Equal([42], await bus.ListPopAsync("tls", ct));
        }
        await Assert.ThrowsAsync<FleetBusException>(() => RedisFleetBus.ConnectAsync(o with { TlsCaFile = null }, ct));
    }

    private static bool Listening(int port)
    {
        try { using var c = new System.Net.Sockets.TcpClient(); c.Connect(IPAddress.Loopback, port); return true; }
        catch (System.Net.Sockets.SocketException) { return false; }
    }
}
