using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fleet.Core.Wire;

/// <summary>The design's VersionMessage: published by each app on <c>version_channel</c>.
/// All three fields are required; <c>dependencies</c> must be an object.</summary>
public sealed record VersionMessage(
    [property: JsonPropertyName("appname")] string Appname,
    [property: JsonPropertyName("version_number")] string VersionNumber,
    [property: JsonPropertyName("dependencies")] Dictionary<string, JsonElement> Dependencies);

/// <summary>The design's DockerCommandRequest (the <c>data</c> of an RPC request). The seed's three
/// fields come first, in commlib's order; the optional extras (agent commands beyond the seed and the
/// HMAC signature) are omitted when null, and ignored by Python peers (pydantic drops extra fields).</summary>
public sealed record DockerCommandRequest(
    [property: JsonPropertyName("command")] string Command,
    [property: JsonPropertyName("directory")] string Directory,
    [property: JsonPropertyName("new_version")] string? NewVersion = null)
{
    /// <summary>Optional: one compose service (restart/update); null means all.</summary>
    [JsonPropertyName("service"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Service { get; init; }

    /// <summary>Optional: wait for health after restart/update (default true).</summary>
    [JsonPropertyName("wait"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Wait { get; init; }

    /// <summary>Unique per (app, target, attempt): an agent that sees it twice answers from its cache instead of
    /// running the command again (a re-send after an updater died).</summary>
    [JsonPropertyName("idempotency_key"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? IdempotencyKey { get; init; }

    /// <summary>Optional, with <c>update_version</c>: the manifest digest (<c>sha256:...</c>) of <c>new_version</c> for the
    /// device's platform, as the updater checked it in the registry. The agent pulls exactly that (<c>image:tag@digest</c>)
    /// and refuses an image the engine does not record under it.</summary>
    [JsonPropertyName("digest"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Digest { get; init; }

    /// <summary>Signature expiry, Unix seconds.</summary>
    [JsonPropertyName("expires"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Expires { get; init; }

    /// <summary>Single-use nonce (32 hex) for replay protection.</summary>
    [JsonPropertyName("nonce"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Nonce { get; init; }

    /// <summary>HMAC-SHA256 of the canonical command text, lowercase hex.</summary>
    [JsonPropertyName("signature"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Signature { get; init; }
}

/// <summary>One step of a fleet command on a device, published on the agent's events channel (<c>fleet_events</c>)
/// for the updater's convergence view: <c>started</c>, the engine's journal steps (<c>prepared</c>, <c>loading</c>,
/// <c>rolling-out</c>, <c>rolled-out</c>, <c>installed</c>, <c>committed</c>, <c>rolled-back</c>, <c>collected</c>, ...),
/// then <c>succeeded</c> or <c>failed</c> with the reason.</summary>
public sealed record FleetEvent(
    [property: JsonPropertyName("rpc_name")] string RpcName,
    [property: JsonPropertyName("app")] string App,
    [property: JsonPropertyName("command")] string Command,
    [property: JsonPropertyName("command_id")] string? CommandId,
    [property: JsonPropertyName("event")] string Event,
    [property: JsonPropertyName("detail")] string Detail,
    [property: JsonPropertyName("time_unix_ms")] long TimeUnixMs);

/// <summary>The design's DockerCommandResponse (the <c>data</c> of an RPC reply).</summary>
public sealed record DockerCommandResponse(
    [property: JsonPropertyName("success")] bool Success,
    [property: JsonPropertyName("message")] string Message);

/// <summary>commlib's RPC header. Only <c>reply_to</c> is read by anyone; the rest is informative.</summary>
public sealed record RpcHeader(
    [property: JsonPropertyName("reply_to")] string ReplyTo,
    [property: JsonPropertyName("timestamp")] long Timestamp,
    [property: JsonPropertyName("content_type")] string ContentType = "json",
    [property: JsonPropertyName("encoding")] string Encoding = "utf8",
    [property: JsonPropertyName("agent")] string Agent = "commlib");

/// <summary>Lenient header as read from the wire: every field optional.</summary>
public sealed record RpcHeaderIn(
    [property: JsonPropertyName("reply_to")] string? ReplyTo = null,
    [property: JsonPropertyName("timestamp")] JsonElement? Timestamp = null);

public sealed record RpcEnvelopeIn(
    [property: JsonPropertyName("header")] RpcHeaderIn? Header,
    [property: JsonPropertyName("data")] JsonElement Data);

/// <summary>Node heartbeat payload, <c>{"ts":ns}</c>.</summary>
public sealed record Heartbeat([property: JsonPropertyName("ts")] long Ts);

[JsonSourceGenerationOptions(
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true,
    PropertyNameCaseInsensitive = false)]
[JsonSerializable(typeof(FleetEvent))]
[JsonSerializable(typeof(VersionMessage))]
[JsonSerializable(typeof(DockerCommandRequest))]
[JsonSerializable(typeof(DockerCommandResponse))]
[JsonSerializable(typeof(RpcHeader))]
[JsonSerializable(typeof(RpcEnvelopeIn))]
[JsonSerializable(typeof(Heartbeat))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class WireJsonContext : JsonSerializerContext;
