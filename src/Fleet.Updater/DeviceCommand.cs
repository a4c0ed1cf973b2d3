using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Hosting;
using Fleet.Core.Updater;

namespace Fleet.Updater;

/// <summary>One device's answer, as <c>device ... --json</c> prints it (an array of these).</summary>
public sealed record DeviceResultJson(
    [property: JsonPropertyName("app")] string App,
    [property: JsonPropertyName("rpc")] string Rpc,
    [property: JsonPropertyName("command")] string Command,
    [property: JsonPropertyName("outcome")] string Outcome,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("idempotency_key")] string? IdempotencyKey);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(List<DeviceResultJson>))]
public sealed partial class DeviceJsonContext : JsonSerializerContext;

/// <summary>
/// Seed 002's operations sent by the operator to one or more devices, or a whole group (issue 15's fleetctl):
/// <code>
/// fleet-updater [--config FILE] device restart|update|down APP... [--no-wait] [--timeout SECONDS] [--json]
/// fleet-updater [--config FILE] device restart|update|down --group GROUP [...]
/// </code>
/// Each command goes to the app's RPC name with the app's directory, HMAC-signed when a key is configured (the same
/// <see cref="DeviceCommands"/> as the rollouts' updates). The answers are printed on stdout (a table, or JSON with
/// --json), one per device; logs go to stderr. Exit codes (the table is in <see cref="Program"/>): 0 every device
/// succeeded, 1 at least one answered a failure, 7 none failed but at least one did not answer in time.
/// </summary>
public static class DeviceCommand
{
    public const string Usage = "usage: fleet-updater [--config FILE] device restart|update|down APP... | --group GROUP [--no-wait] [--timeout SECONDS] [--json]";

    public static async Task<int> RunAsync(UpdaterConfig cfg, string[] args, CancellationToken ct)
    {
        if (args.Length == 0) throw new UsageException("device: missing the operation\n" + Usage);
        var op = args[0];
        if (!DeviceCommands.Operations.Contains(op))
            throw new UsageException($"device: unknown operation '{op}' (restart, update, down)\n" + Usage);
        var names = new List<string>();
        string? group = null;
        bool json = false, wait = true;
        var timeout = TimeSpan.FromSeconds(120);
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json": json = true; break;
                case "--no-wait": wait = false; break;
                case "--group" when i + 1 < args.Length: group = args[++i]; break;
                case "--timeout" when i + 1 < args.Length:
                    timeout = int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0 ? TimeSpan.FromSeconds(s)
                        : throw new UsageException($"device {op}: --timeout '{args[i]}' is not a positive number of seconds");
                    break;
                case var a when a.StartsWith('-'): throw new UsageException($"device {op}: unknown option '{a}'\n" + Usage);
                default: names.Add(args[i]); break;
            }
        }
        if ((group is null) == (names.Count == 0)) throw new UsageException($"device {op}: give one or more APPs, or --group GROUP (not both)\n" + Usage);
        if (group is not null)
        {
            names = cfg.Groups.TryGetValue(group, out var members) ? [.. members]
                : throw new UsageException($"device {op}: no group '{group}' in the configuration; known: {string.Join(", ", cfg.Groups.Keys.Order(StringComparer.Ordinal))} (define [groups.{group}] members = [...])");
        }
        var apps = new List<AppEntry>();
        foreach (var n in names.Distinct())
        {
            var app = cfg.Apps.TryGetValue(n, out var a) ? a
                : throw new UsageException($"device {op}: '{n}' is not a configured app; known: {string.Join(", ", cfg.Apps.Keys.Order(StringComparer.Ordinal))}");
            if (app.Directory is null)
                throw new ConfigException($"device {op}: app '{n}' has no directory configured (APP_TO_DIRECTORY or [apps.{n}] directory): the agent serves commands by directory");
            apps.Add(app);
        }

        await using var bus = await RedisFleetBus.ConnectAsync(cfg.Redis, ct);
        var commands = new DeviceCommands(cfg, bus);
        Log.Info($"device {op}: sending to {apps.Count} device(s){(group is null ? "" : $" of group {group}")}{(commands.Signed ? ", HMAC-signed" : ", unsigned")}; waiting up to {timeout.TotalSeconds:0} s for each answer");
        var results = await commands.RunAsync(op, apps, wait, timeout, parallel: 64, ct);
        foreach (var r in results)
            Log.Write(r.Outcome == DeviceOutcome.Success ? LogLevel.Info : LogLevel.Warning, $"device {op} {r.App} ({r.Rpc}, key {r.Key}): {Name(r.Outcome)}: {r.Message}");

        if (json)
        {
            var rows = results.Select(r => new DeviceResultJson(r.App, r.Rpc, r.Command, Name(r.Outcome), r.Message, r.Key)).ToList();
            Console.Out.Write(JsonSerializer.Serialize(rows, DeviceJsonContext.Default.ListDeviceResultJson) + "\n");
        }
        else
        {
            var sb = new StringBuilder();
            sb.Append($"{"APP",-24} {"OUTCOME",-12} MESSAGE\n");
            foreach (var r in results) sb.Append($"{r.App,-24} {Name(r.Outcome),-12} {r.Message.ReplaceLineEndings(" ")}\n");
            Console.Out.Write(sb.ToString());
        }
        Console.Out.Flush();
        return results.Any(r => r.Outcome == DeviceOutcome.Failure) ? 1
            : results.Any(r => r.Outcome == DeviceOutcome.Unreachable) ? 7
            : 0;
    }

    private static string Name(DeviceOutcome o) => o switch
    {
        DeviceOutcome.Success => "success",
        DeviceOutcome.Failure => "failure",
        _ => "unreachable",
    };
}
