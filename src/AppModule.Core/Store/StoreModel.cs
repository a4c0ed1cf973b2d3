using System.Text.Json.Serialization;

namespace AppModule.Core.Store;

/// <summary>One image a composition uses: the reference it runs as and the image ID (hex, no "sha256:").</summary>
public sealed record ImageRef(string Url, string Id);

/// <summary>
/// A deployable composition of one application, as stored: what the artifact said (name,
/// orchestrator, platform, env) and which images it uses. Its manifests live next to it in
/// <c>manifests/</c>. Written once, never modified.
/// </summary>
public sealed record Composition(
    string Id,
    string Application,
    string ArtifactName,
    string Orchestrator,
    string Platform,
    IReadOnlyList<ImageRef> Images,
    IReadOnlyDictionary<string, string> Env,
    DateTimeOffset CreatedUtc)
{
    /// <summary>Which trigger installed it; null in compositions stored before origins were recorded (those came from Mender).</summary>
    public Origin? Origin { get; init; }

    /// <summary>The application's own health timeout and soak (artifact meta-data), or null for the device's.</summary>
    public HealthOverrides? Health { get; init; }
}

/// <summary>
/// An application's own health settings, from its artifact's meta-data (<c>health_timeout_seconds</c>,
/// <c>soak_seconds</c>); each null when the artifact leaves it to the device. The device's config caps them
/// (<see cref="AppConfig.Refusal"/>).
/// </summary>
public sealed record HealthOverrides(int? HealthTimeoutSeconds, int? SoakSeconds);

/// <summary>
/// Where a stored version came from: <c>mender</c> (a deployment through the Mender client and <c>app</c>),
/// <c>fleet</c> (a fleet agent command, with its id), or <c>directory</c> (an application the fleet agent found
/// running from its compose directory and adopted).
/// </summary>
public sealed record Origin(string Trigger, string? CommandId = null, string? Directory = null)
{
    public static readonly Origin Mender = new("mender");
}

/// <summary>How far a pending install has come (each step is recorded before the next one starts).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<InstallPhase>))]
public enum InstallPhase
{
    /// <summary>The composition is stored; nothing on the device has changed yet.</summary>
    Prepared,

    /// <summary>Images are being loaded (the running application is untouched).</summary>
    Loading,

    /// <summary>The running composition is being stopped and the new one rolled out.</summary>
    Switching,

    /// <summary>The new composition runs; waiting for it to be healthy.</summary>
    RolledOut,

    /// <summary>The new composition is healthy; waiting for ArtifactCommit or ArtifactRollback.</summary>
    Installed,
}

/// <summary>An install that is not committed yet.</summary>
public sealed record PendingInstall(string Composition, string ArtifactName, InstallPhase Phase)
{
    /// <summary>
    /// Rolled out over what ran, without STOPping it first (a variant of the last-known-good: one service restarted);
    /// a rollback then rolls the last-known-good out over it the same way, so only what the variant changed is recreated.
    /// </summary>
    public bool InPlace { get; init; }
}

/// <summary>A commit whose Cleanup has not run yet: ArtifactRollback can still undo it.</summary>
public sealed record RecentCommit(string ArtifactName, string Composition, string? DemotedPrevious);

/// <summary>
/// The persistent state of one application (its <c>state.json</c>), replaced atomically at every
/// transition. <c>Committed</c> is the last-known-good composition, <c>Previous</c> the one before it
/// (the rollback composition), <c>Running</c> what is deployed right now (null: nothing).
/// </summary>
public sealed record AppState(
    string Application,
    string? Committed,
    string? Previous,
    string? Running,
    PendingInstall? Pending,
    RecentCommit? RecentCommit,
    IReadOnlyList<string> Garbage,
    int NextSequence)
{
    public int Version { get; init; } = 1;

    /// <summary>
    /// The composition a restart (STOP what runs, ROLLOUT the last-known-good) is bringing back up, from its first
    /// step until it is rolled out; null otherwise. Set after a crash mid-restart: the app was meant to run, and
    /// the fleet agent's start finishes the restart.
    /// </summary>
    public string? Restarting { get; init; }

    /// <summary>
    /// The composition a stop (the fleet agent's <c>down</c>) is taking down, from just before its STOP until the STOP
    /// returned; null otherwise. Set after a crash mid-stop: the app was meant to be down, and the fleet agent's start
    /// finishes the stop (the store already says nothing runs).
    /// </summary>
    public string? Stopping { get; init; }

    /// <summary>Who asked for the restart or stop in progress (<see cref="Restarting"/>, <see cref="Stopping"/>); null when none is, or unknown.</summary>
    public Origin? RequestedBy { get; init; }

    public static AppState Empty(string application) => new(application, null, null, null, null, null, [], 1);

    /// <summary>Compositions that must be kept (their images too).</summary>
    public IEnumerable<string> Kept()
    {
        string?[] ids = [Committed, Previous, Running, Pending?.Composition, RecentCommit?.DemotedPrevious, Restarting, Stopping];
        return ids.Where(i => i is not null).Select(i => i!).Distinct(StringComparer.Ordinal);
    }
}

/// <summary>One line of an application's journal (journal.log, JSON lines).</summary>
public sealed record JournalEntry(DateTimeOffset TimeUtc, string Event, string Detail);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(AppState))]
[JsonSerializable(typeof(Composition))]
[JsonSerializable(typeof(JournalEntry))]
internal sealed partial class StoreJson : JsonSerializerContext;
