using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Fleet.Core.Wire;

namespace Fleet.Core.Bus;

/// <summary>Outcome of one RPC call.</summary>
public enum RpcOutcome { Replied, TimedOut }

public sealed record RpcResult(RpcOutcome Outcome, DockerCommandResponse? Response, bool Retracted, TimeSpan Elapsed);

/// <summary>commlib-compatible RPC client: RPUSH the envelope on the RPC name, poll the <c>rpc-&lt;hex&gt;</c>
/// reply list, DEL it; on timeout retract the unserved request with LREM (fleet-wire.md sections 5 and 9).
/// All calls in flight share one poller: every <see cref="Tick"/> one script pops the reply lists that are due; each
/// call is polled first after <see cref="PollInterval"/>, then less often (×1.5 up to <see cref="MaxPollInterval"/>),
/// so that thousands of calls in flight (a fleet-wide rollout) cost one Redis command per tick, not one each.</summary>
public sealed class CommlibRpcClient(IFleetBus bus, WireStyle style = WireStyle.Ujson, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Waiter> _waiting = new();

    private sealed class Waiter(TaskCompletionSource<byte[]> tcs, long due, long interval)
    {
        public TaskCompletionSource<byte[]> Tcs { get; } = tcs;
        public long Due = due;
        public long Interval = interval;
    }
    private readonly Lock _gate = new();
    private Task? _poller;
    /// <summary>How often the poller looks for due reply lists.</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromMilliseconds(10);
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(20);
    public TimeSpan MaxPollInterval { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>Reply lists popped per script call.</summary>
    public int PollChunk { get; init; } = 1000;

    public async Task<RpcResult> CallAsync(string rpcName, DockerCommandRequest request, TimeSpan timeout, CancellationToken ct)
    {
        var replyKey = "rpc-" + Guid.NewGuid().ToString("N");
        var payload = WireCodec.EncodeRequest(replyKey, WireCodec.NowNanoseconds(_clock), request, style);
        var sw = Stopwatch.StartNew();
        var tcs = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[replyKey] = new Waiter(tcs, Stopwatch.GetTimestamp() + Ticks(PollInterval), Ticks(PollInterval));
        EnsurePoller();
        try
        {
            await bus.ListPushAsync(rpcName, payload, ct);
            byte[] reply;
            try { reply = await tcs.Task.WaitAsync(timeout, ct); }
            catch (TimeoutException)
            {
                _waiting.TryRemove(replyKey, out _);
                if (tcs.Task.IsCompletedSuccessfully) reply = tcs.Task.Result; // popped just as the time ran out
                else
                {
                    var retracted = await bus.ListRemoveAsync(rpcName, payload, CancellationToken.None) > 0;
                    await bus.DeleteAsync(replyKey, CancellationToken.None);
                    return new RpcResult(RpcOutcome.TimedOut, null, retracted, sw.Elapsed);
                }
            }
            DockerCommandResponse resp;
            try { resp = WireCodec.DecodeResponseData(WireCodec.DecodeEnvelope(reply).Data); }
            catch (WireFormatException e) { resp = new DockerCommandResponse(false, "unreadable reply: " + e.Message); }
            return new RpcResult(RpcOutcome.Replied, resp, false, sw.Elapsed);
        }
        catch (OperationCanceledException)
        {
            _waiting.TryRemove(replyKey, out _);
            await bus.ListRemoveAsync(rpcName, payload, CancellationToken.None);
            await bus.DeleteAsync(replyKey, CancellationToken.None);
            throw;
        }
        finally
        {
            _waiting.TryRemove(replyKey, out _);
        }
    }

    private static long Ticks(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);

    private void EnsurePoller()
    {
        lock (_gate)
        {
            if (_poller is null || _poller.IsCompleted) _poller = Task.Run(PollAsync);
        }
    }

    /// <summary>Runs while calls wait; ends when none does (the next call starts it again).</summary>
    private async Task PollAsync()
    {
        var keys = new List<string>(PollChunk);
        while (true)
        {
            await Task.Delay(Tick);
            lock (_gate)
            {
                if (_waiting.IsEmpty) { _poller = null; return; }
            }
            keys.Clear();
            var now = Stopwatch.GetTimestamp();
            foreach (var (k, w) in _waiting)
            {
                if (w.Due > now) continue;
                w.Interval = Math.Min(Ticks(MaxPollInterval), w.Interval * 3 / 2);
                w.Due = now + w.Interval;
                keys.Add(k);
                if (keys.Count == PollChunk) { await PopAsync(keys); keys.Clear(); }
            }
            await PopAsync(keys);
        }
    }

    private async Task PopAsync(List<string> keys)
    {
        if (keys.Count == 0) return;
        byte[]?[] replies;
        try { replies = await bus.ListPopManyAndDeleteAsync(keys, CancellationToken.None); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Redis unreachable for a moment: the calls keep waiting (each ends by its own timeout)
            AppModule.Runtime.Log.Debug($"RPC reply poll failed: {e.Message}");
            return;
        }
        for (int i = 0; i < replies.Length; i++)
            if (replies[i] is { } r && _waiting.TryRemove(keys[i], out var w)) w.Tcs.TrySetResult(r);
    }
}

/// <summary>commlib-compatible RPC service: pops requests from the RPC name list, skips <c>QueueInit</c>,
/// drops requests without <c>reply_to</c>, runs handlers on a small worker pool and always replies
/// (<c>"data":{}</c> when the request is invalid or the handler throws). Replies expire after 60 s.</summary>
public sealed class CommlibRpcServer(
    IFleetBus bus,
    string rpcName,
    Func<DockerCommandRequest, CancellationToken, Task<DockerCommandResponse>> handler,
    Action<string> log,
    WireStyle style = WireStyle.Ujson,
    int workers = 4)
{
    private static readonly byte[] QueueInit = Encoding.ASCII.GetBytes("QueueInit");
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(25);
    public TimeSpan ReplyTtl { get; init; } = TimeSpan.FromSeconds(60);

    public async Task RunAsync(CancellationToken ct)
    {
        using var slots = new SemaphoreSlim(workers);
        var running = new List<Task>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                byte[]? raw;
                try { raw = await bus.ListPopAsync(rpcName, ct); }
                catch (OperationCanceledException) { break; }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    log($"RPC {rpcName}: pop failed: {e.Message}; retrying in 1 s");
                    await Task.Delay(TimeSpan.FromSeconds(1), ct).ContinueWith(_ => { }, CancellationToken.None);
                    continue;
                }
                if (raw is null)
                {
                    try { await Task.Delay(IdlePoll, ct); } catch (OperationCanceledException) { break; }
                    continue;
                }
                if (raw.AsSpan().SequenceEqual(QueueInit)) continue;
                await slots.WaitAsync(CancellationToken.None);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(Task.Run(async () =>
                {
                    try { await ServeOneAsync(raw, ct); }
                    finally { slots.Release(); }
                }, CancellationToken.None));
            }
        }
        finally
        {
            await Task.WhenAll(running);
        }
    }

    private async Task ServeOneAsync(byte[] raw, CancellationToken ct)
    {
        RpcEnvelopeIn env;
        try { env = WireCodec.DecodeEnvelope(raw); }
        catch (WireFormatException e)
        {
            log($"RPC {rpcName}: dropped a request that is not a commlib envelope: {e.Message}");
            return;
        }
        var replyTo = env.Header?.ReplyTo;
        if (string.IsNullOrEmpty(replyTo))
        {
            log($"RPC {rpcName}: dropped a request without header.reply_to (commlib does the same)");
            return;
        }
        DockerCommandResponse? response;
        try
        {
            var req = WireCodec.DecodeRequestData(env.Data);
            response = await handler(req, ct);
        }
        catch (WireFormatException e)
        {
            log($"RPC {rpcName}: invalid request answered with empty data: {e.Message}");
            response = null;
        }
        catch (OperationCanceledException)
        {
            response = new DockerCommandResponse(false, "the service is shutting down; the command was interrupted");
        }
        catch (Exception e)
        {
            log($"RPC {rpcName}: handler failed: {e.Message}");
            response = new DockerCommandResponse(false, "handler failed: " + e.Message);
        }
        var reply = WireCodec.EncodeReply(WireCodec.NowNanoseconds(), response, style);
        await bus.ListPushAsync(replyTo, reply, CancellationToken.None);
        await bus.ExpireAsync(replyTo, ReplyTtl, CancellationToken.None);
    }
}
