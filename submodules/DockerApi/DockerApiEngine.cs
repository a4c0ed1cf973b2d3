using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace DockerApi;

/// <summary><see cref="IEngine"/> over the Docker Engine API (Docker.DotNet.Enhanced, AOT-clean).</summary>
public sealed class DockerApiEngine : IEngine
{
    /// <summary>The environment variable Docker's tools read the engine endpoint from.</summary>
    public const string HostVariable = "DOCKER_HOST";

    private const string ProjectLabel = "com.docker.compose.project";
    private const string ServiceLabel = "com.docker.compose.service";
    private readonly DockerClient _client;
    private readonly string _endpoint;
    private readonly TimeSpan _timeout;

    public DockerApiEngine(string endpoint, TimeSpan timeout)
    {
        _endpoint = endpoint;
        _timeout = timeout;
        try
        {
            _client = new DockerClientBuilder().WithEndpoint(new Uri(endpoint)).WithTimeout(System.Threading.Timeout.InfiniteTimeSpan).Build();
        }
        catch (Exception e) when (e is UriFormatException or DockerConfigurationException or ArgumentException)
        {
            throw new EngineException($"cannot use the Docker engine endpoint \"{endpoint}\": {e.Message}; set docker_host in the config (e.g. unix:///var/run/docker.sock)", e);
        }
    }

    private async Task<EngineVersion> VersionCoreAsync(CancellationToken ct)
    {
        var v = await Call("ask the engine for its version", () => _client.System.GetVersionAsync(ct)).ConfigureAwait(false);
        return new EngineVersion(v.Version, v.APIVersion, v.Os ?? "linux", v.Arch ?? "?");
    }

    private async Task<ImageInfo?> InspectImageCoreAsync(string reference, CancellationToken ct)
    {
        try
        {
            var i = await _client.Images.InspectImageAsync(reference, ct).ConfigureAwait(false);
            return new ImageInfo(i.ID, i.RepoTags?.ToArray() ?? [], i.RepoDigests?.ToArray() ?? []);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable($"inspect image {reference}", e);
        }
    }

    public async Task<IReadOnlyList<string>> LoadImageAsync(Stream archive, CancellationToken ct)
    {
        var loaded = new List<string>();
        string? error = null;
        var progress = new SyncProgress<JSONMessage>(m =>
        {
            if (m.Error is not null)
            {
                error = m.Error.Message ?? "unknown error";
            }

            var text = m.Stream?.Trim();
            if (text is null)
            {
                return;
            }

            const string byName = "Loaded image: ";
            const string byId = "Loaded image ID: ";
            if (text.StartsWith(byId, StringComparison.Ordinal))
            {
                loaded.Add(text[byId.Length..].Trim());
            }
            else if (text.StartsWith(byName, StringComparison.Ordinal))
            {
                loaded.Add(text[byName.Length..].Trim());
            }
        });
        await Call("load an image", () => _client.Images.LoadImageAsync(new ImageLoadParameters { Quiet = true }, archive, progress, ct)).ConfigureAwait(false);
        if (error is not null)
        {
            throw new EngineException($"the engine refused the image archive: {error}");
        }

        return loaded;
    }

    public async Task SaveImageAsync(string reference, Stream output, CancellationToken ct)
    {
        var tar = await Call($"save image {reference}", () => _client.Images.SaveImageAsync(reference, ct)).ConfigureAwait(false);
        await using (tar.ConfigureAwait(false))
        {
            await tar.CopyToAsync(output, 1 << 20, ct).ConfigureAwait(false);
        }
    }

    private Task TagImageCoreAsync(string imageId, string repository, string tag, CancellationToken ct) =>
        Call($"tag {imageId} as {repository}:{tag}", () => _client.Images.TagImageAsync(imageId, new ImageTagParameters { RepositoryName = repository, Tag = tag }, ct));

    private async Task<bool> RemoveImageCoreAsync(string reference, bool force, CancellationToken ct)
    {
        try
        {
            await _client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { Force = force }, ct).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict)
        {
            throw new EngineConflictException(Message(e));
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable($"remove image {reference}", e);
        }
    }

    private async Task<IReadOnlyList<ContainerInfo>> ListContainersCoreAsync(string? project, CancellationToken ct)
    {
        var parameters = new ContainersListParameters { All = true };
        if (project is not null)
        {
            parameters.Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{ProjectLabel}={project}"] = true },
            };
        }

        var list = await Call("list containers", () => _client.Containers.ListContainersAsync(parameters, ct)).ConfigureAwait(false);
        var result = new List<ContainerInfo>(list.Count);
        foreach (var c in list)
        {
            ContainerInspectResponse i;
            try
            {
                i = await _client.Containers.InspectContainerAsync(c.ID, ct).ConfigureAwait(false);
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                continue; // removed meanwhile
            }
            catch (Exception e) when (IsTransport(e))
            {
                throw Unreachable($"inspect container {c.ID}", e);
            }

            var labels = i.Config?.Labels ?? new Dictionary<string, string>();
            if (labels.TryGetValue("com.docker.compose.oneoff", out var oneOff) && oneOff.Equals("True", StringComparison.OrdinalIgnoreCase))
            {
                continue; // `compose run` containers are not part of the application's state
            }

            DateTimeOffset? started = null;
            if (i.State?.StartedAt is { Length: > 0 } s && DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var t) && t.Year > 1)
            {
                started = t;
            }

            result.Add(new ContainerInfo(
                i.ID,
                i.Name?.TrimStart('/') ?? c.ID,
                labels.TryGetValue(ProjectLabel, out var p) ? p : null,
                labels.TryGetValue(ServiceLabel, out var sv) ? sv : null,
                i.Config?.Image ?? c.Image,
                i.Image ?? c.ImageID,
                i.State?.Status ?? c.State ?? "unknown",
                i.State?.Health?.Status is { Length: > 0 } h && h != "none" ? h : null,
                i.RestartCount,
                (int)(i.State?.ExitCode ?? 0),
                started,
                i.HostConfig?.RestartPolicy?.Name.ToString()));
        }

        return result;
    }

    private async Task<string> LogTailCoreAsync(string containerId, int lines, CancellationToken ct)
    {
        try
        {
            using var stream = await _client.Containers.GetContainerLogsAsync(containerId, new ContainerLogsParameters
            {
                ShowStdout = true,
                ShowStderr = true,
                Tail = lines.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }, ct).ConfigureAwait(false);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct).ConfigureAwait(false);
            return (stdout + stderr).TrimEnd();
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return string.Empty;
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable($"read the log of container {containerId}", e);
        }
    }

    private async Task RemoveContainerCoreAsync(string containerId, CancellationToken ct)
    {
        try
        {
            await _client.Containers.RemoveContainerAsync(containerId, new ContainerRemoveParameters { Force = true }, ct).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable($"remove container {containerId}", e);
        }
    }

    private async Task<IReadOnlyList<string>> RemoveProjectNetworksCoreAsync(string project, CancellationToken ct)
    {
        var networks = await Call("list networks", () => _client.Networks.ListNetworksAsync(new NetworksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{ProjectLabel}={project}"] = true } },
        }, ct)).ConfigureAwait(false);
        var removed = new List<string>();
        foreach (var n in networks)
        {
            try
            {
                await _client.Networks.DeleteNetworkAsync(n.ID, ct).ConfigureAwait(false);
                removed.Add(n.Name);
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
            }
            catch (Exception e) when (IsTransport(e))
            {
                throw Unreachable($"remove network {n.Name}", e);
            }
        }

        return removed;
    }

    private async Task<IReadOnlyList<string>> ProjectVolumesCoreAsync(string project, CancellationToken ct)
    {
        var volumes = await Call("list volumes", () => _client.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{ProjectLabel}={project}"] = true } },
        }, ct)).ConfigureAwait(false);
        return volumes.Volumes?.Select(v => v.Name).ToArray() ?? [];
    }

    private async Task RemoveVolumeCoreAsync(string name, CancellationToken ct)
    {
        try
        {
            await _client.Volumes.RemoveAsync(name, false, ct).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict)
        {
            throw new EngineConflictException(Message(e));
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable($"remove volume {name}", e);
        }
    }

    private async Task<string> DataRootCoreAsync(CancellationToken ct)
    {
        var info = await Call("ask the engine for its data root", () => _client.System.GetSystemInfoAsync(ct)).ConfigureAwait(false);
        return info.DockerRootDir;
    }

    private async Task<IReadOnlyList<ImageLayersInfo>> ImageLayersCoreAsync(CancellationToken ct)
    {
        var list = await Call("list images", () => _client.Images.ListImagesAsync(new ImagesListParameters { All = true }, ct)).ConfigureAwait(false);
        var result = new List<ImageLayersInfo>();
        foreach (var id in list.Select(i => i.ID).Distinct(StringComparer.Ordinal))
        {
            try
            {
                var i = await _client.Images.InspectImageAsync(id, ct).ConfigureAwait(false);
                result.Add(new ImageLayersInfo(i.ID, i.RootFS?.Layers?.ToArray() ?? []));
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                // removed since the list was read
            }
            catch (Exception e) when (IsTransport(e))
            {
                throw Unreachable($"inspect image {id}", e);
            }
        }

        return result;
    }

    public Task<string> DataRootAsync(CancellationToken ct) =>
        Limited("tell its data root", t => DataRootCoreAsync(t), ct);

    public Task<IReadOnlyList<ImageLayersInfo>> ImageLayersAsync(CancellationToken ct) =>
        Limited("list images and their layers", t => ImageLayersCoreAsync(t), ct);

    public Task<EngineVersion> VersionAsync(CancellationToken ct) =>
        Limited("ask the engine for its version", t => VersionCoreAsync(t), ct);

    public Task<ImageInfo?> InspectImageAsync(string reference, CancellationToken ct) =>
        Limited($"inspect image {reference}", t => InspectImageCoreAsync(reference, t), ct);

    public Task TagImageAsync(string imageId, string repository, string tag, CancellationToken ct) =>
        Limited($"tag {imageId}", t => TagImageCoreAsync(imageId, repository, tag, t), ct);

    public Task<bool> RemoveImageAsync(string reference, bool force, CancellationToken ct) =>
        Limited($"remove image {reference}", t => RemoveImageCoreAsync(reference, force, t), ct);

    public Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(string? project, CancellationToken ct) =>
        Limited("list containers", t => ListContainersCoreAsync(project, t), ct);

    public Task<string> LogTailAsync(string containerId, int lines, CancellationToken ct) =>
        Limited($"read the log of {containerId}", t => LogTailCoreAsync(containerId, lines, t), ct);

    public Task RemoveContainerAsync(string containerId, CancellationToken ct) =>
        Limited($"remove container {containerId}", t => RemoveContainerCoreAsync(containerId, t), ct);

    public Task<IReadOnlyList<string>> RemoveProjectNetworksAsync(string project, CancellationToken ct) =>
        Limited("remove networks", t => RemoveProjectNetworksCoreAsync(project, t), ct);

    public Task<IReadOnlyList<string>> ProjectVolumesAsync(string project, CancellationToken ct) =>
        Limited("list volumes", t => ProjectVolumesCoreAsync(project, t), ct);

    public Task RemoveVolumeAsync(string name, CancellationToken ct) =>
        Limited($"remove volume {name}", t => RemoveVolumeCoreAsync(name, t), ct);


    /// <summary>Bounds a short request by engine_timeout (image load/save are bounded by the caller instead).</summary>
    private async Task<T> Limited<T>(string what, Func<CancellationToken, Task<T>> call, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(_timeout);
        try
        {
            return await call(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new EngineException($"the Docker engine at {_endpoint} did not {what} within {_timeout.TotalSeconds:0} s (engine_timeout in the config)", e);
        }
    }

    private Task Limited(string what, Func<CancellationToken, Task> call, CancellationToken ct) =>
        Limited(what, async t =>
        {
            await call(t).ConfigureAwait(false);
            return true;
        }, ct);

    public void Dispose() => _client.Dispose();

    private async Task<T> Call<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new EngineException($"the engine could not {what}: {Message(e)}", e);
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable(what, e);
        }
    }

    private async Task Call(string what, Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            throw new EngineException($"the engine could not {what}: {Message(e)}", e);
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw Unreachable(what, e);
        }
    }

    private EngineException Unreachable(string what, Exception e) =>
        new($"cannot {what}: the Docker engine at {_endpoint} does not answer ({e.Message}); is dockerd running? (docker_host in the config)", e);

    private static bool IsTransport(Exception e) =>
        e is HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException
        || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private static string Message(DockerApiException e)
    {
        var body = e.ResponseBody?.Trim() ?? string.Empty;
        const string key = "\"message\":\"";
        var i = body.IndexOf(key, StringComparison.Ordinal);
        if (i >= 0)
        {
            var end = body.IndexOf('"', i + key.Length);
            if (end > i)
            {
                return body[(i + key.Length)..end];
            }
        }

        return body.Length > 0 ? body : e.StatusCode.ToString();
    }

    /// <summary>IProgress that runs the callback synchronously (Progress&lt;T&gt; posts to the thread pool and may run late).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
