using AppModule.Core;
using AppModule.Core.Images;
using AppModule.Core.Install;
using AppModule.Core.Policy;
using AppModule.Core.Store;
using AppModule.Engine;
using AppModule.Runtime;

namespace Fleet.Core.Agent;

/// <summary>
/// A fleet command's compose file as an install input of the <see cref="InstallEngine"/>: the file (and the
/// directory's <c>.env</c>, when there is one) become the composition's manifests. Its images are resolved in
/// the registry during the pre-checks (image ID, layers, compressed sizes), checked against the engine's disk
/// by the same planning as an artifact's (<see cref="InstallPlanning"/>: the sub-module's STORAGE and
/// <see cref="InstallPlanner"/>), and only then pulled; a tag that cannot be pulled, or images that do not fit,
/// refuse the install before anything stops. An image the agent cannot resolve (a registry it cannot read) is
/// pulled at once, without the disk check, with a warning.
/// </summary>
/// <param name="config">the engine's config (engine_disk_check, engine_disk_margin_mib)</param>
/// <param name="pinned">the images to use as they are on the device (nothing pulled; e.g. a stored version restarted); null: pull them.</param>
/// <param name="files">the other manifest files (name, text), e.g. a stored version's <c>.env</c> and override file; null: the directory's <c>.env</c>.</param>
public sealed class ComposeSource(string application, string version, string fileName, string text, string directory, ImagePuller puller, Origin origin, AppConfig config,
    IReadOnlyList<ImageRef>? pinned = null, IReadOnlyDictionary<string, string>? files = null) : IInstallSource
{
    public const string EnvFile = ".env";

    private readonly List<(string Reference, string Id)> _toPull = [];
    private readonly List<PlanImage> _planned = [];

    public string Application => application;

    public string Version => version;

    /// <summary>The orchestrator the fleet agent installs with.</summary>
    public const string OrchestratorName = "docker-compose";

    public string Orchestrator => OrchestratorName;

    public Origin Origin => origin;

    /// <summary>This device's platform (the images are pulled for it).</summary>
    public string Platform { get; } = Platforms.Machine();

    public IReadOnlyDictionary<string, string> Env { get; } = new Dictionary<string, string>();

    public string WorkDir { get; } = Path.Combine(Path.GetTempPath(), $"fleet-install-{application}");

    public void Begin() => Directory.CreateDirectory(WorkDir);

    public async Task<IReadOnlyList<ImageRef>> CheckAsync(CancellationToken ct)
    {
        IReadOnlyList<ComposeImage> images;
        try
        {
            images = ComposeFile.Images(text, $"{fileName} for {version}");
        }
        catch (ComposeFileException e)
        {
            throw new InstallException("pre-check", $"{fileName} of {application}", e.Message + "; nothing was stopped");
        }

        if (images.Count == 0)
        {
            throw new InstallException("pre-check", $"{fileName} of {application}", "no service names an image; the agent installs pulled images only");
        }

        _toPull.Clear();
        _planned.Clear();
        if (pinned is not null)
        {
            return pinned;
        }

        var refs = new List<ImageRef>();
        foreach (var reference in images.Select(i => i.Image).Distinct(StringComparer.Ordinal))
        {
            var (remote, why) = config.EngineDiskCheck ? await puller.ResolveAsync(reference, Platform, ct).ConfigureAwait(false) : (null, null);
            if (remote is null)
            {
                if (why is not null)
                {
                    Log.Warning($"the engine's disk space is not checked for {reference}: {why}; pulling it now");
                }

                refs.Add(await puller.PullAsync(reference, ct).ConfigureAwait(false));
                continue;
            }

            // Pulled after the disk check (PrepareAsync). The layers' sizes are the registry's compressed ones: a lower bound of what they unpack to.
            var id = remote.Id.StartsWith("sha256:", StringComparison.Ordinal) ? remote.Id[7..] : remote.Id;
            _toPull.Add((reference, id));
            _planned.Add(new PlanImage(reference, remote.Id, "pull", null, null, null,
                remote.Layers.Select(l => new ImageLayer(l.DiffId, l.CompressedSize, LayerSource.Pulled)).ToArray()));
            refs.Add(new ImageRef(reference, id));
        }

        return refs;
    }

    public void ExtractManifests(string target, CancellationToken ct)
    {
        File.WriteAllText(Path.Combine(target, fileName), text);
        if (files is not null)
        {
            foreach (var (name, content) in files)
            {
                File.WriteAllText(Path.Combine(target, name), content);
            }

            return;
        }

        var env = Path.Combine(directory, EnvFile);
        if (File.Exists(env))
        {
            File.Copy(env, Path.Combine(target, EnvFile));
        }
    }

    /// <summary>The engine-disk pre-check of the images still to pull, then the pulls (each must bring the image the registry named).</summary>
    public async Task PrepareAsync(InstallStep step, CancellationToken ct)
    {
        var detail = "not checked (every image was pulled during the pre-checks)";
        if (_toPull.Count > 0)
        {
            var plan = await InstallPlanning.PlanAsync(this, step, config, _planned, null, [], null, [], 0, ct).ConfigureAwait(false);
            plan.ThrowIfRefused("engine-disk");
            detail = plan.EngineDisk.Detail;
            foreach (var (reference, id) in _toPull)
            {
                var pulled = await puller.PullAsync(reference, ct).ConfigureAwait(false);
                if (pulled.Id != id)
                {
                    throw new InstallException("pull", reference,
                        $"the engine pulled image {pulled.Id[..12]}, but the registry named {id[..12]} when the install was checked (the tag moved, or the engine keeps images under another ID); nothing was stopped. Retry the command");
                }
            }
        }

        Log.Info(pinned is null ? $"pre-checks passed: {application} {version}, every image pulled; engine disk: {detail}" : $"pre-checks passed: {application} {version} with the images it has (nothing pulled)");
    }

    /// <summary>The images were pulled during the pre-checks: nothing left to load.</summary>
    public Task LoadAsync(InstallStep step, CancellationToken ct) => Task.CompletedTask;
}
