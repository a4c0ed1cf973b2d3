using System.Security.Cryptography;

namespace AppModule.Artifacts;

/// <summary>
/// Signs the manifest like mender-artifact: base64 (standard) of RSA PKCS#1 v1.5 SHA-256, or of
/// ECDSA P-256 SHA-256 as raw r||s (64 bytes, not DER).
/// </summary>
public sealed class ArtifactSigner : IDisposable
{
    private readonly RSA? _rsa;
    private readonly ECDsa? _ec;

    private ArtifactSigner(RSA? rsa, ECDsa? ec) { _rsa = rsa; _ec = ec; }

    public string Algorithm => _rsa is not null ? $"RSA-{_rsa.KeySize}" : "ECDSA-P256";

    /// <summary>Loads a private key: PKCS#1 (BEGIN RSA PRIVATE KEY), SEC1 (BEGIN EC PRIVATE KEY) or PKCS#8 (BEGIN PRIVATE KEY).</summary>
    /// <param name="source">names the key in errors (usually its path).</param>
    public static ArtifactSigner FromPem(string pem, string source)
    {
        if (pem.Contains("ENCRYPTED", StringComparison.Ordinal))
            throw new ArtifactSignatureException($"signing key {source} is encrypted: decrypt it first (openssl rsa|ec -in {source} -out plain.pem)");
        if (pem.Contains("BEGIN RSA PRIVATE KEY", StringComparison.Ordinal) || IsPkcs8Of(pem, "RSA"))
        {
            var rsa = RSA.Create();
            try { rsa.ImportFromPem(pem); }
            catch (CryptographicException e) { rsa.Dispose(); throw Bad(source, e); }
            return new ArtifactSigner(rsa, null);
        }
        if (pem.Contains("BEGIN EC PRIVATE KEY", StringComparison.Ordinal) || IsPkcs8Of(pem, "EC"))
        {
            var ec = ECDsa.Create();
            try { ec.ImportFromPem(pem); }
            catch (CryptographicException e) { ec.Dispose(); throw Bad(source, e); }
            if (ec.KeySize != 256)
            {
                ec.Dispose();
                throw new ArtifactSignatureException($"signing key {source} is an EC key of {ec.KeySize} bits: Mender verifies only P-256 (openssl ecparam -genkey -name prime256v1 -noout)");
            }
            return new ArtifactSigner(null, ec);
        }
        throw new ArtifactSignatureException($"signing key {source} holds no private key PEM block: use a PKCS#1 'BEGIN RSA PRIVATE KEY' or SEC1 'BEGIN EC PRIVATE KEY' file");
    }

    private static bool IsPkcs8Of(string pem, string kind)
    {
        if (!pem.Contains("BEGIN PRIVATE KEY", StringComparison.Ordinal)) return false;
        try
        {
            if (kind == "RSA") { using var r = RSA.Create(); r.ImportFromPem(pem); return true; }
            using var e = ECDsa.Create(); e.ImportFromPem(pem); return true;
        }
        catch (CryptographicException) { return false; }
        catch (ArgumentException) { return false; }
    }

    private static ArtifactSignatureException Bad(string source, Exception e) =>
        new($"signing key {source} cannot be read ({AppModule.Core.RuntimeMessages.For(e)}): check that it is an unencrypted PEM private key");

    /// <summary>The content of manifest.sig for the given manifest bytes.</summary>
    public byte[] Sign(ReadOnlySpan<byte> manifest)
    {
        byte[] sig = _rsa is not null
            ? _rsa.SignData(manifest.ToArray(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : _ec!.SignData(manifest.ToArray(), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return System.Text.Encoding.ASCII.GetBytes(Convert.ToBase64String(sig));
    }

    public void Dispose()
    {
        _rsa?.Dispose();
        _ec?.Dispose();
    }
}

/// <summary>Verifies manifest.sig with a public key (SPKI "BEGIN PUBLIC KEY", or PKCS#1 "BEGIN RSA PUBLIC KEY").</summary>
public sealed class ArtifactVerifier : IDisposable
{
    private readonly RSA? _rsa;
    private readonly ECDsa? _ec;
    private ArtifactVerifier(RSA? rsa, ECDsa? ec) { _rsa = rsa; _ec = ec; }

    public static ArtifactVerifier FromPem(string pem, string source)
    {
        try
        {
            var rsa = RSA.Create();
            try { rsa.ImportFromPem(pem); return new ArtifactVerifier(rsa, null); }
            catch (CryptographicException) { rsa.Dispose(); }
            catch (ArgumentException) { rsa.Dispose(); }
            var ec = ECDsa.Create();
            ec.ImportFromPem(pem);
            return new ArtifactVerifier(null, ec);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new ArtifactSignatureException($"verification key {source} cannot be read ({AppModule.Core.RuntimeMessages.For(e)}): give a PEM public key (openssl rsa|ec -in key.pem -pubout)");
        }
    }

    public void Verify(ReadOnlySpan<byte> manifest, ReadOnlySpan<byte> signatureFile)
    {
        byte[] sig;
        try { sig = Convert.FromBase64String(System.Text.Encoding.ASCII.GetString(signatureFile).Trim()); }
        catch (FormatException) { throw new ArtifactSignatureException("manifest.sig is not base64: the artifact is damaged or was not signed by mender-artifact/app-gen"); }
        bool ok;
        if (_rsa is not null)
        {
            ok = _rsa.VerifyData(manifest.ToArray(), sig, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }
        else
        {
            ok = sig.Length == 64
                ? _ec!.VerifyData(manifest.ToArray(), sig, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
                : _ec!.VerifyData(manifest.ToArray(), sig, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        if (!ok) throw new ArtifactSignatureException("manifest.sig does not verify with the given key: the artifact was signed with another key or was modified");
    }

    public void Dispose()
    {
        _rsa?.Dispose();
        _ec?.Dispose();
    }
}
