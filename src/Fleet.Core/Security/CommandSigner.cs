using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Fleet.Core.Wire;

namespace Fleet.Core.Security;

/// <summary>HMAC-SHA256 signatures on RPC commands (the seed lists "RPC: no authentication" as a risk).
/// The signature covers the RPC name (so a command for one device cannot be replayed on another), the
/// command's fields, an expiry and a single-use nonce. Python peers ignore the extra fields.</summary>
public sealed class CommandSigner(byte[] key, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;

    public static byte[] KeyFromText(string text, string source)
    {
        var t = text.Trim();
        if (t.Length < 16) throw new FormatException($"the HMAC key from {source} is shorter than 16 characters; use e.g. `openssl rand -hex 32`");
        return Encoding.UTF8.GetBytes(t);
    }

    /// <summary>The signed text; the idempotency key and the digest, when present, are covered too (appended, so that
    /// commands without them keep their v1 text).</summary>
    public static string Canonical(string rpcName, DockerCommandRequest r, long expires, string nonce) =>
        string.Join('\n', "fleet-cmd-v1", rpcName, r.Command, r.Directory, r.NewVersion ?? "", r.Service ?? "",
            r.Wait is null ? "" : r.Wait.Value ? "1" : "0", expires.ToString(System.Globalization.CultureInfo.InvariantCulture), nonce)
        + (r.IdempotencyKey is null ? "" : "\nkey:" + r.IdempotencyKey)
        + (r.Digest is null ? "" : "\ndigest:" + r.Digest);

    public DockerCommandRequest Sign(string rpcName, DockerCommandRequest r, TimeSpan ttl)
    {
        var expires = _clock.GetUtcNow().ToUnixTimeSeconds() + (long)Math.Ceiling(ttl.TotalSeconds);
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var sig = Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(Canonical(rpcName, r, expires, nonce))));
        return r with { Expires = expires, Nonce = nonce, Signature = sig };
    }

    public string ComputeSignature(string rpcName, DockerCommandRequest r, long expires, string nonce) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(Canonical(rpcName, r, expires, nonce))));
}

/// <summary>Agent side: refuses unsigned, badly signed, expired, too-far-future and replayed commands.</summary>
public sealed class CommandVerifier(byte[] key, string rpcName, TimeSpan maxTtl, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, long> _seen = new();
    private readonly CommandSigner _signer = new(key, clock);
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(30);

    /// <summary>Null when the command is acceptable, else the reason it is refused.</summary>
    public string? Check(DockerCommandRequest r)
    {
        if (r.Signature is null || r.Expires is null || r.Nonce is null)
            return "unsigned command refused: this agent requires an HMAC signature (configure the same shared key on the updater)";
        var now = _clock.GetUtcNow().ToUnixTimeSeconds();
        if (r.Expires.Value < now) return $"expired command refused (expired {now - r.Expires.Value} s ago; check the clocks or the command TTL)";
        if (r.Expires.Value > now + (long)(maxTtl + Skew).TotalSeconds) return "command refused: its expiry is further ahead than this agent's max command TTL";
        var expected = _signer.ComputeSignature(rpcName, r with { Expires = null, Nonce = null, Signature = null }, r.Expires.Value, r.Nonce);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(r.Signature)))
            return "command refused: bad signature (wrong key, wrong RPC name, or the command was altered)";
        foreach (var kv in _seen) if (kv.Value < now) _seen.TryRemove(kv);
        if (!_seen.TryAdd(r.Nonce, r.Expires.Value)) return "replayed command refused (this nonce was already used)";
        return null;
    }
}
