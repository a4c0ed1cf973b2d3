using System.Globalization;
using Fleet.Core.Versioning;
using StackExchange.Redis;

namespace Fleet.Core.State;

/// <summary>Where a rollout stands: <c>running</c> (its released waves get the target), <c>paused</c> and
/// <c>halted</c> (by an operator, or by itself when a wave failed or missed its deadline: nothing new is sent),
/// <c>aborted</c> (stopped for good: its devices are held until a new rollout of the group), <c>completed</c>
/// (every device reached the target; the target stays the group's).</summary>
public static class RolloutStatus
{
    public const string Running = "running", Paused = "paused", Halted = "halted", Aborted = "aborted", Completed = "completed";
}

/// <summary>A device's place in a rollout.</summary>
public enum DeviceState { AtTarget, Pending, Failed, Unreachable, Held }

/// <summary>A rollout of one exact version to a device group, in waves: wave i covers the members
/// <c>[Bounds[i-1], Bounds[i])</c> in <see cref="Members"/> order (cumulative counts; the last is every member).
/// Waves up to <see cref="Wave"/> are released while running.</summary>
public sealed record Rollout(
    string Group, string Target, string Status, int Wave, IReadOnlyList<int> Bounds, IReadOnlyList<string> Members,
    long StartedMs, long WaveStartedMs, TimeSpan WaveTimeout, int MaxFailed, string Reason, string WaveSpec)
{
    /// <summary>The wave (0-based) of a member; -1 when the app is not a member.</summary>
    public int WaveOf(string app)
    {
        int i = IndexOf(app);
        if (i < 0) return -1;
        for (int w = 0; w < Bounds.Count; w++) if (i < Bounds[w]) return w;
        return Bounds.Count - 1;
    }

    private int IndexOf(string app)
    {
        for (int i = 0; i < Members.Count; i++) if (Members[i] == app) return i;
        return -1;
    }

    /// <summary>Whether the rollout sends its target to <paramref name="app"/> now.</summary>
    public bool Releases(string app) =>
        Status == RolloutStatus.Completed || (Status == RolloutStatus.Running && WaveOf(app) is var w && w >= 0 && w <= Wave);

    /// <summary>Why the rollout sends nothing to <paramref name="app"/> now (null when it <see cref="Releases"/> it).</summary>
    public string? HeldReason(string app)
    {
        if (Releases(app)) return null;
        return Status switch
        {
            RolloutStatus.Running => $"held by the rollout of group {Group} to {Target}: its wave {WaveOf(app) + 1} of {Bounds.Count} has not started (wave {Wave + 1} runs)",
            RolloutStatus.Paused => $"held: the rollout of group {Group} to {Target} is paused",
            RolloutStatus.Halted => $"held: the rollout of group {Group} to {Target} halted: {Reason}",
            _ => $"held: the rollout of group {Group} to {Target} was aborted; start a new rollout of the group to send anything",
        };
    }

    /// <summary>Cumulative wave sizes from a spec such as <c>1,10%,50%</c> for <paramref name="members"/> devices:
    /// each entry is a device count or a percentage of the group (rounded up), cumulative; entries that add nothing are
    /// dropped, and a last wave with the rest is added when the spec stops short of the whole group.</summary>
    public static int[] ParseWaves(string spec, int members)
    {
        if (members <= 0) throw new FormatException("the group has no members");
        var bounds = new List<int>();
        foreach (var raw in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int n;
            if (raw.EndsWith('%'))
            {
                if (!double.TryParse(raw[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var pct) || pct <= 0 || pct > 100)
                    throw new FormatException($"wave '{raw}' in '{spec}': a percentage must be above 0 and at most 100");
                n = (int)Math.Ceiling(members * pct / 100.0);
            }
            else if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out n) || n <= 0)
            {
                throw new FormatException($"wave '{raw}' in '{spec}': give a device count (1, 5) or a percentage of the group (10%)");
            }
            n = Math.Min(n, members);
            if (bounds.Count == 0 || n > bounds[^1]) bounds.Add(n);
        }
        if (bounds.Count == 0 || bounds[^1] < members) bounds.Add(members);
        return [.. bounds];
    }
}

/// <summary>One device of a rollout as seen now.</summary>
public sealed record RolloutDevice(string App, int Wave, DeviceState State, string? Version, string Message);

/// <summary>A rollout with each member's state and the counts per state (the convergence gauges).</summary>
public sealed record RolloutView(Rollout Rollout, IReadOnlyList<RolloutDevice> Devices)
{
    public int Count(DeviceState s) => Devices.Count(d => d.State == s);

    /// <summary>The devices of the released waves (all up to the current one).</summary>
    public IEnumerable<RolloutDevice> Released => Devices.Where(d => d.Wave <= Rollout.Wave);
}

/// <summary>What the gate of the running wave says.</summary>
public enum GateVerdict { Wait, Advance, Complete, Halt }

/// <summary>Rollouts of a target to device groups in waves, their state in Redis (so every updater, and fleetctl, sees
/// the same rollout, and an updater killed at any point loses nothing), and the gate between waves:
/// the next wave starts only when every device of the released waves reports the target (failures up to
/// <see cref="Rollout.MaxFailed"/> tolerated); more failures, or a wave past its deadline, halt the rollout with the
/// reason. Transitions are compare-and-set scripts: several updaters evaluate the gate and one of them moves it.</summary>
public sealed class RolloutStore(IDatabase db, FleetStateOptions options)
{
    public FleetStateOptions Options { get; } = options;
    private string Key(string group) => Options.Prefix + ":rollout:" + group;
    /// <summary>Set of the groups that have a rollout.</summary>
    public string Index => Options.Prefix + ":rollouts";
    /// <summary>Hash app → the group whose rollout the app follows (the latest started).</summary>
    public string Of => Options.Prefix + ":rollout:of";
    /// <summary>Incremented on every change of any rollout (updaters reload their view when it moves).</summary>
    public string Rev => Options.Prefix + ":rollouts:rev";

    // KEYS: rollout, index, of, rev.  ARGV: group, now, fields (k, v, ...) then '--', members...
    private const string StartScript = """
        local st = redis.call('HGET', KEYS[1], 'status')
        if st == 'running' or st == 'paused' then return st end
        redis.call('DEL', KEYS[1])
        local i = 3
        while ARGV[i] ~= '--' do
          redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
          i = i + 2
        end
        for j = i + 1, #ARGV do redis.call('HSET', KEYS[3], ARGV[j], ARGV[1]) end
        redis.call('SADD', KEYS[2], ARGV[1])
        redis.call('INCR', KEYS[4])
        return 'ok'
        """;

    // KEYS: rollout, rev.  ARGV: allowed statuses (",a,b,"), expected wave ('' = any), then fields (k, v, ...).
    // Returns 'ok', or the current status when it is not allowed (or 'moved' when the wave changed, 'none' when absent).
    private const string TransitionScript = """
        local st = redis.call('HGET', KEYS[1], 'status')
        if not st then return 'none' end
        if not string.find(ARGV[1], ',' .. st .. ',', 1, true) then return st end
        if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'wave') ~= ARGV[2] then return 'moved' end
        for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
        redis.call('INCR', KEYS[2])
        return 'ok'
        """;

    private static string Ms(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>Starts a rollout of <paramref name="target"/> to <paramref name="members"/> (in this order), replacing a
    /// finished one of the group. Returns null, or the status of the group's rollout that prevents it (running, paused).</summary>
    public async Task<string?> StartAsync(string group, IReadOnlyList<string> members, string target, string waveSpec, TimeSpan waveTimeout, int maxFailed, DateTimeOffset now, CancellationToken ct)
    {
        var bounds = Rollout.ParseWaves(waveSpec, members.Count);
        var n = now.ToUnixTimeMilliseconds();
        var args = new List<RedisValue>
        {
            group, n,
            "target", target, "status", RolloutStatus.Running, "wave", 0, "bounds", string.Join(',', bounds), "members", string.Join(',', members),
            "started", n, "wave_started", n, "wave_timeout_ms", (long)waveTimeout.TotalMilliseconds, "max_failed", maxFailed, "reason", "", "waves", waveSpec,
            "--",
        };
        foreach (var m in members) args.Add(m);
        var r = (string?)await db.ScriptEvaluateAsync(StartScript, [Key(group), Index, Of, Rev], [.. args]).WaitAsync(ct);
        return r == "ok" ? null : r;
    }

    /// <summary>Moves the group's rollout from one of <paramref name="from"/> to <paramref name="to"/> (pause, resume, abort,
    /// halt, complete), only while it is still at <paramref name="expectedWave"/> when given. Returns "ok", the current
    /// status when the move does not apply, "moved" or "none".</summary>
    public async Task<string> TransitionAsync(string group, IReadOnlyList<string> from, string to, int? expectedWave, string reason, DateTimeOffset now, CancellationToken ct, int? newWave = null)
    {
        var args = new List<RedisValue> { "," + string.Join(',', from) + ",", expectedWave?.ToString(CultureInfo.InvariantCulture) ?? "", "status", to };
        if (reason.Length > 0 || to != RolloutStatus.Halted) { args.Add("reason"); args.Add(reason); }
        if (to == RolloutStatus.Running || newWave is not null) { args.Add("wave_started"); args.Add(now.ToUnixTimeMilliseconds()); }
        if (newWave is { } w) { args.Add("wave"); args.Add(w); }
        return (string?)await db.ScriptEvaluateAsync(TransitionScript, [Key(group), Rev], [.. args]).WaitAsync(ct) ?? "none";
    }

    public async Task<long> GetRevAsync(CancellationToken ct) => (long?)await db.StringGetAsync(Rev).WaitAsync(ct) ?? 0;

    public async Task<Rollout?> GetAsync(string group, CancellationToken ct)
    {
        var h = (await db.HashGetAllAsync(Key(group)).WaitAsync(ct)).ToDictionary(e => (string)e.Name!, e => (string?)e.Value ?? "", StringComparer.Ordinal);
        if (!h.TryGetValue("status", out var status)) return null;
        long L(string k) => long.TryParse(h.GetValueOrDefault(k), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0;
        return new Rollout(group, h.GetValueOrDefault("target", ""), status, (int)L("wave"),
            h.GetValueOrDefault("bounds", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
            h.GetValueOrDefault("members", "").Split(',', StringSplitOptions.RemoveEmptyEntries),
            L("started"), L("wave_started"), TimeSpan.FromMilliseconds(L("wave_timeout_ms")), (int)L("max_failed"), h.GetValueOrDefault("reason", ""), h.GetValueOrDefault("waves", ""));
    }

    /// <summary>Every rollout, by group.</summary>
    public async Task<IReadOnlyList<Rollout>> ListAsync(CancellationToken ct)
    {
        var groups = (await db.SetMembersAsync(Index).WaitAsync(ct)).Select(g => (string)g!).Order(StringComparer.Ordinal).ToList();
        var list = new List<Rollout>();
        foreach (var g in groups) if (await GetAsync(g, ct) is { } r) list.Add(r);
        return list;
    }

    /// <summary>Which rollout each app follows now: the one of the group it was last started with, if it is a member.</summary>
    public async Task<IReadOnlyDictionary<string, Rollout>> ByAppAsync(CancellationToken ct)
    {
        var rollouts = (await ListAsync(ct)).ToDictionary(r => r.Group, StringComparer.Ordinal);
        var of = await db.HashGetAllAsync(Of).WaitAsync(ct);
        var map = new Dictionary<string, Rollout>(StringComparer.Ordinal);
        foreach (var e in of)
            if (rollouts.TryGetValue((string)e.Value!, out var r) && r.WaveOf((string)e.Name!) >= 0) map[(string)e.Name!] = r;
        return map;
    }

    /// <summary>Each member's state now, from the observed versions and the command records (<see cref="FleetState"/>).</summary>
    public async Task<RolloutView> ViewAsync(Rollout r, CancellationToken ct)
    {
        var observed = db.HashGetAsync(Options.Observed, r.Members.Select(m => (RedisValue)m).ToArray());
        var batch = db.CreateBatch();
        var cmds = r.Members.Select(m => batch.HashGetAsync(Options.CommandKey(m), ["target", "status", "message", "at"])).ToArray();
        batch.Execute();
        await Task.WhenAll(cmds.Append<Task>(observed)).WaitAsync(ct);
        var devices = new List<RolloutDevice>(r.Members.Count);
        for (int i = 0; i < r.Members.Count; i++)
        {
            var app = r.Members[i];
            var wave = r.WaveOf(app);
            var ov = (string?)observed.Result[i];
            var version = ov?.Split('\t')[0];
            var c = cmds[i].Result;
            var (ctarget, cstatus, cmessage) = ((string?)c[0], (string?)c[1], (string?)c[2] ?? "");
            // an outcome recorded before the rollout started is an earlier attempt's (e.g. of a rollout halted by it,
            // then aborted and started again after a fix): it says nothing about this rollout
            if (cstatus is not null and not "sent" && (long?)c[3] is { } at && at < r.StartedMs) ctarget = null;
            DeviceState state;
            string message = "";
            if (version is not null && SameVersion(version, r.Target)) state = DeviceState.AtTarget;
            else if (r.Status != RolloutStatus.Completed && wave > r.Wave) state = DeviceState.Held;
            // failed: the device answered success:false (its install failed and rolled back); a timeout, or an error
            // of the updater's own call (e.g. Redis restarting under it), says nothing about the device: unreachable
            else if (ctarget is not null && SameVersion(ctarget, r.Target) && cstatus == "failure") { state = DeviceState.Failed; message = cmessage; }
            else if (ctarget is not null && SameVersion(ctarget, r.Target) && cstatus is "timeout" or "error") { state = DeviceState.Unreachable; message = cmessage; }
            else state = DeviceState.Pending;
            devices.Add(new RolloutDevice(app, wave, state, version, message));
        }
        return new RolloutView(r, devices);
    }

    public static bool SameVersion(string a, string b) =>
        Pep440Version.TryParse(a, out var va) && Pep440Version.TryParse(b, out var vb) ? va == vb : a == b;

    /// <summary>The gate of a running rollout: halt (with the reason) when more released devices failed than allowed or
    /// the wave is past its deadline; advance, or complete after the last wave, when every released device is at the
    /// target (or failed, within the allowance); else wait.</summary>
    public static (GateVerdict Verdict, string Reason) Gate(RolloutView v, DateTimeOffset now)
    {
        var r = v.Rollout;
        if (r.Status != RolloutStatus.Running) return (GateVerdict.Wait, "");
        var released = v.Released.ToList();
        var failed = released.Where(d => d.State == DeviceState.Failed).ToList();
        var wave = $"wave {r.Wave + 1} of {r.Bounds.Count}";
        if (failed.Count > r.MaxFailed)
            return (GateVerdict.Halt, $"{wave}: {failed.Count} device(s) failed {r.Target} (at most {r.MaxFailed} allowed): " +
                string.Join("; ", failed.Select(d => $"{d.App}: {Short(d.Message)}")));
        if (released.All(d => d.State is DeviceState.AtTarget or DeviceState.Failed))
            return (r.Wave + 1 >= r.Bounds.Count ? GateVerdict.Complete : GateVerdict.Advance, "");
        if (r.WaveTimeout > TimeSpan.Zero && now.ToUnixTimeMilliseconds() - r.WaveStartedMs > r.WaveTimeout.TotalMilliseconds)
        {
            var late = released.Where(d => d.State is DeviceState.Pending or DeviceState.Unreachable).ToList();
            return (GateVerdict.Halt, $"{wave} did not reach {r.Target} within {r.WaveTimeout.TotalSeconds:0} s: " +
                string.Join(", ", late.Select(d => $"{d.App} ({(d.State == DeviceState.Unreachable ? "unreachable" : "pending")}, runs {d.Version ?? "unknown"})")));
        }
        return (GateVerdict.Wait, "");
    }

    private static string Short(string s) => s.Length <= 200 ? s : s[..200] + "...";

    /// <summary>Applies the gate's verdict (compare-and-set on the wave, so one of several updaters moves it) and writes
    /// the convergence counts into the rollout's hash. Returns the members whose wave was just released (to be
    /// decided now), else an empty list.</summary>
    public async Task<IReadOnlyList<string>> StepAsync(RolloutView v, DateTimeOffset now, CancellationToken ct)
    {
        var r = v.Rollout;
        await WriteGaugesAsync(v, now, ct);
        var (verdict, reason) = Gate(v, now);
        switch (verdict)
        {
            case GateVerdict.Halt:
                if (await TransitionAsync(r.Group, [RolloutStatus.Running], RolloutStatus.Halted, r.Wave, reason, now, ct) == "ok")
                    AppModule.Runtime.Log.Write(AppModule.Runtime.LogLevel.Warning, $"rollout of group {r.Group} to {r.Target} halted: {reason}", ("group", r.Group), ("target", r.Target), ("status", RolloutStatus.Halted));
                return [];
            case GateVerdict.Complete:
                if (await TransitionAsync(r.Group, [RolloutStatus.Running], RolloutStatus.Completed, r.Wave, "", now, ct) == "ok")
                    AppModule.Runtime.Log.Write(AppModule.Runtime.LogLevel.Info, $"rollout of group {r.Group} to {r.Target} completed: {v.Count(DeviceState.AtTarget)} of {r.Members.Count} device(s) at the target", ("group", r.Group), ("target", r.Target), ("status", RolloutStatus.Completed));
                return [];
            case GateVerdict.Advance:
                if (await TransitionAsync(r.Group, [RolloutStatus.Running], RolloutStatus.Running, r.Wave, "", now, ct, newWave: r.Wave + 1) != "ok") return [];
                var next = r.Members.Where(m => r.WaveOf(m) == r.Wave + 1).ToList();
                AppModule.Runtime.Log.Write(AppModule.Runtime.LogLevel.Info, $"rollout of group {r.Group} to {r.Target}: wave {r.Wave + 1} converged; wave {r.Wave + 2} of {r.Bounds.Count} starts ({next.Count} device(s))",
                    ("group", r.Group), ("target", r.Target), ("wave", (r.Wave + 2).ToString(CultureInfo.InvariantCulture)));
                return next;
            default:
                return [];
        }
    }

    private async Task WriteGaugesAsync(RolloutView v, DateTimeOffset now, CancellationToken ct) =>
        await db.HashSetAsync(Key(v.Rollout.Group),
        [
            new("at_target", v.Count(DeviceState.AtTarget)), new("pending", v.Count(DeviceState.Pending)),
            new("failed", v.Count(DeviceState.Failed)), new("unreachable", v.Count(DeviceState.Unreachable)),
            new("held", v.Count(DeviceState.Held)), new("gauges_at", now.ToUnixTimeMilliseconds()),
        ]).WaitAsync(ct);
}
