using Fleet.Core.Agent;
using Fleet.Core.Security;
using Fleet.Core.Wire;

namespace Fleet.Tests;

public sealed class CommandSigningTests
{
    private static readonly byte[] Key = CommandSigner.KeyFromText("an-agent-shared-key-0123456789", "test");
    private static readonly DockerCommandRequest Cmd = new("update_version", "/opt/app1", "2.1.0");

    [Fact]
    public void A_signed_command_passes_once_and_is_refused_when_replayed()
    {
        var v = new CommandVerifier(Key, "svc1", TimeSpan.FromMinutes(1));
        var signed = new CommandSigner(Key).Sign("svc1", Cmd, TimeSpan.FromSeconds(30));
        Assert.Null(v.Check(signed));
        Assert.Contains("replayed", v.Check(signed));
    }

    [Fact]
    public void Unsigned_expired_altered_and_foreign_commands_are_refused_with_the_reason()
    {
        var v = new CommandVerifier(Key, "svc1", TimeSpan.FromMinutes(1));
        Assert.Contains("unsigned", v.Check(Cmd));
        var signer = new CommandSigner(Key);
        Assert.Contains("expired", v.Check(signer.Sign("svc1", Cmd, TimeSpan.FromSeconds(-120))));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc1", Cmd, TimeSpan.FromSeconds(30)) with { NewVersion = "6.6.6" }));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc2", Cmd, TimeSpan.FromSeconds(30))));
        Assert.Contains("bad signature", v.Check(new CommandSigner(CommandSigner.KeyFromText("another-key-of-enough-length", "t")).Sign("svc1", Cmd, TimeSpan.FromSeconds(30))));
        Assert.Contains("further ahead", v.Check(signer.Sign("svc1", Cmd, TimeSpan.FromHours(2))));
    }

    [Fact]
    public void The_idempotency_key_is_covered_by_the_signature()
    {
        var v = new CommandVerifier(Key, "svc1", TimeSpan.FromMinutes(1));
        var signer = new CommandSigner(Key);
        var keyed = Cmd with { IdempotencyKey = "app1:2.1.0:1" };
        Assert.Null(v.Check(signer.Sign("svc1", keyed, TimeSpan.FromSeconds(30))));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc1", keyed, TimeSpan.FromSeconds(30)) with { IdempotencyKey = "app1:2.1.0:2" }));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc1", keyed, TimeSpan.FromSeconds(30)) with { IdempotencyKey = null }));
    }

    [Fact]
    public void The_manifest_digest_is_covered_by_the_signature()
    {
        var v = new CommandVerifier(Key, "svc1", TimeSpan.FromMinutes(1));
        var signer = new CommandSigner(Key);
        var pinned = Cmd with { Digest = "sha256:" + new string('a', 64) };
        Assert.Null(v.Check(signer.Sign("svc1", pinned, TimeSpan.FromSeconds(30))));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc1", pinned, TimeSpan.FromSeconds(30)) with { Digest = "sha256:" + new string('b', 64) }));
        Assert.Contains("bad signature", v.Check(signer.Sign("svc1", pinned, TimeSpan.FromSeconds(30)) with { Digest = null }));
    }

    [Fact]
    public void The_agent_remembers_the_answers_to_its_last_keys_and_forgets_the_oldest_first()
    {
        var cache = new IdempotencyCache(capacity: 2);
        cache.Add("a", new DockerCommandResponse(true, "A"));
        cache.Add("b", new DockerCommandResponse(false, "B"));
        cache.Add("c", new DockerCommandResponse(true, "C"));
        Assert.False(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("b", out var b));
        Assert.Equal(new DockerCommandResponse(false, "B"), b);
        Assert.True(cache.TryGet("c", out _));
    }

    [Fact]
    public void A_short_key_is_refused_with_advice() =>
        Assert.Contains("openssl rand", Assert.Throws<FormatException>(() => CommandSigner.KeyFromText("short", "FLEET_HMAC_KEY")).Message);
}
