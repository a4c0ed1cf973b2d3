namespace Fleet.Core.Bus;

/// <summary>Connection settings. <c>Db</c> only matters for RPC lists (pub/sub ignores databases).</summary>
public sealed record RedisOptions
{
    public string Host { get; init; } = "redis";
    public int Port { get; init; } = 6379;
    public int Db { get; init; }
    /// <summary>ACL user (Redis 6+); null for the default user.</summary>
    public string? User { get; init; }
    public string? Password { get; init; }
    public bool Tls { get; init; }
    /// <summary>PEM CA bundle to trust for TLS (e.g. a private CA); null uses the system store.</summary>
    public string? TlsCaFile { get; init; }
    /// <summary>Host name to check the server certificate against; null uses <see cref="Host"/>.</summary>
    public string? TlsServerName { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public override string ToString() => $"{(Tls ? "rediss" : "redis")}://{(User is null ? "" : User + "@")}{Host}:{Port}/{Db}";
}
