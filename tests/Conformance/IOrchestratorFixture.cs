namespace Conformance;

/// <summary>What a service of a test application does once it is started.</summary>
public enum Behavior
{
    /// <summary>Serves and passes its health check (compose: appmodule/web:&lt;version&gt;).</summary>
    Healthy,

    /// <summary>Serves, has no health check at all (compose: appmodule/web:nohealth).</summary>
    NoHealthcheck,

    /// <summary>Exits with a non-zero status right at start, no restart (compose: appmodule/web:exits).</summary>
    ExitsAtStart,

    /// <summary>Exits at start and is restarted again and again (compose: :exits with restart: always).</summary>
    RestartLoop,

    /// <summary>Runs but its health check never passes (compose: appmodule/web:unhealthy).</summary>
    NeverHealthy,
}

/// <summary>One service (compose service, k8s Deployment) of a test application.</summary>
/// <param name="Name">service name, lower case letters and digits</param>
/// <param name="Behavior">what it does once started</param>
/// <param name="Version">for <see cref="Behavior.Healthy"/>: "1.0" or "2.0" (two different images)</param>
public sealed record ServiceSpec(string Name, Behavior Behavior = Behavior.Healthy, string Version = "1.0")
{
    /// <summary>A persistent volume (compose named volume, k8s PersistentVolumeClaim) mounted into the service, or null.</summary>
    public string? Volume { get; init; }
}

/// <summary>A test application: its name (unique per test, see <see cref="Unique"/>) and services.</summary>
public sealed record AppSpec(string Name, IReadOnlyList<ServiceSpec> Services);

/// <summary>How one service looks from outside the sub-module, right now.</summary>
/// <param name="Running">its container/pod runs</param>
/// <param name="Health">"healthy", "unhealthy", "starting", or null when it has no health check</param>
/// <param name="Image">the image reference (url) it runs</param>
public sealed record ServiceObservation(bool Running, string? Health, string Image);

/// <summary>An image archive for LOAD: the url it holds, the file, the image ID (with "sha256:").</summary>
public sealed record ImageArchive(string Url, string File, string Id);

/// <summary>Sub-module settings a test needs; the fixture turns them into the sub-module's config.</summary>
public sealed record SubModuleSettings(bool PurgeVolumes = false);

/// <summary>Optional behaviours; a test of a feature an orchestrator lacks is skipped, not failed.</summary>
[Flags]
public enum OrchestratorFeatures
{
    None = 0,

    /// <summary>DELETE refuses an image that a container/pod still uses.</summary>
    RefusesDeletingImagesInUse = 1,

    /// <summary>A restart loop is detected during ROLLOUT.</summary>
    DetectsRestartLoops = 2,

    /// <summary>ROLLOUT failures print the tail of the failing service's log.</summary>
    PrintsLogTail = 4,

    /// <summary>SAVE / LOAD / DELETE of images.</summary>
    Images = 8,
}

/// <summary>
/// Everything the conformance suite (<see cref="SubModuleConformance{TFixture}"/>) needs to know about one
/// orchestrator, so the same tests drive any sub-module executable: docker-compose with Compose v1 or v2,
/// k8s. One instance is shared by the tests of a class (xunit class fixture); it must have a public
/// parameterless constructor. Methods are synchronous and may assert or throw on unexpected errors.
/// <para>
/// Isolation: other test runs share the engine. Everything a fixture creates must carry the application
/// name (unique per test) and be removed by <see cref="Cleanup"/>. Images named in manifests must be
/// private to the application (e.g. a unique tag of a test image), because PURGE and DELETE remove them.
/// </para>
/// </summary>
public interface IOrchestratorFixture : IDisposable
{
    /// <summary>Display name, e.g. "docker-compose (Compose v2)".</summary>
    string Name { get; }

    /// <summary>Why the suite cannot run here (with the fix), or null when it can.</summary>
    string? Unavailable { get; }

    /// <summary>The sub-module executable under test.</summary>
    string Executable { get; }

    OrchestratorFeatures Features { get; }

    /// <summary>
    /// Environment for a call of the sub-module with these settings: typically an env var pointing the
    /// sub-module at a config file that the fixture wrote (short timeouts, a private state directory).
    /// A null value removes the variable.
    /// </summary>
    IReadOnlyDictionary<string, string?> Environment(SubModuleSettings settings);

    /// <summary>
    /// Writes the manifests of <paramref name="app"/> into <paramref name="directory"/> (which exists and is
    /// empty), and makes sure every image they name is in the orchestrator's image store.
    /// </summary>
    void WriteManifests(AppSpec app, string directory);

    /// <summary>The image reference the manifests of <paramref name="app"/> use for <paramref name="service"/>.</summary>
    string ImageUrl(string app, ServiceSpec service);

    /// <summary>
    /// Writes an image archive (what LOAD takes) of a healthy test image under a reference private to
    /// <paramref name="app"/> that is NOT in the image store afterwards.
    /// </summary>
    ImageArchive ExportImage(string app, string directory);

    bool HasImage(string url);

    /// <summary>The image ID ("sha256:...") the store has for <paramref name="url"/>, or null.</summary>
    string? ImageId(string url);

    /// <summary>Removes the reference from the image store (no-op when absent).</summary>
    void RemoveImage(string url);

    /// <summary>The service's state, or null when it has no container/pod at all.</summary>
    ServiceObservation? Observe(string app, string service);

    /// <summary>Stores <paramref name="marker"/> in the service's volume (the service must run).</summary>
    void WriteVolumeMarker(string app, string service, string marker);

    /// <summary>The marker stored in the service's volume, or null (the service must run).</summary>
    string? ReadVolumeMarker(string app, string service);

    /// <summary>True when the application's volume <paramref name="volume"/> (as named in <see cref="ServiceSpec.Volume"/>) exists.</summary>
    bool VolumeExists(string app, string volume);

    /// <summary>
    /// Texts that stderr of a ROLLOUT failing because of a service with <paramref name="behavior"/> must
    /// contain, besides the service name (e.g. "exited" and the container's last log line).
    /// </summary>
    IReadOnlyList<string> FailureTexts(Behavior behavior);

    /// <summary>Removes everything of <paramref name="app"/>: containers/pods, networks, volumes, its images. Never throws.</summary>
    void Cleanup(string app);
}
