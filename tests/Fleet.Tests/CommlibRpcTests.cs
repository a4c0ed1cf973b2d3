using System.Text;
using System.Text.RegularExpressions;
using Fleet.Core.Bus;
using Fleet.Core.Wire;
using TestSupport;

namespace Fleet.Tests;

/// <summary>RPC and pub/sub on a real redis-server, with the golden bytes of fleet-wire.md playing the Python peer.</summary>
public sealed partial class CommlibRpcTests(Deferred<RedisServer> deferred) : IClassFixture<Deferred<RedisServer>>, IAsyncLifetime
{
    private RedisServer redis => deferred.Value;

    private RedisFleetBus _bus = null!;
    private readonly CancellationTokenSource _cts = new(TimeSpan.FromMinutes(2));
    private readonly string _name = "docker_compose_service_" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync() =>
        _bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = redis.Host, Port = redis.Port }, _cts.Token);

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        await _bus.DisposeAsync();
    }

    [GeneratedRegex("\"timestamp\":[0-9]+")] private static partial Regex Timestamp();
    [GeneratedRegex("rpc-[0-9a-f]{32}")] private static partial Regex ReplyKey();

    private static string Normalise(string s) => Timestamp().Replace(ReplyKey().Replace(s, "rpc-X"), "\"timestamp\":0");

    private async Task<byte[]> PopAsync(string key)
    {
        for (int i = 0; i < 500; i++)
        {
            if (await _bus.ListPopAsync(key, _cts.Token) is { } v) return v;
            await Task.Delay(20, _cts.Token);
        }
        throw new TimeoutException($"nothing arrived on list {key}");
    }

    private (Task Run, CancellationTokenSource Stop) Serve(Func<DockerCommandRequest, Task<DockerCommandResponse>> handler)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
        var server = new CommlibRpcServer(_bus, _name, (r, _) => handler(r), _ => { });
        return (server.RunAsync(stop.Token), stop);
    }

    [SkippableFact]
    public async Task The_service_answers_commlibs_captured_request_with_the_captured_reply_bytes()
    {
        DockerCommandRequest? seen = null;
        var (run, stop) = Serve(r => { seen = r; return Task.FromResult(new DockerCommandResponse(true, "Successfully updated to version 2.1.0")); });
        await _bus.ListPushAsync(_name, Encoding.ASCII.GetBytes(WireGoldenTests.UpdateRequest), _cts.Token);
        var reply = Encoding.ASCII.GetString(await PopAsync("rpc-7c2853fc1b8a42e8b180a46da49c48ad"));
        Assert.Equal(Normalise(WireGoldenTests.UpdateReply), Normalise(reply));
        Assert.Equal(new DockerCommandRequest("update_version", "/opt/app1", "2.1.0"), seen);
        await stop.CancelAsync();
        await run;
    }

    [SkippableFact]
    public async Task An_invalid_request_gets_empty_data_and_one_without_reply_to_or_QueueInit_gets_nothing()
    {
        int calls = 0;
        var (run, stop) = Serve(_ => { Interlocked.Increment(ref calls); return Task.FromResult(new DockerCommandResponse(true, "ok")); });
        await _bus.ListPushAsync(_name, Encoding.ASCII.GetBytes("QueueInit"), _cts.Token);
        await _bus.ListPushAsync(_name, Encoding.ASCII.GetBytes("""{"header":{},"data":{"command":"down","directory":"\/x"}}"""), _cts.Token);
        await _bus.ListPushAsync(_name, Encoding.ASCII.GetBytes("""{"header":{"reply_to":"rpc-rawpeer0002"},"data":{"command":"down"}}"""), _cts.Token);
        var reply = Encoding.ASCII.GetString(await PopAsync("rpc-rawpeer0002"));
        Assert.Equal(Normalise(WireGoldenTests.EmptyDataReply), Normalise(reply));
        Assert.Equal(0, calls);
        Assert.Equal("0", redis.Cli("LLEN", _name));
        Assert.True(int.Parse(redis.Cli("TTL", "rpc-rawpeer0002")) is -2 or > 0); // popped, or expiring: never left for ever
        await stop.CancelAsync();
        await run;
    }

    [SkippableFact]
    public async Task The_client_sends_the_captured_request_bytes_and_reads_the_captured_reply()
    {
        var client = new CommlibRpcClient(_bus);
        var call = client.CallAsync(_name, new DockerCommandRequest("update_version", "/opt/app1", "2.1.0"), TimeSpan.FromSeconds(30), _cts.Token);
        var request = Encoding.ASCII.GetString(await PopAsync(_name));
        Assert.Equal(Normalise(WireGoldenTests.UpdateRequest), Normalise(request));
        var replyTo = ReplyKey().Match(request).Value;
        await _bus.ListPushAsync(replyTo, Encoding.ASCII.GetBytes(WireGoldenTests.UpdateReply), _cts.Token);
        var result = await call;
        Assert.Equal(RpcOutcome.Replied, result.Outcome);
        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.1.0"), result.Response);
        Assert.Equal("0", redis.Cli("EXISTS", replyTo));
    }

    [SkippableFact]
    public async Task A_call_nobody_serves_times_out_and_retracts_its_request()
    {
        var client = new CommlibRpcClient(_bus);
        var result = await client.CallAsync(_name, new DockerCommandRequest("update_version", "/opt/app9", "1.0.0"), TimeSpan.FromMilliseconds(300), _cts.Token);
        Assert.Equal(RpcOutcome.TimedOut, result.Outcome);
        Assert.True(result.Retracted);
        Assert.Equal("0", redis.Cli("LLEN", _name));
    }

    [SkippableFact]
    public async Task Our_client_and_service_talk_to_each_other()
    {
        var (run, stop) = Serve(r => Task.FromResult(new DockerCommandResponse(true, $"Stopped services in {r.Directory}")));
        var result = await new CommlibRpcClient(_bus).CallAsync(_name, new DockerCommandRequest("down", "/opt/app1"), TimeSpan.FromSeconds(30), _cts.Token);
        Assert.Equal(new DockerCommandResponse(true, "Stopped services in /opt/app1"), result.Response);
        await stop.CancelAsync();
        await run;
    }

    [SkippableFact]
    public async Task A_version_report_published_by_redis_cli_as_commlib_sends_it_reaches_a_subscriber_and_ours_reaches_redis_cli_subscribers()
    {
        var channel = "version_channel_" + Guid.NewGuid().ToString("N")[..8];
        var got = new TaskCompletionSource<VersionMessage>();
        await using (await _bus.SubscribeAsync(channel, (b, _) => { got.TrySetResult(WireCodec.DecodeVersion(b)); return Task.CompletedTask; }, _cts.Token))
        {
            Assert.Equal("1", redis.Cli("PUBLISH", channel, WireGoldenTests.VersionReport));
            var m = await got.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(("app1", "2.0.0"), (m.Appname, m.VersionNumber));
            Assert.Equal(1, await _bus.PublishAsync(channel, WireCodec.EncodeVersion(m), _cts.Token));
        }
    }
}
