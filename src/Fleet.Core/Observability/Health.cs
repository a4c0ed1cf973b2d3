using System.Text.Json.Serialization;

namespace Fleet.Core.Observability;

/// <summary>The updater's health, as <c>GET /healthz</c> answers it: <c>status</c> is <c>ok</c> (HTTP 200) or
/// <c>unhealthy</c> (503) with the <c>reason</c>.</summary>
public sealed record UpdaterHealth(
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("redis")] RedisHealth Redis,
    [property: JsonPropertyName("consumer")] ConsumerHealth? Consumer);

/// <summary>Whether Redis answered a PING, and how fast.</summary>
public sealed record RedisHealth(
    [property: JsonPropertyName("reachable")] bool Reachable,
    [property: JsonPropertyName("latency_ms")] double? LatencyMs,
    [property: JsonPropertyName("error")] string? Error);

/// <summary>The report stream's consumer group: <c>lag</c> is the reports no updater has read yet (Redis 7+;
/// null when Redis cannot tell), <c>pending</c> those read and not yet decided.</summary>
public sealed record ConsumerHealth(
    [property: JsonPropertyName("consumer")] string Consumer,
    [property: JsonPropertyName("stream")] string Stream,
    [property: JsonPropertyName("group")] string Group,
    [property: JsonPropertyName("lag")] long? Lag,
    [property: JsonPropertyName("pending")] long Pending,
    [property: JsonPropertyName("consumers")] long Consumers,
    [property: JsonPropertyName("stream_length")] long StreamLength,
    [property: JsonPropertyName("max_lag")] long? MaxLag);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(UpdaterHealth))]
public sealed partial class HealthJsonContext : JsonSerializerContext;
