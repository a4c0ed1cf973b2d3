using System.Globalization;
using Fleet.Core.Wire;
using StackExchange.Redis;

namespace Fleet.Core.State;

/// <summary>Where the fleet's state lives in Redis and how long its windows are. Every key starts with
/// <see cref="Prefix"/> (one Redis database, not Redis Cluster: scripts build keys from it).</summary>
public sealed record FleetStateOptions
{
    public string Prefix { get; init; } = "fleet";
    /// <summary>Identical reports bridged from pub/sub within this window are added to the stream once
    /// (several updaters all receive every PUBLISH); 0 turns the dedupe off.</summary>
    public TimeSpan BridgeDedupe { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Approximate cap of the report stream (XADD MAXLEN ~).</summary>
    public long StreamMaxLength { get; init; } = 200_000;
    /// <summary>Entries taken over at once from a dead consumer (XAUTOCLAIM COUNT).</summary>
    public int BatchSize { get; init; } = 1000;
    /// <summary>Reports one updater has read and not yet decided, at most (XREADGROUP COUNT asks for the free part).
    /// Small keeps a report's wait after it was read short; the rest stays in the stream for any updater.</summary>
    public int ReadWindow { get; init; } = 64;
    /// <summary>A report read by a consumer and not acknowledged for this long is taken over (XAUTOCLAIM).</summary>
    public TimeSpan ClaimIdle { get; init; } = TimeSpan.FromSeconds(15);

    public string Stream => Prefix + ":reports";
    public string Group => "updaters";
    public string Observed => Prefix + ":observed";
    public string Targets => Prefix + ":targets";
    public string TargetsRev => Prefix + ":targets:rev";
    public string CommandKey(string app) => Prefix + ":cmd:" + app;
}

/// <summary>The verdict of the decide-and-record script for one report that wants an update: send a new attempt
/// (new key); re-send a stale one (its sender died) or retry one whose send failed on the updater's side
/// (<see cref="RetryError"/>), both with the same key; wait (in flight, attempted recently, or an errored send whose
/// backoff has not passed: <see cref="ClaimResult.AgeMs"/> is then the time left).</summary>
public enum ClaimVerdict { None, Send, Resend, InFlight, RecentlyAttempted, RetryError, ErrorBackoff }

/// <summary>One report of a batch: its stream entry, and (when the updater wants to send an update) the target tag and
/// since when outcomes count (<see cref="SinceMs"/>: the start of the rollout that sends it, Unix ms; 0 without one):
/// an outcome of the same target recorded before that belongs to an earlier attempt, not to this rollout.</summary>
public readonly record struct ReportRecord(RedisValue Id, string? App, string? Version, string? WantTag, long SinceMs = 0);

public readonly record struct ClaimResult(ClaimVerdict Verdict, string Detail, long AgeMs);

/// <summary>A device command as recorded in Redis: which target, its idempotency key, and how it ended.</summary>
public sealed record CommandRecord(string App, string Target, string Key, string Status, DateTimeOffset At, string Owner, string Message);

/// <summary>The fleet's desired state (targets set at run time), observed state (each app's last report) and
/// command status in Redis, and the report stream. Decisions are made atomically by Lua scripts (EVALSHA after the
/// first call): a batch of reports is recorded, claimed and acknowledged in one round trip.</summary>
public sealed class FleetState(IDatabase db, FleetStateOptions options)
{
    public FleetStateOptions Options { get; } = options;
    public IDatabase Database => db;

    // ARGV: window_ms, maxlen, payload...  KEYS: stream, dedupe prefix
    private const string BridgeScript = """
        local n = 0
        local win = tonumber(ARGV[1])
        for i = 3, #ARGV do
          local add = true
          if win > 0 then
            add = redis.call('SET', KEYS[2] .. redis.sha1hex(ARGV[i]), '1', 'NX', 'PX', win)
          end
          if add then
            redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'p', ARGV[i])
            n = n + 1
          end
        end
        return n
        """;

    // KEYS: stream, observed.  ARGV: group, now_ms, retry_ms, stale_ms, owner, cmd prefix, error_retry_ms, then per entry:
    // id, app, version, want, since_ms.  Per entry: records the observed version, then (want ~= '') claims the command atomically:
    //  in flight (sent, not stale) -> 'I', resend a stale one of the same target with its key -> 'S',
    //  the same target whose send failed on the updater's side ('error': the request may never have reached the device)
    //  -> 'E' with its key once error_retry_ms * 2^(earlier retries) passed (capped at retry_ms), else 'R' with the
    //  time left; same target finished less than retry_ms ago -> 'R', else a new attempt with a new key -> 'U'.
    //  An outcome (error included) recorded before since_ms (the start of the rollout that sends the target) belongs to
    //  an earlier attempt: a new attempt with a new key, so that a rollout started again after a fix runs it again.
    private const string DecideScript = """
        local now = tonumber(ARGV[2])
        local retry = tonumber(ARGV[3])
        local stale = tonumber(ARGV[4])
        local eretry = tonumber(ARGV[7])
        local out = {}
        local ids = {}
        local k = 1
        for i = 8, #ARGV, 5 do
          local id, app, ver, want, since = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
          if id ~= '' then ids[#ids+1] = id end
          local r = ''
          if app ~= '' then
            redis.call('HSET', KEYS[2], app, ver .. '\t' .. now)
            if want ~= '' then
              local ck = ARGV[6] .. app
              local c = redis.call('HMGET', ck, 'target', 'status', 'at', 'key', 'retries')
              local at = tonumber(c[3] or '0') or 0
              local earlier = c[2] ~= 'sent' and at < since
              if c[2] == 'sent' and now - at < stale then
                r = 'I\t' .. c[1] .. '\t' .. (now - at)
              elseif c[2] == 'sent' and c[1] == want then
                redis.call('HSET', ck, 'at', now, 'owner', ARGV[5])
                r = 'S\t' .. c[4] .. '\t' .. (now - at)
              elseif c[2] == 'error' and c[1] == want and not earlier then
                local n = tonumber(c[5] or '0') or 0
                local wait = math.min(retry, eretry * 2 ^ math.min(n, 30))
                if now - at >= wait then
                  redis.call('HSET', ck, 'status', 'sent', 'at', now, 'owner', ARGV[5], 'retries', n + 1)
                  r = 'E\t' .. c[4] .. '\t' .. (now - at)
                else
                  r = 'W\t' .. c[4] .. '\t' .. (wait - (now - at))
                end
              elseif c[1] == want and c[2] and now - at < retry and not earlier then
                r = 'R\t' .. c[2] .. '\t' .. (now - at)
              else
                local n = redis.call('HINCRBY', ck, 'n', 1)
                local key = app .. ':' .. want .. ':' .. n
                redis.call('HSET', ck, 'target', want, 'status', 'sent', 'at', now, 'owner', ARGV[5], 'key', key, 'message', '', 'retries', 0)
                r = 'U\t' .. key .. '\t0'
              end
            end
          end
          out[k] = r
          k = k + 1
        end
        if #ids > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) end
        return out
        """;

    // KEYS: cmd key.  ARGV: idempotency key, status, message, now_ms.  Records the outcome only for the same key.
    private const string CompleteScript = """
        if redis.call('HGET', KEYS[1], 'key') ~= ARGV[1] then return 0 end
        redis.call('HSET', KEYS[1], 'status', ARGV[2], 'message', ARGV[3], 'at', ARGV[4])
        return 1
        """;

    /// <summary>Creates the consumer group (from the stream's start, so reports added before any updater ran are
    /// handled); an existing group is kept.</summary>
    public async Task EnsureGroupAsync(CancellationToken ct)
    {
        try
        {
            await db.StreamCreateConsumerGroupAsync(Options.Stream, Options.Group, StreamPosition.Beginning, createStream: true).WaitAsync(ct);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal)) { }
    }

    /// <summary>Adds reports to the stream; with <paramref name="dedupe"/> an identical payload added within the
    /// window (by this or another updater's bridge) is dropped. Returns how many were added.</summary>
    public async Task<long> AddReportsAsync(IReadOnlyList<byte[]> payloads, bool dedupe, CancellationToken ct)
    {
        if (payloads.Count == 0) return 0;
        var args = new RedisValue[payloads.Count + 2];
        args[0] = dedupe ? (long)Options.BridgeDedupe.TotalMilliseconds : 0;
        args[1] = Options.StreamMaxLength;
        for (int i = 0; i < payloads.Count; i++) args[i + 2] = payloads[i];
        var r = await db.ScriptEvaluateAsync(BridgeScript, [Options.Stream, Options.Prefix + ":dedupe:"], args).WaitAsync(ct);
        return (long)r;
    }

    /// <summary>Adds one report to the stream (a device reporting directly: durable even while no updater runs).</summary>
    public async Task AddReportAsync(byte[] payload, CancellationToken ct) =>
        await db.StreamAddAsync(Options.Stream, "p", payload, maxLength: (int)Math.Min(int.MaxValue, Options.StreamMaxLength), useApproximateMaxLength: true).WaitAsync(ct);

    /// <summary>Puts the last observed version of each app back on the report stream, so that the updaters decide
    /// them now (a wave just released, a rollout resumed, a send to retry) rather than at the devices' next reports.</summary>
    public async Task RequeueObservedAsync(IReadOnlyList<string> apps, CancellationToken ct)
    {
        if (apps.Count == 0) return;
        var observed = await db.HashGetAsync(Options.Observed, apps.Select(a => (RedisValue)a).ToArray()).WaitAsync(ct);
        var payloads = new List<byte[]>();
        for (int i = 0; i < apps.Count; i++)
            if ((string?)observed[i] is { } ov)
                payloads.Add(WireCodec.EncodeVersion(new VersionMessage(apps[i], ov.Split('\t')[0], [])));
        await AddReportsAsync(payloads, dedupe: false, ct);
    }

    /// <summary>Reports this consumer has not read yet, at most <paramref name="count"/>, waiting up to
    /// <paramref name="block"/> for one (XREADGROUP BLOCK). <paramref name="blockingDb"/> must be a connection of its
    /// own: a blocked command holds it.</summary>
    public static async Task<List<(RedisValue Id, byte[]? Payload)>> ReadNewAsync(IDatabase blockingDb, FleetStateOptions o, string consumer, int count, TimeSpan block, CancellationToken ct)
    {
        var r = await blockingDb.ExecuteAsync("XREADGROUP", "GROUP", o.Group, consumer, "COUNT", count,
            "BLOCK", (long)block.TotalMilliseconds, "STREAMS", o.Stream, ">").WaitAsync(ct);
        var list = new List<(RedisValue, byte[]?)>();
        if (r.IsNull) return list;
        // RESP2: [[stream, entries]]; RESP3: a map {stream: entries}, which arrives flattened
        var outer = (RedisResult[])r!;
        for (int s = 0; s < outer.Length; s++)
        {
            RedisResult[] entries;
            if (outer[s].Resp2Type == ResultType.Array) entries = (RedisResult[])((RedisResult[])outer[s]!)[1]!;
            else entries = (RedisResult[])outer[++s]!;
            foreach (var e in entries)
            {
                var pair = (RedisResult[])e!;
                var fields = pair[1].IsNull ? [] : (RedisResult[])pair[1]!;
                byte[]? payload = null;
                for (int i = 0; i + 1 < fields.Length; i += 2)
                    if ((string?)fields[i] == "p") payload = (byte[]?)fields[i + 1];
                list.Add(((RedisValue)(string?)pair[0], payload));
            }
        }
        return list;
    }

    /// <summary>The consumer group's standing: reports not read by any consumer yet (<c>lag</c>, null when Redis cannot
    /// tell), read and not acknowledged (<c>pending</c>), consumers, and the stream's length. Zeros before the stream or
    /// the group exist.</summary>
    public async Task<(long? Lag, long Pending, long Consumers, long Length)> GroupStandingAsync(CancellationToken ct)
    {
        var length = await db.StreamLengthAsync(Options.Stream).WaitAsync(ct);
        if (length == 0 && !await db.KeyExistsAsync(Options.Stream).WaitAsync(ct)) return (0, 0, 0, 0);
        var groups = await db.StreamGroupInfoAsync(Options.Stream).WaitAsync(ct);
        foreach (var g in groups)
            if (g.Name == Options.Group) return (g.Lag, g.PendingMessageCount, g.ConsumerCount, length);
        return (length, 0, 0, length);
    }

    /// <summary>Takes over reports another consumer read and did not acknowledge within the claim window.</summary>
    public async Task<StreamEntry[]> ClaimStaleAsync(string consumer, CancellationToken ct)
    {
        var r = await db.StreamAutoClaimAsync(Options.Stream, Options.Group, consumer, (long)Options.ClaimIdle.TotalMilliseconds, "0-0", Options.BatchSize).WaitAsync(ct);
        return r.ClaimedEntries;
    }

    /// <summary>Records each report's observed version, claims a command for those that want one, and acknowledges
    /// the entries, atomically and in one round trip. Results are in the order of <paramref name="batch"/>.</summary>
    public async Task<ClaimResult[]> DecideAsync(IReadOnlyList<ReportRecord> batch, DateTimeOffset now, TimeSpan retryAfter, TimeSpan stale, TimeSpan errorRetry, string owner, CancellationToken ct)
    {
        const int head = 7, per = 5;
        var args = new RedisValue[head + batch.Count * per];
        args[0] = Options.Group;
        args[1] = now.ToUnixTimeMilliseconds();
        args[2] = (long)retryAfter.TotalMilliseconds;
        args[3] = (long)stale.TotalMilliseconds;
        args[4] = owner;
        args[5] = Options.Prefix + ":cmd:";
        args[6] = (long)errorRetry.TotalMilliseconds;
        for (int i = 0; i < batch.Count; i++)
        {
            var b = batch[i];
            int o = head + i * per;
            args[o] = b.Id;
            args[o + 1] = b.App ?? "";
            args[o + 2] = b.Version ?? "";
            args[o + 3] = b.WantTag ?? "";
            args[o + 4] = b.SinceMs;
        }
        var r = (RedisResult[])(await db.ScriptEvaluateAsync(DecideScript, [Options.Stream, Options.Observed], args).WaitAsync(ct))!;
        var results = new ClaimResult[batch.Count];
        for (int i = 0; i < r.Length; i++)
        {
            var s = (string?)r[i] ?? "";
            if (s.Length == 0) { results[i] = new ClaimResult(ClaimVerdict.None, "", 0); continue; }
            var parts = s.Split('\t');
            var verdict = parts[0] switch
            {
                "U" => ClaimVerdict.Send,
                "S" => ClaimVerdict.Resend,
                "E" => ClaimVerdict.RetryError,
                "W" => ClaimVerdict.ErrorBackoff,
                "I" => ClaimVerdict.InFlight,
                _ => ClaimVerdict.RecentlyAttempted,
            };
            results[i] = new ClaimResult(verdict, parts[1], long.Parse(parts[2], CultureInfo.InvariantCulture));
        }
        return results;
    }

    /// <summary>Records how a command ended (success, failure, timeout, error), only if it is still the app's current command.</summary>
    public async Task<bool> CompleteAsync(string app, string key, string status, string message, DateTimeOffset now, CancellationToken ct) =>
        (long)await db.ScriptEvaluateAsync(CompleteScript, [Options.CommandKey(app)], [key, status, message, now.ToUnixTimeMilliseconds()]).WaitAsync(ct) == 1;

    public async Task<CommandRecord?> GetCommandAsync(string app, CancellationToken ct)
    {
        var h = (await db.HashGetAllAsync(Options.CommandKey(app)).WaitAsync(ct)).ToDictionary(e => (string)e.Name!, e => (string?)e.Value ?? "");
        if (!h.TryGetValue("key", out var key)) return null;
        return new CommandRecord(app, h.GetValueOrDefault("target", ""), key, h.GetValueOrDefault("status", ""),
            DateTimeOffset.FromUnixTimeMilliseconds(long.TryParse(h.GetValueOrDefault("at"), out var at) ? at : 0),
            h.GetValueOrDefault("owner", ""), h.GetValueOrDefault("message", ""));
    }

    /// <summary>Each app's last reported version and when it was recorded.</summary>
    public async Task<IReadOnlyDictionary<string, (string Version, DateTimeOffset At)>> GetObservedAsync(CancellationToken ct)
    {
        var all = await db.HashGetAllAsync(Options.Observed).WaitAsync(ct);
        var result = new Dictionary<string, (string, DateTimeOffset)>(all.Length, StringComparer.Ordinal);
        foreach (var e in all)
        {
            var v = ((string?)e.Value ?? "").Split('\t');
            result[(string)e.Name!] = (v[0], DateTimeOffset.FromUnixTimeMilliseconds(v.Length > 1 && long.TryParse(v[1], out var ms) ? ms : 0));
        }
        return result;
    }

    /// <summary>Run-time targets (set without a restart; they override the configuration). An empty value means
    /// "no target" for an app the configuration lists.</summary>
    public async Task<(long Rev, IReadOnlyDictionary<string, string> Targets)> GetTargetsAsync(CancellationToken ct)
    {
        var rev = db.StringGetAsync(Options.TargetsRev);
        var all = db.HashGetAllAsync(Options.Targets);
        await Task.WhenAll(rev, all).WaitAsync(ct);
        return ((long?)rev.Result ?? 0, all.Result.ToDictionary(e => (string)e.Name!, e => (string?)e.Value ?? "", StringComparer.Ordinal));
    }

    public async Task<long> GetTargetsRevAsync(CancellationToken ct) => (long?)await db.StringGetAsync(Options.TargetsRev).WaitAsync(ct) ?? 0;

    /// <summary>Sets (or with null, removes) an app's run-time target; every updater picks it up within a second.</summary>
    public async Task SetTargetAsync(string app, string? target, CancellationToken ct)
    {
        var tx = db.CreateTransaction();
        _ = target is null ? tx.HashDeleteAsync(Options.Targets, app) : tx.HashSetAsync(Options.Targets, app, target);
        _ = tx.StringIncrementAsync(Options.TargetsRev);
        await tx.ExecuteAsync().WaitAsync(ct);
    }
}
