using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Fleet.Core.Wire;

namespace Fleet.Tests;

/// <summary>The exact bytes captured from commlib 0.13.1 in fleet-wire.md section 7.</summary>
public sealed class WireGoldenTests
{
    public const string VersionReport = """{"appname":"app1","version_number":"2.0.0","dependencies":{"redis":"7.0"}}""";
    public const string UpdateRequest = """{"header":{"reply_to":"rpc-7c2853fc1b8a42e8b180a46da49c48ad","timestamp":1795423843800277621,"content_type":"json","encoding":"utf8","agent":"commlib"},"data":{"command":"update_version","directory":"\/opt\/app1","new_version":"2.1.0"}}""";
    public const string UpdateReply = """{"header":{"reply_to":"","timestamp":1795423844002183853,"content_type":"json","encoding":"utf8","agent":"commlib"},"data":{"success":true,"message":"Successfully updated to version 2.1.0"}}""";
    public const string DownRequest = """{"header":{"reply_to":"rpc-f69b11b622f44ff1ad5640fc616b7ef8","timestamp":1795423844500000000,"content_type":"json","encoding":"utf8","agent":"commlib"},"data":{"command":"down","directory":"\/opt\/app1","new_version":null}}""";
    public const string EmptyDataReply = """{"header":{"reply_to":"","timestamp":1795423844958300510,"content_type":"json","encoding":"utf8","agent":"commlib"},"data":{}}""";
    public const string RepublishedVersion = """{"appname":"app1","version_number":"2.1.0","dependencies":{}}""";

    private static byte[] B(string s) => Encoding.ASCII.GetBytes(s);

    [Fact]
    public void A_captured_version_report_is_accepted()
    {
        var m = WireCodec.DecodeVersion(B(VersionReport));
        Assert.Equal("app1", m.Appname);
        Assert.Equal("2.0.0", m.VersionNumber);
        Assert.Equal("7.0", m.Dependencies["redis"].GetString());
    }

    [Fact]
    public void A_version_report_is_produced_byte_for_byte_as_commlib_writes_it()
    {
        var deps = new Dictionary<string, JsonElement> { ["redis"] = JsonDocument.Parse("\"7.0\"").RootElement };
        Assert.Equal(VersionReport, Encoding.ASCII.GetString(WireCodec.EncodeVersion(new VersionMessage("app1", "2.0.0", deps))));
        Assert.Equal(RepublishedVersion, Encoding.ASCII.GetString(WireCodec.EncodeVersion(new VersionMessage("app1", "2.1.0", []))));
    }

    [Fact]
    public void An_update_request_is_produced_byte_for_byte_with_ujson_slash_escaping()
    {
        var bytes = WireCodec.EncodeRequest("rpc-7c2853fc1b8a42e8b180a46da49c48ad", 1795423843800277621,
            new DockerCommandRequest("update_version", "/opt/app1", "2.1.0"));
        Assert.Equal(UpdateRequest, Encoding.ASCII.GetString(bytes));
    }

    [Fact]
    public void A_down_request_always_writes_new_version_as_null()
    {
        var bytes = WireCodec.EncodeRequest("rpc-f69b11b622f44ff1ad5640fc616b7ef8", 1795423844500000000, new DockerCommandRequest("down", "/opt/app1"));
        Assert.Equal(DownRequest, Encoding.ASCII.GetString(bytes));
    }

    [Fact]
    public void Replies_are_produced_byte_for_byte_including_commlibs_empty_data_answer()
    {
        Assert.Equal(UpdateReply, Encoding.ASCII.GetString(WireCodec.EncodeReply(1795423844002183853, new DockerCommandResponse(true, "Successfully updated to version 2.1.0"))));
        Assert.Equal(EmptyDataReply, Encoding.ASCII.GetString(WireCodec.EncodeReply(1795423844958300510, null)));
    }

    [Fact]
    public void A_captured_request_is_accepted_with_escaped_or_plain_slashes()
    {
        foreach (var text in new[] { UpdateRequest, UpdateRequest.Replace("\\/", "/") })
        {
            var env = WireCodec.DecodeEnvelope(B(text));
            Assert.Equal("rpc-7c2853fc1b8a42e8b180a46da49c48ad", env.Header!.ReplyTo);
            var req = WireCodec.DecodeRequestData(env.Data);
            Assert.Equal(new DockerCommandRequest("update_version", "/opt/app1", "2.1.0"), req);
        }
        var down = WireCodec.DecodeRequestData(WireCodec.DecodeEnvelope(B(DownRequest)).Data);
        Assert.Null(down.NewVersion);
    }

    [Fact]
    public void A_captured_reply_and_the_empty_data_reply_are_read_as_success_and_failure()
    {
        var ok = WireCodec.DecodeResponseData(WireCodec.DecodeEnvelope(B(UpdateReply)).Data);
        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.1.0"), ok);
        var failed = WireCodec.DecodeResponseData(WireCodec.DecodeEnvelope(B(EmptyDataReply)).Data);
        Assert.False(failed.Success);
        Assert.Contains("empty data", failed.Message);
    }

    [Theory]
    [InlineData("""{"appname":"app1","version_number":2,"dependencies":{}}""", "number")]
    [InlineData("""{"appname":"app1","version_number":"2.0","dependencies":null}""", "null")]
    [InlineData("""{"appname":"app1","dependencies":{}}""", "missing")]
    [InlineData("""not json""", "not JSON")]
    public void Version_reports_that_pydantic_would_drop_are_rejected_with_a_reason(string payload, string why)
    {
        var e = Assert.Throws<WireFormatException>(() => WireCodec.DecodeVersion(B(payload)));
        Assert.Contains("version message rejected", e.Message);
        Assert.False(string.IsNullOrEmpty(why));
    }

    [Fact]
    public void Extra_fields_are_ignored_and_non_ascii_is_escaped_like_ujson()
    {
        var m = WireCodec.DecodeVersion(B("""{"appname":"caf\u00e9","version_number":"1.0","dependencies":{},"extra":1}"""));
        Assert.Equal("café", m.Appname);
        var back = Encoding.ASCII.GetString(WireCodec.EncodeVersion(m));
        Assert.Equal("""{"appname":"caf\u00e9","version_number":"1.0","dependencies":{}}""", back);
        Assert.Equal("""{"appname":"café","version_number":"1.0","dependencies":{}}""", Encoding.UTF8.GetString(WireCodec.EncodeVersion(m, WireStyle.Plain)));
    }

    [Fact]
    public void A_zlib_compressed_payload_from_a_compression_enabled_peer_is_inflated()
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(B(VersionReport));
        Assert.Equal(0x78, ms.ToArray()[0]);
        Assert.Equal("2.0.0", WireCodec.DecodeVersion(ms.ToArray()).VersionNumber);
    }
}
