namespace Fleet.Core.Registry;

public sealed record RegistryCredentials(string Username, string Password);

public sealed record RegistryOptions
{
    /// <summary>Credentials by registry name as written in image references ("docker.io", "127.0.0.1:5000").</summary>
    public IReadOnlyDictionary<string, RegistryCredentials> Credentials { get; init; } = new Dictionary<string, RegistryCredentials>();
    /// <summary>Registries spoken to over plain HTTP. Loopback registries always are (as the engine does).</summary>
    public IReadOnlySet<string> PlainHttp { get; init; } = new HashSet<string>();
    public TimeSpan PositiveTtl { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan NegativeTtl { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan TagListTtl { get; init; } = TimeSpan.FromMinutes(1);
    public int MaxAttempts { get; init; } = 4;
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Longest Retry-After honoured for a 429; a longer one fails the lookup (and is retried later).</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Docker Hub's repository API (seed 000's listing), used as a fallback for tag listing.</summary>
    public Uri DockerHubApi { get; init; } = new("https://hub.docker.com");
    /// <summary>Distribution API endpoint that serves docker.io images.</summary>
    public Uri DockerHubRegistryApi { get; init; } = new("https://registry-1.docker.io");
}
