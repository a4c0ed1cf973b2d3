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

/// <summary>One app's targets, as <c>target list --json</c> prints it (an array of these).</summary>
public sealed record TargetJson(
    [property: JsonPropertyName("app")] string App,
    [property: JsonPropertyName("configured")] string? Configured,
    [property: JsonPropertyName("runtime")] string? Runtime,
    [property: JsonPropertyName("effective")] string? Effective,
    [property: JsonPropertyName("rollout_group")] string? RolloutGroup);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(List<TargetJson>))]
public sealed partial class TargetJsonContext : JsonSerializerContext;

/// <summary>
/// Run-time targets (no restart; every updater applies a change within a second; they override the configured target):
/// <code>
/// fleet-updater [--config FILE] target set APP VERSION|RANGE     e.g. 2.1.0, "~2.1", ">=1.5,&lt;2"
/// fleet-updater [--config FILE] target clear APP                 no target: the app is not updated
/// fleet-updater [--config FILE] target reset APP                 back to the configured target
/// fleet-updater [--config FILE] target list [--json]             configured, run-time, effective, and the rollout the app follows
/// </code>
/// An app in a rollout follows the rollout (see <see cref="RolloutCommand"/>) whatever its targets say.
/// </summary>
public static class TargetCommand
{
    public const string Usage = "usage: fleet-updater [--config FILE] target set APP VERSION|RANGE | clear APP | reset APP | list [--json]";

    public static async Task<int> RunAsync(UpdaterConfig cfg, string[] args, CancellationToken ct)
    {
        if (args.Length == 0) throw new UsageException("target: missing the operation\n" + Usage);
        bool json = args.Contains("--json");
        var rest = args.Skip(1).Where(a => a != "--json").ToList();
        if (rest.FirstOrDefault(a => a.StartsWith('-')) is { } bad) throw new UsageException($"target {args[0]}: unknown option '{bad}'\n" + Usage);
        AppEntry App(string name) => cfg.Apps.TryGetValue(name, out var a) ? a
            : throw new UsageException($"target: '{name}' is not a configured app (the updater ignores apps it does not list); known: {string.Join(", ", cfg.Apps.Keys.Order(StringComparer.Ordinal))}");

        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, ct);
        var state = new FleetState(bus.Database, cfg.State);
        switch (args[0])
        {
            case "set":
                {
                    if (rest.Count != 2) throw new UsageException("target set: give APP and VERSION (or a range)\n" + Usage);
                    var app = App(rest[0]);
                    try { _ = VersionTarget.Parse(rest[1]); }
                    catch (FormatException e) { throw new UsageException($"target set {app.Name}: '{rest[1]}': {e.Message}"); }
                    await state.SetTargetAsync(app.Name, rest[1], ct);
                    Log.Info($"run-time target of {app.Name}: {rest[1]} (configured: {app.Target?.Text ?? "none"})");
                    return 0;
                }
            case "clear" or "reset":
                {
                    if (rest.Count != 1) throw new UsageException($"target {args[0]}: give the APP\n" + Usage);
                    var app = App(rest[0]);
                    await state.SetTargetAsync(app.Name, args[0] == "clear" ? "" : null, ct);
                    Log.Info(args[0] == "clear" ? $"run-time target of {app.Name} cleared: it is not updated" : $"{app.Name} follows its configured target again ({app.Target?.Text ?? "none"})");
                    return 0;
                }
            case "list":
                {
                    if (rest.Count != 0) throw new UsageException("target list takes no argument\n" + Usage);
                    var (_, runtime) = await state.GetTargetsAsync(ct);
                    var rollouts = await new RolloutStore(bus.Database, cfg.State).ByAppAsync(ct);
                    var rows = cfg.Apps.Values.OrderBy(a => a.Name, StringComparer.Ordinal).Select(a =>
                    {
                        var rt = runtime.TryGetValue(a.Name, out var t) ? t : null;
                        var effective = rt is null ? a.Target?.Text : rt.Length == 0 ? null : rt;
                        return new TargetJson(a.Name, a.Target?.Text, rt, effective, rollouts.TryGetValue(a.Name, out var r) ? r.Group : null);
                    }).ToList();
                    if (json) Console.Out.Write(JsonSerializer.Serialize(rows, TargetJsonContext.Default.ListTargetJson) + "\n");
                    else
                    {
                        var sb = new StringBuilder();
                        sb.Append($"{"APP",-24} {"CONFIGURED",-14} {"RUNTIME",-14} {"EFFECTIVE",-14} ROLLOUT\n");
                        foreach (var r in rows)
                            sb.Append($"{r.App,-24} {r.Configured ?? "-",-14} {(r.Runtime is null ? "-" : r.Runtime.Length == 0 ? "(cleared)" : r.Runtime),-14} {r.Effective ?? "-",-14} {r.RolloutGroup ?? "-"}\n");
                        Console.Out.Write(sb.ToString());
                    }
                    Console.Out.Flush();
                    return 0;
                }
            default:
                throw new UsageException($"target: unknown operation '{args[0]}'\n" + Usage);
        }
    }
}
