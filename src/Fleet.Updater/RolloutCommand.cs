using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Hosting;
using Fleet.Core.State;
using Fleet.Core.Versioning;

namespace Fleet.Updater;

/// <summary>One device of a rollout, as <c>rollout status --json</c> prints it.</summary>
public sealed record DeviceJson(
    [property: JsonPropertyName("app")] string App,
    [property: JsonPropertyName("wave")] int Wave,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("version")] string? Version,
    [property: JsonPropertyName("message")] string Message);

/// <summary>A rollout and its convergence, as <c>rollout status --json</c> prints it (an array of these).</summary>
public sealed record RolloutJson(
    [property: JsonPropertyName("group")] string Group,
    [property: JsonPropertyName("target")] string Target,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("wave")] int Wave,
    [property: JsonPropertyName("waves")] int Waves,
    [property: JsonPropertyName("wave_spec")] string WaveSpec,
    [property: JsonPropertyName("bounds")] IReadOnlyList<int> Bounds,
    [property: JsonPropertyName("started_unix_ms")] long StartedUnixMs,
    [property: JsonPropertyName("wave_started_unix_ms")] long WaveStartedUnixMs,
    [property: JsonPropertyName("wave_timeout_seconds")] double WaveTimeoutSeconds,
    [property: JsonPropertyName("max_failed")] int MaxFailed,
    [property: JsonPropertyName("counts")] Dictionary<string, int> Counts,
    [property: JsonPropertyName("devices")] IReadOnlyList<DeviceJson> Devices);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(List<RolloutJson>))]
public sealed partial class RolloutJsonContext : JsonSerializerContext;

/// <summary>
/// The operator's side of rollouts (what issue 15 calls fleetctl), a subcommand of fleet-updater so it reads the same
/// configuration (groups, Redis, state prefix) as the service it steers:
/// <code>
/// fleet-updater [--config FILE] rollout start GROUP VERSION [--waves 1,10%,50%] [--wave-timeout SECONDS] [--max-failed N]
/// fleet-updater [--config FILE] rollout status [GROUP] [--json]
/// fleet-updater [--config FILE] rollout pause|resume|abort GROUP
/// </code>
/// <c>status</c> prints the answer on stdout (a table, or JSON with --json); everything else logs on stderr only.
/// Exit codes are in <see cref="Program"/>'s table.
/// </summary>
public static class RolloutCommand
{
    public const string Usage = "usage: fleet-updater [--config FILE] rollout start GROUP VERSION [--waves 1,10%,50%] [--wave-timeout SECONDS] [--max-failed N]\n"
        + "       fleet-updater [--config FILE] rollout status [GROUP] [--json]\n"
        + "       fleet-updater [--config FILE] rollout pause|resume|abort GROUP";

    public static async Task<int> RunAsync(UpdaterConfig cfg, string[] args, CancellationToken ct)
    {
        if (args.Length == 0) throw new UsageException("rollout: missing the operation\n" + Usage);
        var op = args[0];
        var positional = new List<string>();
        string? waves = null;
        TimeSpan? waveTimeout = null;
        int? maxFailed = null;
        bool json = false;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json": json = true; break;
                case "--waves" when i + 1 < args.Length: waves = args[++i]; break;
                case "--wave-timeout" when i + 1 < args.Length: waveTimeout = TimeSpan.FromSeconds(Number(args[++i], "--wave-timeout")); break;
                case "--max-failed" when i + 1 < args.Length: maxFailed = Number(args[++i], "--max-failed"); break;
                case var a when a.StartsWith('-'): throw new UsageException($"rollout {op}: unknown option '{a}'\n" + Usage);
                default: positional.Add(args[i]); break;
            }
        }

        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, ct);
        var store = new RolloutStore(bus.Database, cfg.State);
        switch (op)
        {
            case "start":
                {
                    if (positional.Count != 2) throw new UsageException("rollout start: give GROUP and VERSION\n" + Usage);
                    var (group, version) = (positional[0], positional[1]);
                    var members = MembersOf(cfg, group);
                    VersionTarget target;
                    try { target = VersionTarget.Parse(version); }
                    catch (FormatException e) { throw new UsageException($"rollout start: version '{version}': {e.Message}"); }
                    if (target.IsRange) throw new UsageException($"rollout start: '{version}' is a range; a rollout goes to one version (e.g. 2.1.0), so that every device converges to the same one");
                    var spec = waves ?? cfg.RolloutWaves;
                    int[] bounds;
                    try { bounds = Rollout.ParseWaves(spec, members.Count); }
                    catch (FormatException e) { throw new UsageException("rollout start: --waves: " + e.Message); }
                    var refused = await store.StartAsync(group, members, version, spec, waveTimeout ?? cfg.RolloutWaveTimeout, maxFailed ?? cfg.RolloutMaxFailed, DateTimeOffset.UtcNow, ct);
                    if (refused is not null)
                    {
                        Log.Error($"rollout start: group {group} has a rollout that is {refused}; abort it first (fleet-updater rollout abort {group})");
                        return 5;
                    }
                    Log.Info($"rollout of group {group} ({members.Count} device(s)) to {version} started: waves of {string.Join(", ", bounds)} device(s) (cumulative)");
                    if (await store.GetAsync(group, ct) is { } started)
                        await new FleetState(bus.Database, cfg.State).RequeueObservedAsync(started.Members.Where(m => started.WaveOf(m) == 0).ToList(), ct);
                    return 0;
                }
            case "pause" or "resume" or "abort":
                {
                    if (positional.Count != 1) throw new UsageException($"rollout {op}: give the GROUP\n" + Usage);
                    var group = positional[0];
                    var (from, to) = op switch
                    {
                        "pause" => (new[] { RolloutStatus.Running }, RolloutStatus.Paused),
                        "resume" => (new[] { RolloutStatus.Paused }, RolloutStatus.Running),
                        _ => (new[] { RolloutStatus.Running, RolloutStatus.Paused, RolloutStatus.Halted }, RolloutStatus.Aborted),
                    };
                    var r = await store.TransitionAsync(group, from, to, null, op == "abort" ? "aborted by the operator" : "", DateTimeOffset.UtcNow, ct);
                    if (r != "ok")
                    {
                        Log.Error(r == "none" ? $"rollout {op}: group {group} has no rollout; start one with: fleet-updater rollout start {group} VERSION"
                            : r == RolloutStatus.Halted && op == "resume" ? $"rollout resume: the rollout of group {group} halted by itself ({(await store.GetAsync(group, ct))?.Reason}); fix the devices, then abort it and start a new one (devices at the target stay there)"
                            : $"rollout {op}: the rollout of group {group} is {r}; {op} applies to a rollout that is {string.Join(" or ", from)}");
                        return 5;
                    }
                    Log.Info($"rollout of group {group}: {to}");
                    if (op == "resume" && await store.GetAsync(group, ct) is { } resumed)
                        await new FleetState(bus.Database, cfg.State).RequeueObservedAsync(resumed.Members.Where(m => resumed.WaveOf(m) <= resumed.Wave).ToList(), ct);
                    return 0;
                }
            case "status":
                {
                    if (positional.Count > 1) throw new UsageException("rollout status: at most one GROUP\n" + Usage);
                    var rollouts = new List<Rollout>();
                    if (positional.Count == 1)
                    {
                        var one = await store.GetAsync(positional[0], ct);
                        if (one is null)
                        {
                            Log.Error($"rollout status: group {positional[0]} has no rollout");
                            return 5;
                        }
                        rollouts.Add(one);
                    }
                    else rollouts.AddRange(await store.ListAsync(ct));
                    var views = new List<RolloutView>();
                    foreach (var r in rollouts) views.Add(await store.ViewAsync(r, ct));
                    Console.Out.Write(json ? Json(views) : Table(views, detail: positional.Count == 1));
                    Console.Out.Flush();
                    return views.Any(v => v.Rollout.Status == RolloutStatus.Halted) ? 6 : 0;
                }
            default:
                throw new UsageException($"rollout: unknown operation '{op}'\n" + Usage);
        }
    }

    private static int Number(string text, string what) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"{what} '{text}' is not a non-negative integer");

    private static IReadOnlyList<string> MembersOf(UpdaterConfig cfg, string group) =>
        cfg.Groups.TryGetValue(group, out var m) ? m
        : throw new UsageException($"rollout start: no group '{group}' in the configuration; known: {string.Join(", ", cfg.Groups.Keys.Order(StringComparer.Ordinal))} (define [groups.{group}] members = [...])");

    private static string StateName(DeviceState s) => s switch
    {
        DeviceState.AtTarget => "at_target",
        DeviceState.Pending => "pending",
        DeviceState.Failed => "failed",
        DeviceState.Unreachable => "unreachable",
        _ => "held",
    };

    private static readonly DeviceState[] States = [DeviceState.AtTarget, DeviceState.Pending, DeviceState.Failed, DeviceState.Unreachable, DeviceState.Held];

    private static string Json(List<RolloutView> views)
    {
        var list = views.Select(v =>
        {
            var r = v.Rollout;
            return new RolloutJson(r.Group, r.Target, r.Status, r.Reason, r.Wave + 1, r.Bounds.Count, r.WaveSpec, r.Bounds, r.StartedMs, r.WaveStartedMs,
                r.WaveTimeout.TotalSeconds, r.MaxFailed, States.ToDictionary(StateName, v.Count),
                v.Devices.Select(d => new DeviceJson(d.App, d.Wave + 1, StateName(d.State), d.Version, d.Message)).ToList());
        }).ToList();
        return JsonSerializer.Serialize(list, RolloutJsonContext.Default.ListRolloutJson) + "\n";
    }

    private static string Table(List<RolloutView> views, bool detail)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"GROUP",-16} {"TARGET",-12} {"STATUS",-10} {"WAVE",-6} {"AT_TARGET",9} {"PENDING",8} {"FAILED",7} {"UNREACHABLE",11} {"HELD",5}  REASON");
        foreach (var v in views)
        {
            var r = v.Rollout;
            sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Group,-16} {r.Target,-12} {r.Status,-10} {$"{r.Wave + 1}/{r.Bounds.Count}",-6} {v.Count(DeviceState.AtTarget),9} {v.Count(DeviceState.Pending),8} {v.Count(DeviceState.Failed),7} {v.Count(DeviceState.Unreachable),11} {v.Count(DeviceState.Held),5}  {r.Reason}");
            foreach (var s in new[] { DeviceState.Failed, DeviceState.Unreachable })
            {
                var which = v.Devices.Where(d => d.State == s).Select(d => d.App).ToList();
                if (which.Count > 0) sb.AppendLine(CultureInfo.InvariantCulture, $"  {StateName(s)}: {string.Join(", ", which)}");
            }
        }
        if (detail && views.Count == 1)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"{"APP",-24} {"WAVE",4} {"STATE",-12} {"VERSION",-12} MESSAGE");
            foreach (var d in views[0].Devices)
                sb.AppendLine(CultureInfo.InvariantCulture, $"{d.App,-24} {d.Wave + 1,4} {StateName(d.State),-12} {d.Version ?? "-",-12} {d.Message}");
        }
        return sb.ToString();
    }
}
