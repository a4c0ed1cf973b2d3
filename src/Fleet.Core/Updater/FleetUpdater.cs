using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Observability;
using Fleet.Core.Registry;
using Fleet.Core.State;
using Fleet.Core.Versioning;
using Fleet.Core.Wire;
using StackExchange.Redis;

namespace Fleet.Core.Updater;

public enum DecisionKind { Invalid, NotListed, UpToDate, TargetMissing, RegistryError, NoDirectory, InFlight, RecentlyAttempted, Update, Held, PlatformMissing }

/// <summary>What the updater decided for one version report.</summary>
public sealed record Decision(DecisionKind Kind, string App, string? Reported, string? TargetTag, string Reason)
{
    /// <summary>Time from receiving the report to this decision.</summary>
    public TimeSpan Latency { get; init; }
}

/// <summary>Seed 000's updater, durable: version reports travel on a Redis stream read through one consumer group
/// (several updaters share the work), the commlib <c>PUBLISH version_channel</c> path is bridged onto that stream, and
/// each decision is recorded atomically in Redis with the report's acknowledgement (<see cref="FleetState"/>).
/// Per report: compare with the target (PEP 440), check the target exists in the registry, and claim the command in
/// Redis: at most one per app in flight, a target just attempted is not retried for
/// <see cref="UpdaterConfig.RetryAfter"/>, and each command carries an idempotency key unique per
/// (app, target, attempt) that the agent checks. An updater killed at any point loses nothing: unacknowledged reports
/// are taken over by another consumer (XAUTOCLAIM), a command whose sender died is re-sent with the same key.</summary>
public sealed class FleetUpdater
{
    private readonly UpdaterConfig _cfg;
    private readonly IFleetBus _bus;
    private readonly RegistryClient _registry;
    private readonly DeviceCommands _commands;
    private readonly TimeProvider _clock;
    private readonly FleetState? _store;
    private readonly ConcurrentDictionary<Task, byte> _inflight = new();
    private readonly Channel<byte[]> _bridge = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private volatile IReadOnlyDictionary<string, VersionTarget?> _runtimeTargets = new Dictionary<string, VersionTarget?>();
    private long _targetsRev = -1;
    private volatile IReadOnlyDictionary<string, Rollout> _rollouts = new Dictionary<string, Rollout>();
    private long _rolloutsRev = -1;
    private readonly RolloutStore? _rolloutStore;

    public Metrics Metrics { get; }
    /// <summary>This updater's consumer name in the group (host, process, random).</summary>
    public string Consumer { get; }
    /// <summary>The Redis state (null for an updater without Redis, e.g. <c>--check</c>).</summary>
    public FleetState? State => _store;
    /// <summary>Raised after each RPC outcome (tests, bench).</summary>
    public event Action<string, RpcResult>? RpcCompleted;
    /// <summary>Raised after each decision (tests, bench).</summary>
    public event Action<Decision>? Decided;

    public FleetUpdater(UpdaterConfig cfg, IFleetBus bus, RegistryClient registry, Metrics? metrics = null, TimeProvider? clock = null)
    {
        _cfg = cfg;
        _bus = bus;
        _registry = registry;
        _clock = clock ?? TimeProvider.System;
        Metrics = metrics ?? new Metrics();
        _commands = new DeviceCommands(cfg, bus, _clock);
        _store = bus is RedisFleetBus r ? new FleetState(r.Database, cfg.State) : null;
        _rolloutStore = bus is RedisFleetBus r2 ? new RolloutStore(r2.Database, cfg.State) : null;
        Consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
    }

    /// <summary>A command whose sender has not recorded an outcome for this long is presumed orphaned (its updater
    /// died) and is re-sent with the same idempotency key.</summary>
    private TimeSpan StaleAfter => _cfg.RpcTimeout + TimeSpan.FromSeconds(5);

    /// <summary>Checks every configured target against the registry and logs the result (seed 000's
    /// validate_apps_to_update): the tag exists and, when the app has a platform, offers it (else null).
    /// Never throws for a missing target: the service keeps running.</summary>
    public async Task<IReadOnlyDictionary<string, string?>> ValidateTargetsAsync(CancellationToken ct)
    {
        var result = new Dictionary<string, string?>();
        foreach (var app in _cfg.Apps.Values.Where(a => TargetOf(a) is not null).OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            var target = TargetOf(app)!;
            try
            {
                var tag = await ResolveAsync(app, target, ct);
                var platform = tag is null ? null : await _registry.PlatformManifestAsync(app.Image, tag, app.Platform, ct);
                result[app.Name] = platform?.Refusal is null ? tag : null;
                if (tag is null) Log.Warning($"target check: {app.Name} -> {target} does not exist in {app.Image}; reports for it will be refused until it is pushed");
                else if (platform!.Refusal is { } why) Log.Warning($"target check: {app.Name} -> {target}: the devices run {app.Platform}, and {why}; reports for it will be refused until an image for {app.Platform} is pushed");
                else Log.Info($"target check: {app.Name} -> {target} OK ({app.Image}:{tag}@{platform.Digest}{(app.Platform is null ? "" : " for " + app.Platform)})");
            }
            catch (Exception e) when (e is RegistryException or System.Text.Json.JsonException or HttpRequestException or IOException)
            {
                result[app.Name] = null;
                Log.Warning($"target check: {app.Name} -> {target}: registry error: {e.Message}");
            }
        }
        return result;
    }

    /// <summary>The app's target: the run-time one set in Redis if any (an empty one clears it), else the configured one.</summary>
    private VersionTarget? TargetOf(AppEntry app) => _runtimeTargets.TryGetValue(app.Name, out var t) ? t : app.Target;

    /// <summary>Reads the run-time targets from Redis when their revision changed.</summary>
    public async Task RefreshTargetsAsync(CancellationToken ct)
    {
        if (_store is null) return;
        if (await _store.GetTargetsRevAsync(ct) == Interlocked.Read(ref _targetsRev)) return;
        var (rev, raw) = await _store.GetTargetsAsync(ct);
        var parsed = new Dictionary<string, VersionTarget?>(StringComparer.Ordinal);
        foreach (var (app, text) in raw)
        {
            if (text.Length == 0) { parsed[app] = null; continue; }
            try { parsed[app] = VersionTarget.Parse(text); }
            catch (FormatException e) { Log.Warning($"run-time target of {app} '{text}' ignored (the configured one applies): {e.Message}"); }
        }
        _runtimeTargets = parsed;
        Interlocked.Exchange(ref _targetsRev, rev);
        Log.Info($"targets revision {rev}: {raw.Count} run-time target(s)");
    }

    /// <summary>Bridges the version channel onto the report stream and consumes the stream in the group until
    /// cancelled, then waits for RPCs in flight.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (_store is null) throw new InvalidOperationException("the updater needs Redis (RedisFleetBus) to run");
        // Connections of their own: a blocked XREADGROUP holds its connection, and the decide scripts must not queue
        // behind the RPC reply polls of a fleet-wide rollout on the commlib connection.
        await using var reader = await RedisFleetBus.ConnectAsync(_cfg.Redis, ct);
        await using var stateConn = await RedisFleetBus.ConnectAsync(_cfg.Redis, ct);
        var store = new FleetState(stateConn.Database, _cfg.State);
        await store.EnsureGroupAsync(ct);
        await RefreshTargetsAsync(ct);
        await RefreshRolloutsAsync(ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var loops = new List<Task>
        {
            Task.Run(() => BridgeLoopAsync(store, stop.Token), CancellationToken.None),
            Task.Run(() => ConsumeLoopAsync(store, reader.Database, stop.Token), CancellationToken.None),
            Task.Run(() => ClaimLoopAsync(store, stop.Token), CancellationToken.None),
            Task.Run(() => TargetsLoopAsync(store, stop.Token), CancellationToken.None),
        };
        await using (await _bus.SubscribeAsync(_cfg.Channel, (payload, _) => { _bridge.Writer.TryWrite(payload); return Task.CompletedTask; }, ct))
        {
            Log.Info($"consumer {Consumer} of {store.Options.Stream} (group {store.Options.Group}), bridging {_cfg.Channel}; {_cfg.Apps.Values.Count(a => TargetOf(a) is not null)} app(s) with targets");
            try { await Task.Delay(Timeout.Infinite, ct); }
            catch (OperationCanceledException) { }
        }
        await stop.CancelAsync();
        await Task.WhenAll(loops);
        await DrainAsync();
    }

    /// <summary>The updater's health for <c>/healthz</c>: Redis answers a PING (within 2 s), and the consumer group's lag
    /// (reports no updater has read yet) is at most <see cref="UpdaterConfig.HealthMaxLag"/> when that is set.</summary>
    public async Task<(bool Healthy, string Json)> HealthAsync(CancellationToken ct)
    {
        UpdaterHealth h;
        if (_store is null) h = new UpdaterHealth("unhealthy", "no Redis configured", new RedisHealth(false, null, "no Redis connection"), null);
        else
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(TimeSpan.FromSeconds(2));
                var latency = await _store.Database.PingAsync().WaitAsync(cts.Token);
                var (lag, pending, consumers, length) = await _store.GroupStandingAsync(cts.Token);
                var max = _cfg.HealthMaxLag > 0 ? _cfg.HealthMaxLag : (long?)null;
                var consumer = new ConsumerHealth(Consumer, _store.Options.Stream, _store.Options.Group, lag, pending, consumers, length, max);
                var lagging = max is { } m && lag > m;
                h = new UpdaterHealth(lagging ? "unhealthy" : "ok",
                    lagging ? $"{lag} report(s) not read by any updater (more than health_max_lag {max}): the updaters do not keep up" : null,
                    new RedisHealth(true, Math.Round(latency.TotalMilliseconds, 3), null), consumer);
            }
            catch (Exception e) when ((e is RedisException or TimeoutException or OperationCanceledException) && !ct.IsCancellationRequested)
            {
                var why = e is OperationCanceledException ? "no answer within 2 s" : e.Message;
                h = new UpdaterHealth("unhealthy", $"Redis at {_cfg.Redis} is not reachable: {why}", new RedisHealth(false, null, why), null);
            }
        }
        return (h.Status == "ok", System.Text.Json.JsonSerializer.Serialize(h, HealthJsonContext.Default.UpdaterHealth));
    }

    /// <summary>Waits for every RPC in flight to finish (they end by reply or timeout).</summary>
    public Task DrainAsync() => Task.WhenAll(_inflight.Keys);

    private static async Task Pause(TimeSpan t, CancellationToken ct)
    {
        try { await Task.Delay(t, ct); } catch (OperationCanceledException) { }
    }

    /// <summary>Bridge round trips kept in flight at once (pipelining: the next batch is prepared while Redis runs
    /// the previous one's script; scripts sent on one connection run in order).</summary>
    private const int Pipeline = 16;

    /// <summary>Reports decided per script call: what is read at once is decided in chunks, so that a report waits
    /// for its chunk, not for the whole read.</summary>
    private const int Chunk = 64;

    private async Task BridgeLoopAsync(FleetState store, CancellationToken ct)
    {
        using var slots = new SemaphoreSlim(Pipeline);
        var running = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!await _bridge.Reader.WaitToReadAsync(ct)) break;
                await slots.WaitAsync(ct);
            }
            catch (OperationCanceledException) { break; }
            var batch = new List<byte[]>(512);
            while (batch.Count < 512 && _bridge.Reader.TryRead(out var p)) batch.Add(p);
            running.RemoveAll(t => t.IsCompleted);
            running.Add(AddAsync(batch));
        }
        await Task.WhenAll(running);

        async Task AddAsync(List<byte[]> batch)
        {
            try
            {
                var added = await store.AddReportsAsync(batch, dedupe: store.Options.BridgeDedupe > TimeSpan.Zero, ct);
                const string help = "Reports received on the version channel and bridged onto the stream: added, or dropped as a duplicate (already added by another updater's bridge or by the device itself).";
                Metrics.Add("fleet_reports_bridged_total", help, added, "result=\"added\"");
                Metrics.Add("fleet_reports_bridged_total", help, batch.Count - added, "result=\"duplicate\"");
            }
            catch (OperationCanceledException) { }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                Log.Warning($"bridge: cannot add {batch.Count} report(s) to {store.Options.Stream}: {e.Message}; retrying in 0.5 s");
                await Pause(TimeSpan.FromMilliseconds(500), ct);
                foreach (var p in batch) _bridge.Writer.TryWrite(p);
            }
            finally { slots.Release(); }
        }
    }

    /// <summary>Reads the stream in the group and decides what it read. Adaptive: at most
    /// <see cref="FleetStateOptions.ReadWindow"/> reports are read and not yet decided at a time, in chunks of
    /// <see cref="Chunk"/>. Each read asks for the free part of the window and blocks until a report arrives, so on a
    /// short stream a report is read as soon as it is added and decided alone; on a long stream reads fill the window
    /// and the rest waits in the stream (durable, and there for another updater to take). A report read thus waits for
    /// at most one window's decisions, not a batch of a thousand.</summary>
    private async Task ConsumeLoopAsync(FleetState store, IDatabase readerDb, CancellationToken ct)
    {
        int windowChunks = Math.Max(1, store.Options.ReadWindow / Chunk);
        using var slots = new SemaphoreSlim(windowChunks);
        var running = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            try { await slots.WaitAsync(ct); }
            catch (OperationCanceledException) { break; }
            int free = 1;
            while (free < windowChunks && slots.Wait(0)) free++;
            List<(RedisValue Id, byte[]? Payload)> entries;
            try
            {
                entries = await FleetState.ReadNewAsync(readerDb, store.Options, Consumer, free * Chunk, TimeSpan.FromSeconds(1), ct);
            }
            catch (OperationCanceledException) { slots.Release(free); break; }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                slots.Release(free);
                if (e.Message.Contains("NOGROUP", StringComparison.Ordinal))
                {
                    try { await store.EnsureGroupAsync(ct); } catch (Exception e2) when (e2 is RedisException or TimeoutException or OperationCanceledException) { }
                }
                Log.Warning($"consumer {Consumer}: reading {store.Options.Stream} failed: {e.Message}; retrying in 0.5 s (unacknowledged reports are kept)");
                await Pause(TimeSpan.FromMilliseconds(500), ct);
                continue;
            }
            var received = Stopwatch.GetTimestamp();
            int used = (entries.Count + Chunk - 1) / Chunk;
            if (free > used) slots.Release(free - used);
            running.RemoveAll(t => t.IsCompleted);
            for (int i = 0; i < entries.Count; i += Chunk)
                running.Add(DecideChunkAsync(entries.GetRange(i, Math.Min(Chunk, entries.Count - i)), received));
        }
        // chunks whose script was sent: their outcome (or their staying pending) is known before we return
        await Task.WhenAll(running);

        async Task DecideChunkAsync(List<(RedisValue Id, byte[]? Payload)> chunk, long received)
        {
            try { await ProcessAsync(store, chunk, received, ct); }
            catch (Exception e) when (e is RedisException or TimeoutException or OperationCanceledException)
            {
                if (!ct.IsCancellationRequested)
                    Log.Warning($"consumer {Consumer}: deciding {chunk.Count} report(s) failed: {e.Message}; they stay pending and are taken over after {store.Options.ClaimIdle.TotalSeconds:0} s");
            }
            finally { slots.Release(); }
        }
    }

    private async Task ClaimLoopAsync(FleetState store, CancellationToken ct)
    {
        var every = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks, store.Options.ClaimIdle.Ticks / 2));
        while (!ct.IsCancellationRequested)
        {
            await Pause(every, ct);
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    var claimed = await store.ClaimStaleAsync(Consumer, ct);
                    if (claimed.Length == 0) break;
                    Log.Info($"consumer {Consumer}: took over {claimed.Length} report(s) left unacknowledged by another consumer");
                    Metrics.Inc("fleet_reports_claimed_total", "Reports taken over from a consumer that did not acknowledge them.");
                    await ProcessAsync(store, claimed.Select(e => (e.Id, (byte[]?)e["p"])).ToList(), Stopwatch.GetTimestamp(), ct);
                    if (claimed.Length < store.Options.BatchSize) break;
                }
            }
            catch (OperationCanceledException) { return; }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                Log.Warning($"consumer {Consumer}: claiming stale reports failed: {e.Message}");
            }
        }
    }

    private async Task TargetsLoopAsync(FleetState store, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Pause(TimeSpan.FromSeconds(1), ct);
            try { await RefreshTargetsAsync(ct); }
            catch (OperationCanceledException) { return; }
            catch (Exception e) when (e is RedisException or TimeoutException) { Log.Debug($"reading run-time targets failed: {e.Message}"); }
            try { await StepRolloutsAsync(store, ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // this loop must outlive any one failure (Redis restarting, loading its AOF, a reply cut short): a dead
                // loop would leave every rollout where it stands
                Log.Warning($"evaluating the rollouts failed ({e.GetType().Name}): {e.Message}; next try in 1 s");
            }
        }
    }

    /// <summary>Reads the rollouts from Redis when their revision moved. Returns whether it did.</summary>
    public async Task<bool> RefreshRolloutsAsync(CancellationToken ct)
    {
        if (_rolloutStore is null) return false;
        var rev = await _rolloutStore.GetRevAsync(ct);
        if (rev == Interlocked.Read(ref _rolloutsRev)) return false;
        _rollouts = await _rolloutStore.ByAppAsync(ct);
        Interlocked.Exchange(ref _rolloutsRev, rev);
        return true;
    }

    /// <summary>Every updater evaluates the gate of each rollout once a second (the move itself is a compare-and-set,
    /// so one of them makes it), writes its convergence counts to Redis and the gauges, and has a wave just released
    /// decided now.</summary>
    private async Task StepRolloutsAsync(FleetState store, CancellationToken ct)
    {
        if (_rolloutStore is null) return;
        await RefreshRolloutsAsync(ct);
        foreach (var r in await _rolloutStore.ListAsync(ct))
        {
            if (r.Status is RolloutStatus.Completed or RolloutStatus.Aborted && r.WaveStartedMs < _clock.GetUtcNow().ToUnixTimeMilliseconds() - 60_000) continue;
            var view = await _rolloutStore.ViewAsync(r, ct);
            foreach (var (state, label) in new[] { (DeviceState.AtTarget, "at_target"), (DeviceState.Pending, "pending"), (DeviceState.Failed, "failed"), (DeviceState.Unreachable, "unreachable"), (DeviceState.Held, "held") })
                Metrics.Set("fleet_rollout_devices", "Devices of a group's rollout by state (at_target, pending, failed, unreachable, held).", view.Count(state), $"group=\"{r.Group}\",state=\"{label}\"");
            Metrics.Set("fleet_rollout_wave", "The rollout's current wave (1-based).", r.Wave + 1, $"group=\"{r.Group}\"");
            var released = await _rolloutStore.StepAsync(view, _clock.GetUtcNow(), ct);
            if (released.Count > 0)
            {
                await RefreshRolloutsAsync(ct);
                await store.RequeueObservedAsync(released, ct);
            }
        }
    }

    private async Task<string?> ResolveAsync(AppEntry app, VersionTarget t, CancellationToken ct)
    {
        if (!t.IsRange) return await _registry.TagExistsAsync(app.Image, t.Text, ct) ? t.Text : null;
        return t.ResolveNewest(await _registry.ListTagsAsync(app.Image, ct));
    }

    /// <summary>Decides on one report outside the stream (it is recorded in Redis like a streamed one).</summary>
    public async Task<Decision> HandleReportAsync(byte[] payload, CancellationToken ct) =>
        (await ProcessAsync(_store ?? throw new InvalidOperationException("the updater needs Redis (RedisFleetBus) to decide"), [(RedisValue.EmptyString, payload)], Stopwatch.GetTimestamp(), ct))[0];

    /// <summary>Decides a batch of reports: parse and compare in memory, then record, claim and acknowledge all of
    /// them in one Redis round trip; update RPCs start in the background. Latency counts from
    /// <paramref name="received"/> (a <see cref="Stopwatch"/> timestamp: when the reports were read).</summary>
    private async Task<Decision[]> ProcessAsync(FleetState store, List<(RedisValue Id, byte[]? Payload)> entries, long received, CancellationToken ct)
    {
        Metrics.Add("fleet_reports_total", "Version reports received.", entries.Count);
        var pre = new Decision?[entries.Count];
        var records = new ReportRecord[entries.Count];
        var apps = new AppEntry?[entries.Count];
        var digests = new string?[entries.Count];
        for (int i = 0; i < entries.Count; i++)
        {
            var (id, payload) = entries[i];
            VersionMessage msg;
            if (payload is null)
            {
                pre[i] = Bad("stream entry without a payload field 'p'");
                records[i] = new ReportRecord(id, null, null, null);
                continue;
            }
            try { msg = WireCodec.DecodeVersion(payload); }
            catch (WireFormatException e)
            {
                pre[i] = Bad(e.Message);
                records[i] = new ReportRecord(id, null, null, null);
                continue;
            }
            if (Log.Level >= LogLevel.Info)
            {
                var deps = msg.Dependencies.Count == 0 ? "" : $" (dependencies logged, not managed: {string.Join(", ", msg.Dependencies.Select(kv => kv.Key + "=" + kv.Value))})";
                Log.Info($"report {msg.Appname} {msg.VersionNumber}{deps}");
            }
            var (d, app, tag, digest, since) = await PreDecideAsync(msg, ct);
            pre[i] = d;
            apps[i] = app;
            digests[i] = digest;
            records[i] = new ReportRecord(id, msg.Appname, msg.VersionNumber, d is null ? tag : null, since);
        }

        if (pre.Any(d => d?.Kind == DecisionKind.Held) && await RefreshRolloutsAsync(ct))
        {
            // a rollout moved since this updater last looked (e.g. a wave was just released): decide those again
            for (int i = 0; i < entries.Count; i++)
            {
                if (pre[i]?.Kind != DecisionKind.Held) continue;
                var msg = WireCodec.DecodeVersion(entries[i].Payload!);
                var (d, app, tag, digest, since) = await PreDecideAsync(msg, ct);
                pre[i] = d;
                apps[i] = app;
                digests[i] = digest;
                records[i] = records[i] with { WantTag = d is null ? tag : null, SinceMs = since };
            }
        }

        var claims = await store.DecideAsync(records, _clock.GetUtcNow(), _cfg.RetryAfter, StaleAfter, _cfg.ErrorRetry, Consumer, ct);
        var latency = Stopwatch.GetElapsedTime(received);
        var result = new Decision[entries.Count];
        for (int i = 0; i < entries.Count; i++)
        {
            var d = pre[i];
            if (d is null)
            {
                var (app, r, tag, c) = (apps[i]!, records[i].Version!, records[i].WantTag!, claims[i]);
                d = c.Verdict switch
                {
                    ClaimVerdict.InFlight => new Decision(DecisionKind.InFlight, app.Name, r, tag, $"an update to {c.Detail} is in flight"),
                    ClaimVerdict.RecentlyAttempted => new Decision(DecisionKind.RecentlyAttempted, app.Name, r, tag,
                        $"{tag} was attempted {c.AgeMs / 1000} s ago ({c.Detail}); next try after {_cfg.RetryAfter.TotalSeconds:0} s"),
                    ClaimVerdict.Resend => new Decision(DecisionKind.Update, app.Name, r, tag,
                        $"re-send {r} -> {tag} via {app.Rpc} with key {c.Detail}: its sender recorded no outcome for {c.AgeMs / 1000} s"),
                    ClaimVerdict.RetryError => new Decision(DecisionKind.Update, app.Name, r, tag,
                        $"retry {r} -> {tag} via {app.Rpc} with key {c.Detail}: the last send failed on the updater's side {c.AgeMs / 1000} s ago (the device answers a key it already ran from its cache)"),
                    ClaimVerdict.ErrorBackoff => new Decision(DecisionKind.RecentlyAttempted, app.Name, r, tag,
                        $"the last send of {tag} (key {c.Detail}) failed on the updater's side; retried in {(c.AgeMs + 999) / 1000} s"),
                    _ => new Decision(DecisionKind.Update, app.Name, r, tag, $"update {r} -> {tag} via {app.Rpc} (key {c.Detail})"),
                };
                if (c.Verdict == ClaimVerdict.ErrorBackoff) RequeueLater(store, app.Name, TimeSpan.FromMilliseconds(c.AgeMs), ct);
                if (c.Verdict is ClaimVerdict.Send or ClaimVerdict.Resend or ClaimVerdict.RetryError)
                {
                    var task = CallAsync(store, app, tag, digests[i], c.Detail, ct);
                    _inflight[task] = 0;
                    _ = task.ContinueWith(t => _inflight.TryRemove(t, out _), TaskScheduler.Default);
                }
            }
            result[i] = Finish(d with { Latency = latency });
        }
        return result;
    }

    private Decision Bad(string reason)
    {
        Metrics.Inc("fleet_bad_input_total", "Malformed reports and stream entries, acknowledged and dropped.");
        return new Decision(DecisionKind.Invalid, "?", null, null, reason);
    }

    private Decision Finish(Decision d)
    {
        Metrics.Observe("fleet_decision_seconds", "Time from receiving a report to the decision.", d.Latency.TotalSeconds);
        Metrics.Inc("fleet_decisions_total", "Decisions by kind.", $"decision=\"{d.Kind.ToString().ToLowerInvariant()}\"");
        var level = d.Kind switch
        {
            DecisionKind.Invalid or DecisionKind.TargetMissing or DecisionKind.RegistryError or DecisionKind.NoDirectory or DecisionKind.PlatformMissing => LogLevel.Warning,
            DecisionKind.Update => LogLevel.Info,
            _ => LogLevel.Debug,
        };
        if (level <= Log.Level)
            Log.Write(level, $"decision {d.App}: {d.Kind}: {d.Reason}", ("app", d.App), ("decision", d.Kind.ToString().ToLowerInvariant()), ("reported", d.Reported), ("target", d.TargetTag));
        Decided?.Invoke(d);
        return d;
    }

    /// <summary>Everything that needs no shared state: a decision, or null and the tag to claim an update to (with the
    /// start of the rollout that sends it, 0 without one: outcomes recorded before it do not hold a new attempt back).</summary>
    private async Task<(Decision? Decision, AppEntry? App, string? Tag, string? Digest, long SinceMs)> PreDecideAsync(VersionMessage msg, CancellationToken ct)
    {
        var (d, app, tag) = await PreDecideCoreAsync(msg, ct);
        if (d is not null) return (d, app, tag, null, 0);
        // the manifest the device is to pull: it must offer the app's platform; the command carries its digest
        PlatformManifest m;
        try { m = await _registry.PlatformManifestAsync(app!.Image, tag!, app.Platform, ct); }
        catch (Exception e) when (e is RegistryException or System.Text.Json.JsonException or HttpRequestException or IOException)
        {
            return (new Decision(DecisionKind.RegistryError, app!.Name, msg.VersionNumber, tag, $"cannot read the manifest of {app.Image}:{tag}: {e.Message}"), app, null, null, 0);
        }
        if (m.Refusal is not null)
            return (new Decision(DecisionKind.PlatformMissing, app.Name, msg.VersionNumber, tag,
                $"refused: the devices of {app.Name} run {app.Platform}, and {m.Refusal}; push an image for {app.Platform} under {tag} (e.g. docker buildx build --platform {app.Platform}) or fix the target or the platform"), app, null, null, 0);
        await WarnIfReportedUnknownAsync(app, msg.VersionNumber, ct);
        var since = _rollouts.TryGetValue(msg.Appname, out var r) ? r.StartedMs : 0;
        return (null, app, tag, m.Digest, since);
    }

    /// <summary>Seed 000, step 1: a reported version the registry does not hold is logged as such (the device runs an
    /// image that cannot be pulled again; a rollback to it would fail). Checked when an update is decided, not on every report.</summary>
    private async Task WarnIfReportedUnknownAsync(AppEntry app, string reported, CancellationToken ct)
    {
        try
        {
            if (!await _registry.TagExistsAsync(app.Image, reported, ct))
            {
                Metrics.Inc("fleet_reported_unknown_total", "Updates decided for a device whose reported version is not in the registry.");
                Log.Write(LogLevel.Warning, $"report {app.Name} {reported}: version {reported} is not in registry {app.Image.Registry} ({app.Image.Repository}): the device runs an image the registry does not hold",
                    ("app", app.Name), ("reported", reported), ("registry", app.Image.ToString()));
            }
        }
        catch (Exception e) when (e is RegistryException or HttpRequestException or IOException)
        {
            Log.Debug($"report {app.Name} {reported}: cannot tell whether the registry holds it: {e.Message}");
        }
    }

    private async Task<(Decision? Decision, AppEntry? App, string? Tag)> PreDecideCoreAsync(VersionMessage msg, CancellationToken ct)
    {
        VersionTarget? rolloutTarget = null;
        if (_rollouts.TryGetValue(msg.Appname, out var rollout) && _cfg.Apps.ContainsKey(msg.Appname))
        {
            if (rollout.HeldReason(msg.Appname) is { } held)
                return (new Decision(DecisionKind.Held, msg.Appname, msg.VersionNumber, rollout.Target, held), _cfg.Apps[msg.Appname], null);
            rolloutTarget = VersionTarget.Parse(rollout.Target);
        }
        if (!_cfg.Apps.TryGetValue(msg.Appname, out var app) || (rolloutTarget ?? TargetOf(app)) is not { } target)
            return (new Decision(DecisionKind.NotListed, msg.Appname, msg.VersionNumber, null, "not listed in APPS_TO_UPDATE; ignored"), app, null);

        if (!target.IsRange && SameVersion(msg.VersionNumber, target.Text))
            return (new Decision(DecisionKind.UpToDate, app.Name, msg.VersionNumber, target.Text, $"runs the target {target}"), app, null);

        string? tag;
        try { tag = await ResolveAsync(app, target, ct); }
        catch (Exception e) when (e is RegistryException or System.Text.Json.JsonException or HttpRequestException or IOException)
        {
            return (new Decision(DecisionKind.RegistryError, app.Name, msg.VersionNumber, null, $"cannot check {app.Image} for {target}: {e.Message}"), app, null);
        }
        if (tag is null)
            return (new Decision(DecisionKind.TargetMissing, app.Name, msg.VersionNumber, null,
                $"refused: target {target} does not exist in registry {app.Image.Registry} ({app.Image.Repository}); push it or fix the target"), app, null);
        if (SameVersion(msg.VersionNumber, tag))
            return (new Decision(DecisionKind.UpToDate, app.Name, msg.VersionNumber, tag, $"runs {tag}, the newest match of {target}"), app, null);
        if (app.Directory is null)
            return (new Decision(DecisionKind.NoDirectory, app.Name, msg.VersionNumber, tag, "refused: no directory configured (APP_TO_DIRECTORY or [apps.NAME] directory)"), app, null);
        return (null, app, tag);
    }

    private static bool SameVersion(string a, string b) =>
        Pep440Version.TryParse(a, out var va) && Pep440Version.TryParse(b, out var vb) ? va == vb : a == b;

    private async Task CallAsync(FleetState store, AppEntry app, string tag, string? digest, string key, CancellationToken ct)
    {
        await Task.Yield();
        var req = new DockerCommandRequest("update_version", app.Directory!, tag) { IdempotencyKey = key, Digest = digest };
        RpcResult result;
        try { result = await _commands.SendAsync(app, req, _cfg.RpcTimeout, ct); }
        catch (OperationCanceledException)
        {
            // left "sent": another updater re-sends it with the same key once it is stale
            Log.Warning($"rpc {app.Name}: cancelled by shutdown; request retracted");
            return;
        }
        catch (Exception e)
        {
            Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", "outcome=\"error\"");
            Log.Write(LogLevel.Error, $"rpc {app.Name}: {app.Rpc} failed: {e.Message}; retried with the same key {key}", ("app", app.Name), ("rpc", app.Rpc), ("key", key), ("outcome", "error"));
            // recorded: retried after the error backoff; not recorded (Redis still away): it stays "sent" and is
            // re-sent once stale. Either way this updater looks again then instead of waiting for the device's next report.
            var recorded = await RecordAsync(store, app, key, "error", e.Message);
            RequeueLater(store, app.Name, recorded ? _cfg.ErrorRetry : StaleAfter, ct);
            return;
        }
        if (result.Outcome == RpcOutcome.TimedOut)
        {
            Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", "outcome=\"timeout\"");
            Log.Write(LogLevel.Warning, $"rpc {app.Name}: {app.Rpc} unreachable: no reply in {_cfg.RpcTimeout.TotalSeconds:0.#} s; request {(result.Retracted ? "retracted" : "already taken by the device")}",
                ("app", app.Name), ("rpc", app.Rpc), ("key", key), ("outcome", "timeout"));
            await RecordAsync(store, app, key, "timeout", result.Retracted ? "no reply; request retracted" : "no reply; the device took the request");
        }
        else
        {
            var ok = result.Response!.Success;
            Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", ok ? "outcome=\"success\"" : "outcome=\"failure\"");
            Log.Write(ok ? LogLevel.Info : LogLevel.Warning, $"rpc {app.Name}: {(ok ? "success" : "failure")}: {result.Response.Message}",
                ("app", app.Name), ("rpc", app.Rpc), ("key", key), ("outcome", ok ? "success" : "failure"));
            await RecordAsync(store, app, key, ok ? "success" : "failure", result.Response.Message);
        }
        RpcCompleted?.Invoke(app.Name, result);
    }

    private async Task<bool> RecordAsync(FleetState store, AppEntry app, string key, string status, string message)
    {
        // the outcome is recorded even during shutdown; if Redis is gone the command turns stale and is re-sent with its key
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await store.CompleteAsync(app.Name, key, status, message, _clock.GetUtcNow(), cts.Token);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException or OperationCanceledException)
        {
            Log.Warning($"rpc {app.Name}: cannot record outcome {status} of {key}: {e.Message}; it will be re-sent with the same key");
            return false;
        }
    }

    private readonly ConcurrentDictionary<string, byte> _requeues = new(StringComparer.Ordinal);

    /// <summary>Puts the app's last observed report back on the stream after <paramref name="delay"/> (one pending
    /// per app in this updater), so that a send to retry is decided when it is due rather than at the device's next
    /// report (every minute by default). Redis away: tried again each second until it answers or the updater stops.</summary>
    private void RequeueLater(FleetState store, string app, TimeSpan delay, CancellationToken ct)
    {
        if (!_requeues.TryAdd(app, 0)) return;
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(delay + TimeSpan.FromMilliseconds(50), ct);
                while (true)
                {
                    try
                    {
                        _requeues.TryRemove(app, out _);
                        await store.RequeueObservedAsync([app], ct);
                        return;
                    }
                    catch (Exception e) when (e is RedisException or TimeoutException)
                    {
                        if (!_requeues.TryAdd(app, 0)) return;
                        Log.Debug($"requeue of {app}'s report failed: {e.Message}; next try in 1 s");
                        await Task.Delay(TimeSpan.FromSeconds(1), ct);
                    }
                }
            }
            catch (OperationCanceledException) { _requeues.TryRemove(app, out _); }
        }, CancellationToken.None);
    }
}
