using SubModule.Hosting;

namespace DockerApi;

/// <summary>An image as the engine has it.</summary>
/// <param name="Id">"sha256:..."</param>
public sealed record ImageInfo(string Id, IReadOnlyList<string> RepoTags, IReadOnlyList<string> RepoDigests);

/// <summary>A container, with what health gating needs.</summary>
/// <param name="Status">engine state: created, running, restarting, exited, dead, paused, removing</param>
/// <param name="Health">healthy, unhealthy, starting; null when the container has no healthcheck</param>
/// <param name="Image">the reference the container was created from (Config.Image)</param>
public sealed record ContainerInfo(
    string Id,
    string Name,
    string? Project,
    string? Service,
    string Image,
    string ImageId,
    string Status,
    string? Health,
    long RestartCount,
    int ExitCode,
    DateTimeOffset? StartedAt,
    string? RestartPolicy);

/// <summary>A container as a rollout left it: what HEALTHY compares restarts with.</summary>
public sealed record ContainerStart(string Id, long RestartCount, DateTimeOffset? StartedAt);

/// <summary>The engine refused an operation because something still uses the object.</summary>
public sealed class EngineConflictException(string message) : SubModuleFailure(message);

/// <summary>The engine could not be reached or answered with an error; the message says which request.</summary>
public sealed class EngineException(string message, Exception? inner = null) : SubModuleFailure(message)
{
    public Exception? Cause { get; } = inner;
}

/// <summary>
/// The few Docker Engine operations the sub-module needs. "Not found" is an answer (null / false),
/// never an exception; any other engine error is an <see cref="EngineException"/>.
/// </summary>
public interface IEngine : IDisposable
{
    /// <summary>The engine's version, e.g. "20.10.24 (API 1.41)".</summary>
    /// <summary>The engine's version and the platform it runs containers for.</summary>
    Task<EngineVersion> VersionAsync(CancellationToken ct);

    Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct);

    /// <summary>Loads a docker-archive/OCI tar, read forward-only once; returns what the engine says it loaded ("name:tag" or "sha256:...").</summary>
    Task<IReadOnlyList<string>> LoadImageAsync(Stream archive, CancellationToken ct);

    /// <summary>Writes <c>docker save</c> of the reference to <paramref name="output"/>.</summary>
    Task SaveImageAsync(string reference, Stream output, CancellationToken ct);

    Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct);

    /// <summary>Removes a reference (untags) or an image by ID. False when not found; <see cref="EngineConflictException"/> when in use.</summary>
    Task<bool> RemoveImageAsync(string reference, bool force, CancellationToken ct);

    /// <summary>All containers (any state); only the Compose project's when <paramref name="project"/> is set.</summary>
    Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(string? project, CancellationToken ct);

    /// <summary>The last lines of a container's stdout+stderr.</summary>
    Task<string> LogTailAsync(string containerId, int lines, CancellationToken ct);

    Task RemoveContainerAsync(string containerId, CancellationToken ct);

    /// <summary>Removes the networks of a Compose project; returns their names.</summary>
    Task<IReadOnlyList<string>> RemoveProjectNetworksAsync(string project, CancellationToken ct);

    /// <summary>The volumes of a Compose project (names).</summary>
    Task<IReadOnlyList<string>> ProjectVolumesAsync(string project, CancellationToken ct);

    Task RemoveVolumeAsync(string name, CancellationToken ct);

    /// <summary>Where the engine keeps its data (DockerRootDir of /info).</summary>
    Task<string> DataRootAsync(CancellationToken ct);

    /// <summary>Every image the engine holds: its ID and its layers' diff IDs (RootFS.Layers), bottom first.</summary>
    Task<IReadOnlyList<ImageLayersInfo>> ImageLayersAsync(CancellationToken ct);
}

/// <summary>An image's ID and the diff IDs of its layers, bottom first.</summary>
public sealed record ImageLayersInfo(string Id, IReadOnlyList<string> DiffIds);

/// <summary>What the engine says about itself: version, API version, and the os/architecture it runs containers for.</summary>
public sealed record EngineVersion(string Version, string ApiVersion, string Os, string Architecture)
{
    public override string ToString() => $"{Version} (API {ApiVersion}, {Os}/{Architecture})";
}
