using System.Text.Json;
using System.Text.Json.Serialization;
using AppModule.Core;
using AppModule.Core.Store;

namespace AppModule;

/// <summary>
/// <c>app status [--json] [&lt;application&gt;]</c>: what the persistent store holds for each application,
/// whichever trigger installed it (the Mender client through <c>app</c>, or the fleet agent): the running,
/// last-known-good and rollback versions with their origin, a pending install, and the end of the journal.
/// </summary>
public static class StatusCommand
{
    public const string Usage = "usage: app status [--json] [<application>]";

    public static int Run(string[] args, AppConfig config, TextWriter stdout)
    {
        var json = false;
        string? application = null;
        foreach (var a in args)
        {
            if (a == "--json")
            {
                json = true;
            }
            else if (application is null && !a.StartsWith('-'))
            {
                application = a;
            }
            else
            {
                throw new UsageException(Usage);
            }
        }

        var store = new AppStore(config.PersistentStore);
        var apps = application is null ? store.Applications() : [application];
        var report = new StoreStatus(store.Root, apps.Select(app => Describe(store, app)).ToArray());
        if (json)
        {
            stdout.Write(JsonSerializer.Serialize(report, StatusJson.Default.StoreStatus) + "\n");
            return ExitCodes.Success;
        }

        if (report.Applications.Count == 0)
        {
            stdout.WriteLine($"no applications in {store.Root}");
            return ExitCodes.Success;
        }

        foreach (var a in report.Applications)
        {
            stdout.WriteLine($"application {a.Application}");
            stdout.WriteLine($"  running:        {Show(a.Running)}");
            stdout.WriteLine($"  last-known-good: {Show(a.LastKnownGood)}");
            stdout.WriteLine($"  rollback:       {Show(a.Rollback)}");
            stdout.WriteLine($"  pending:        {(a.Pending is { } p ? $"{p.Version} ({p.Composition}, {p.Phase})" : "-")}");
            if (a.InProgress is { } op)
            {
                stdout.WriteLine($"  in progress:    {op.Operation} of {op.Version?.Version ?? "?"} ({op.Version?.Composition}), asked by {(op.RequestedBy is null ? "an unknown trigger" : OriginText(op.RequestedBy))}");
            }
            if (a.ToCollect.Count > 0)
            {
                stdout.WriteLine($"  to collect:     {string.Join(", ", a.ToCollect)}");
            }

            foreach (var j in a.Journal)
            {
                stdout.WriteLine($"  {j.TimeUtc:u} {j.Event} {j.Detail}");
            }
        }

        return ExitCodes.Success;
    }

    private static string Show(VersionStatus? v) => v switch
    {
        null => "-",
        { Missing: true } => $"{v.Composition} (missing)",
        _ => $"{v.Version} ({v.Composition}; {v.Orchestrator}; from {OriginText(v.Origin)}; images: {string.Join(", ", v.Images.Select(i => i.Url))})",
    };

    private static string OriginText(Origin? o) => o switch
    {
        null => "mender",
        { Trigger: "fleet" } => $"fleet command {o.CommandId ?? "?"}",
        { Trigger: "directory" } => $"the compose file in {o.Directory}",
        _ => o.Trigger,
    };

    private static ApplicationStatus Describe(AppStore store, string app)
    {
        var s = store.Load(app);
        VersionStatus? Version(string? id)
        {
            if (id is null)
            {
                return null;
            }

            try
            {
                var c = store.ReadComposition(app, id);
                return new VersionStatus(id, c.ArtifactName, c.Orchestrator, c.Origin ?? new Origin("mender"), c.Images, c.CreatedUtc, false);
            }
            catch (StoreException)
            {
                return new VersionStatus(id, null, null, null, [], null, true);
            }
        }

        // A restart (or restore) or a stop the fleet agent started and has not finished: it finishes it at its next start if it was killed.
        var inProgress = s.Restarting is { } r ? new OperationStatus("restart", Version(r), s.RequestedBy)
            : s.Stopping is { } st ? new OperationStatus("stop", Version(st), s.RequestedBy)
            : null;
        return new ApplicationStatus(app, Version(s.Running), Version(s.Committed), Version(s.Previous),
            s.Pending is { } p ? new PendingStatus(p.ArtifactName, p.Composition, p.Phase) : null,
            s.Garbage, store.Journal(app).TakeLast(5).ToArray())
        { InProgress = inProgress };
    }
}

public sealed record StoreStatus(string Store, IReadOnlyList<ApplicationStatus> Applications);

public sealed record ApplicationStatus(string Application, VersionStatus? Running, VersionStatus? LastKnownGood, VersionStatus? Rollback,
    PendingStatus? Pending, IReadOnlyList<string> ToCollect, IReadOnlyList<JournalEntry> Journal)
{
    /// <summary>A restart or stop in progress (the store's <c>restarting</c> / <c>stopping</c>), null when none is.</summary>
    public OperationStatus? InProgress { get; init; }
}

/// <summary>One stored version: its name (the artifact name, or the fleet version), where it came from, its images.</summary>
public sealed record VersionStatus(string Composition, string? Version, string? Orchestrator, Origin? Origin, IReadOnlyList<ImageRef> Images, DateTimeOffset? CreatedUtc, bool Missing);

public sealed record PendingStatus(string Version, string Composition, InstallPhase Phase);

/// <summary>A restart or stop under way (or interrupted, to be finished at the fleet agent's next start): which version, who asked.</summary>
public sealed record OperationStatus(string Operation, VersionStatus? Version, Origin? RequestedBy);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(StoreStatus))]
internal sealed partial class StatusJson : JsonSerializerContext;
