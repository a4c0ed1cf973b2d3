using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Fleet.Core.Wire;

/// <summary>How produced payloads escape text. Receivers parse semantically either way.</summary>
public enum WireStyle
{
    /// <summary>commlib 0.13.1 (ujson defaults): <c>/</c> as <c>\/</c>, non-ASCII as lowercase <c>\uXXXX</c>; byte-identical output.</summary>
    Ujson,
    /// <summary>orjson-like: raw UTF-8, unescaped slashes.</summary>
    Plain,
}

/// <summary>A payload that could not be accepted; the message says what and why (pydantic-like rules).</summary>
public sealed class WireFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Encodes and decodes commlib payloads (fleet-wire.md sections 3-5).</summary>
public static class WireCodec
{
    private static readonly JsonSerializerOptions WriteOptions = new(WireJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };
    private static readonly WireJsonContext Ctx = new(WriteOptions);

    /// <summary>Nanoseconds since the Unix epoch (commlib 0.12+ header timestamps).</summary>
    public static long NowNanoseconds(TimeProvider? clock = null) =>
        ((clock ?? TimeProvider.System).GetUtcNow().UtcDateTime - DateTime.UnixEpoch).Ticks * 100;

    public static byte[] EncodeVersion(VersionMessage msg, WireStyle style = WireStyle.Ujson) =>
        Finish(JsonSerializer.SerializeToUtf8Bytes(msg, Ctx.VersionMessage), style);

    public static byte[] EncodeRequest(string replyTo, long timestampNs, DockerCommandRequest data, WireStyle style = WireStyle.Ujson) =>
        EncodeEnvelope(new RpcHeader(replyTo, timestampNs), data, Ctx.DockerCommandRequest, style);

    public static byte[] EncodeReply(long timestampNs, DockerCommandResponse? data, WireStyle style = WireStyle.Ujson)
    {
        if (data is not null) return EncodeEnvelope(new RpcHeader("", timestampNs), data, Ctx.DockerCommandResponse, style);
        // commlib's answer to an invalid request: "data":{}
        var buf = new ArrayBufferWriter<byte>(160);
        using (var w = new Utf8JsonWriter(buf, new JsonWriterOptions { Encoder = WriteOptions.Encoder }))
        {
            w.WriteStartObject();
            w.WritePropertyName("header");
            JsonSerializer.Serialize(w, new RpcHeader("", timestampNs), Ctx.RpcHeader);
            w.WritePropertyName("data");
            w.WriteStartObject();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Finish(buf.WrittenSpan.ToArray(), style);
    }

    private static byte[] EncodeEnvelope<T>(RpcHeader header, T data, JsonTypeInfo<T> info, WireStyle style)
    {
        var buf = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buf, new JsonWriterOptions { Encoder = WriteOptions.Encoder }))
        {
            w.WriteStartObject();
            w.WritePropertyName("header");
            JsonSerializer.Serialize(w, header, Ctx.RpcHeader);
            w.WritePropertyName("data");
            JsonSerializer.Serialize(w, data, info);
            w.WriteEndObject();
        }
        return Finish(buf.WrittenSpan.ToArray(), style);
    }

    public static byte[] EncodeEvent(FleetEvent e) => JsonSerializer.SerializeToUtf8Bytes(e, Ctx.FleetEvent);

    public static FleetEvent DecodeEvent(byte[] b) => JsonSerializer.Deserialize(b, Ctx.FleetEvent) ?? throw new JsonException("null event");

    public static byte[] EncodeHeartbeat(long tsNs) => JsonSerializer.SerializeToUtf8Bytes(new Heartbeat(tsNs), Ctx.Heartbeat);

    public static VersionMessage DecodeVersion(ReadOnlySpan<byte> payload)
    {
        var json = Inflate(payload);
        try
        {
            var msg = JsonSerializer.Deserialize(json, Ctx.VersionMessage)
                ?? throw new WireFormatException("version message is JSON null; expected an object with appname, version_number, dependencies");
            if (msg.Appname.Length == 0) throw new WireFormatException("version message has an empty appname");
            return msg;
        }
        catch (JsonException e)
        {
            throw new WireFormatException($"version message rejected ({e.Message}); expected {{\"appname\":str,\"version_number\":str,\"dependencies\":{{}}}}", e);
        }
    }

    public static RpcEnvelopeIn DecodeEnvelope(ReadOnlySpan<byte> payload)
    {
        var json = Inflate(payload);
        try
        {
            var env = JsonSerializer.Deserialize(json, Ctx.RpcEnvelopeIn)
                ?? throw new WireFormatException("RPC envelope is JSON null");
            return env;
        }
        catch (JsonException e)
        {
            throw new WireFormatException($"RPC envelope rejected ({e.Message}); expected {{\"header\":{{\"reply_to\":...}},\"data\":{{...}}}}", e);
        }
    }

    public static DockerCommandRequest DecodeRequestData(JsonElement data)
    {
        try
        {
            return data.Deserialize(Ctx.DockerCommandRequest) ?? throw new WireFormatException("request data is null");
        }
        catch (JsonException e)
        {
            throw new WireFormatException($"request data rejected ({e.Message}); expected command (str), directory (str), new_version (str or null)", e);
        }
    }

    /// <summary>Reads a reply's data. An empty object (commlib's answer to a failed handler) or a malformed one
    /// yields a failure response explaining it.</summary>
    public static DockerCommandResponse DecodeResponseData(JsonElement data)
    {
        if (data.ValueKind == JsonValueKind.Object && !data.EnumerateObject().Any())
            return new DockerCommandResponse(false, "the service answered with empty data (its handler failed or the request was invalid)");
        try
        {
            return data.Deserialize(Ctx.DockerCommandResponse) ?? new DockerCommandResponse(false, "the service answered with null data");
        }
        catch (JsonException e)
        {
            return new DockerCommandResponse(false, $"the service's reply could not be read: {e.Message}");
        }
    }

    /// <summary>Accepts a zlib stream (first byte 0x78) as a compression-enabled commlib peer sends it.</summary>
    private static ReadOnlySpan<byte> Inflate(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > 0 && payload[0] == 0x78)
        {
            try
            {
                using var input = new MemoryStream(payload.ToArray());
                using var z = new ZLibStream(input, CompressionMode.Decompress);
                using var output = new MemoryStream();
                z.CopyTo(output);
                return output.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new WireFormatException("payload starts like a zlib stream (0x78) but does not inflate", e);
            }
        }
        return payload;
    }

    private static byte[] Finish(byte[] json, WireStyle style) => style == WireStyle.Ujson ? ToUjsonEscaping(json) : json;

    /// <summary>Rewrites compact STJ output into ujson's default escaping: <c>\/</c>, ASCII-only with lowercase
    /// <c>\uXXXX</c> (surrogate pairs above U+FFFF). Outside strings our JSON has no '/' or non-ASCII bytes.</summary>
    public static byte[] ToUjsonEscaping(ReadOnlySpan<byte> json)
    {
        var sb = new StringBuilder(json.Length + 16);
        var text = Encoding.UTF8.GetString(json);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '/') sb.Append("\\/");
            else if (c == '\\' && i + 5 < text.Length && text[i + 1] == 'u')
            {
                sb.Append("\\u").Append(text.AsSpan(i + 2, 4).ToString().ToLowerInvariant());
                i += 5;
            }
            else if (c == '\\' && i + 1 < text.Length)
            {
                sb.Append(c).Append(text[i + 1]);
                i++;
            }
            else if (c > 0x7E) sb.Append("\\u").Append(((int)c).ToString("x4"));
            else sb.Append(c);
        }
        return Encoding.ASCII.GetBytes(sb.ToString());
    }
}
