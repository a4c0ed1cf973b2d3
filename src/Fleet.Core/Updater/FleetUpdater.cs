using System.Collections.Concurrent;
using System.Diagnostics;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Observability;
using Fleet.Core.Registry;
using Fleet.Core.Security;
using Fleet.Core.Versioning;
using Fleet.Core.Wire;

namespace Fleet.Core.Updater;

public enum DecisionKind { Invalid, NotListed, UpToDate, TargetMissing, RegistryError, NoDirectory, InFlight, RecentlyAttempted, Update }

/// <summary>What the updater decided for one version report.</summary>
public sealed record Decision(DecisionKind Kind, string App, string? Reported, string? TargetTag, string Reason)
{
    /// <summary>Time from receiving the report to this decision.</summary>
    public TimeSpan Latency { get; init; }
}

/// <summary>Seed 000's updater: listens on the version channel, compares each report with the user's target
/// (PEP 440), checks the target exists in the registry, and calls <c>update_version</c> on the app's device RPC.
/// Thread-safe: per-app state is guarded, at most one update per app is in flight, and a target just attempted is
/// not retried for <see cref="UpdaterConfig.RetryAfter"/>.</summary>
public sealed class FleetUpdater
{
    private readonly UpdaterConfig _cfg;
    private readonly IFleetBus _bus;
    private readonly RegistryClient _registry;
    private readonly CommlibRpcClient _rpc;
    private readonly CommandSigner? _signer;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, AppState> _state = new();
    private readonly ConcurrentDictionary<Task, byte> _inflight = new();

    public Metrics Metrics { get; }
    /// <summary>Raised after each RPC outcome (tests, bench).</summary>
    public event Action<string, RpcResult>? RpcCompleted;
    /// <summary>Raised after each decision (tests, bench).</summary>
    public event Action<Decision>? Decided;

    private sealed class AppState
    {
        public string? Reported;
        public string? InFlightTarget;
        public string? LastTarget;
        public DateTimeOffset LastAttempt;
    }

    public FleetUpdater(UpdaterConfig cfg, IFleetBus bus, RegistryClient registry, Metrics? metrics = null, TimeProvider? clock = null)
    {
        _cfg = cfg;
        _bus = bus;
        _registry = registry;
        _clock = clock ?? TimeProvider.System;
        Metrics = metrics ?? new Metrics();
        _rpc = new CommlibRpcClient(bus, cfg.WireStyle, _clock);
        _signer = cfg.HmacKey is null ? null : new CommandSigner(cfg.HmacKey, _clock);
    }

    /// <summary>Checks every configured target against the registry and logs the result (seed 000's
    /// validate_apps_to_update). Never throws for a missing target: the service keeps running.</summary>
    public async Task<IReadOnlyDictionary<string, string?>> ValidateTargetsAsync(CancellationToken ct)
    {
        var result = new Dictionary<string, string?>();
        foreach (var app in _cfg.Apps.Values.Where(a => a.Target is not null).OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            try
            {
                var tag = await ResolveAsync(app, ct);
                result[app.Name] = tag;
                if (tag is null) Log.Warning($"target check: {app.Name} -> {app.Target} does not exist in {app.Image}; reports for it will be refused until it is pushed");
                else Log.Info($"target check: {app.Name} -> {app.Target} OK ({app.Image}:{tag})");
            }
            catch (Exception e) when (e is RegistryException or System.Text.Json.JsonException or HttpRequestException or IOException)
            {
                result[app.Name] = null;
                Log.Warning($"target check: {app.Name} -> {app.Target}: registry error: {e.Message}");
            }
        }
        return result;
    }

    /// <summary>Subscribes to the version channel and handles reports until cancelled, then waits for RPCs in flight.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        await using (await _bus.SubscribeAsync(_cfg.Channel, async (payload, token) => await HandleReportAsync(payload, token), ct))
        {
            Log.Info($"listening on {_cfg.Channel} ({_cfg.Apps.Count(a => a.Value.Target is not null)} app(s) with targets)");
            try { await Task.Delay(Timeout.Infinite, ct); }
            catch (OperationCanceledException) { }
        }
        await DrainAsync();
    }

    /// <summary>Waits for every RPC in flight to finish (they end by reply or timeout).</summary>
    public Task DrainAsync() => Task.WhenAll(_inflight.Keys);

    private async Task<string?> ResolveAsync(AppEntry app, CancellationToken ct)
    {
        var t = app.Target!;
        if (!t.IsRange) return await _registry.TagExistsAsync(app.Image, t.Text, ct) ? t.Text : null;
        return t.ResolveNewest(await _registry.ListTagsAsync(app.Image, ct));
    }

    /// <summary>Decides on one report; an update RPC is started in the background.</summary>
    public async Task<Decision> HandleReportAsync(byte[] payload, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        Metrics.Inc("fleet_reports_total", "Version reports received.");
        var d = await DecideAsync(payload, ct) with { Latency = sw.Elapsed };
        Metrics.Observe("fleet_decision_seconds", "Time from receiving a report to the decision.", d.Latency.TotalSeconds);
        Metrics.Inc("fleet_decisions_total", "Decisions by kind.", $"decision=\"{d.Kind.ToString().ToLowerInvariant()}\"");
        var level = d.Kind switch
        {
            DecisionKind.Invalid or DecisionKind.TargetMissing or DecisionKind.RegistryError or DecisionKind.NoDirectory => LogLevel.Warning,
            DecisionKind.Update => LogLevel.Info,
            _ => LogLevel.Debug,
        };
        if (level <= Log.Level) Log.Write(level, $"decision {d.App}: {d.Kind}: {d.Reason}");
        Decided?.Invoke(d);
        return d;
    }

    private async Task<Decision> DecideAsync(byte[] payload, CancellationToken ct)
    {
        VersionMessage msg;
        try { msg = WireCodec.DecodeVersion(payload); }
        catch (WireFormatException e) { return new Decision(DecisionKind.Invalid, "?", null, null, e.Message); }

        if (Log.Level >= LogLevel.Info)
        {
            var deps = msg.Dependencies.Count == 0 ? "" : $" (dependencies logged, not managed: {string.Join(", ", msg.Dependencies.Select(kv => kv.Key + "=" + kv.Value))})";
            Log.Info($"report {msg.Appname} {msg.VersionNumber}{deps}");
        }
        var state = _state.GetOrAdd(msg.Appname, _ => new AppState());
        lock (state) state.Reported = msg.VersionNumber;

        if (!_cfg.Apps.TryGetValue(msg.Appname, out var app) || app.Target is null)
            return new Decision(DecisionKind.NotListed, msg.Appname, msg.VersionNumber, null, "not listed in APPS_TO_UPDATE; ignored");

        if (!app.Target.IsRange && SameVersion(msg.VersionNumber, app.Target.Text))
            return new Decision(DecisionKind.UpToDate, app.Name, msg.VersionNumber, app.Target.Text, $"runs the target {app.Target}");

        string? tag;
        try { tag = await ResolveAsync(app, ct); }
        catch (Exception e) when (e is RegistryException or System.Text.Json.JsonException or HttpRequestException or IOException)
        {
            return new Decision(DecisionKind.RegistryError, app.Name, msg.VersionNumber, null, $"cannot check {app.Image} for {app.Target}: {e.Message}");
        }
        if (tag is null)
            return new Decision(DecisionKind.TargetMissing, app.Name, msg.VersionNumber, null,
                $"refused: target {app.Target} does not exist in registry {app.Image.Registry} ({app.Image.Repository}); push it or fix the target");
        if (SameVersion(msg.VersionNumber, tag))
            return new Decision(DecisionKind.UpToDate, app.Name, msg.VersionNumber, tag, $"runs {tag}, the newest match of {app.Target}");
        if (app.Directory is null)
            return new Decision(DecisionKind.NoDirectory, app.Name, msg.VersionNumber, tag, "refused: no directory configured (APP_TO_DIRECTORY or [apps.NAME] directory)");

        var now = _clock.GetUtcNow();
        lock (state)
        {
            if (state.InFlightTarget is not null)
                return new Decision(DecisionKind.InFlight, app.Name, msg.VersionNumber, tag, $"an update to {state.InFlightTarget} is in flight");
            if (state.LastTarget == tag && now - state.LastAttempt < _cfg.RetryAfter)
                return new Decision(DecisionKind.RecentlyAttempted, app.Name, msg.VersionNumber, tag,
                    $"{tag} was attempted {(now - state.LastAttempt).TotalSeconds:0} s ago; next try after {_cfg.RetryAfter.TotalSeconds:0} s");
            state.InFlightTarget = tag;
            state.LastTarget = tag;
            state.LastAttempt = now;
        }
        var task = CallAsync(app, tag, state, ct);
        _inflight[task] = 0;
        _ = task.ContinueWith(t => _inflight.TryRemove(t, out _), TaskScheduler.Default);
        return new Decision(DecisionKind.Update, app.Name, msg.VersionNumber, tag, $"update {msg.VersionNumber} -> {tag} via {app.Rpc}");
    }

    private static bool SameVersion(string a, string b) =>
        Pep440Version.TryParse(a, out var va) && Pep440Version.TryParse(b, out var vb) ? va == vb : a == b;

    private async Task CallAsync(AppEntry app, string tag, AppState state, CancellationToken ct)
    {
        await Task.Yield();
        try
        {
            var req = new DockerCommandRequest("update_version", app.Directory!, tag);
            if (_signer is not null) req = _signer.Sign(app.Rpc, req, _cfg.CommandTtl);
            RpcResult result;
            try { result = await _rpc.CallAsync(app.Rpc, req, _cfg.RpcTimeout, ct); }
            catch (OperationCanceledException) { Log.Warning($"rpc {app.Name}: cancelled by shutdown; request retracted"); return; }
            catch (Exception e)
            {
                Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", "outcome=\"error\"");
                Log.Error($"rpc {app.Name}: {app.Rpc} failed: {e.Message}");
                return;
            }
            if (result.Outcome == RpcOutcome.TimedOut)
            {
                Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", "outcome=\"timeout\"");
                Log.Warning($"rpc {app.Name}: {app.Rpc} unreachable: no reply in {_cfg.RpcTimeout.TotalSeconds:0.#} s; request {(result.Retracted ? "retracted" : "already taken by the device")}");
            }
            else
            {
                var ok = result.Response!.Success;
                Metrics.Inc("fleet_rpc_total", "Update RPC outcomes.", ok ? "outcome=\"success\"" : "outcome=\"failure\"");
                Log.Write(ok ? LogLevel.Info : LogLevel.Warning, $"rpc {app.Name}: {(ok ? "success" : "failure")}: {result.Response.Message}");
            }
            RpcCompleted?.Invoke(app.Name, result);
        }
        finally
        {
            lock (state) state.InFlightTarget = null;
        }
    }
}
