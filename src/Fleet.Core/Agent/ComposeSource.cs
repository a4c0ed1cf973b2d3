using AppModule.Core.Install;
using AppModule.Core.Policy;
using AppModule.Core.Store;
using AppModule.Engine;
using AppModule.Runtime;

namespace Fleet.Core.Agent;

/// <summary>
/// A fleet command's compose file as an install input of the <see cref="InstallEngine"/>: the file (and the
/// directory's <c>.env</c>, when there is one) become the composition's manifests; its images are pulled
/// during the pre-checks (a tag that cannot be pulled refuses the install before anything stops).
/// </summary>
public sealed class ComposeSource(string application, string version, string fileName, string text, string directory, ImagePuller puller, Origin origin) : IInstallSource
{
    public const string EnvFile = ".env";

    public string Application => application;

    public string Version => version;

    public string Orchestrator => "docker-compose";

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

        var refs = new List<ImageRef>();
        foreach (var reference in images.Select(i => i.Image).Distinct(StringComparer.Ordinal))
        {
            refs.Add(await puller.PullAsync(reference, ct).ConfigureAwait(false));
        }

        return refs;
    }

    public void ExtractManifests(string target, CancellationToken ct)
    {
        File.WriteAllText(Path.Combine(target, fileName), text);
        var env = Path.Combine(directory, EnvFile);
        if (File.Exists(env))
        {
            File.Copy(env, Path.Combine(target, EnvFile));
        }
    }

    public Task PrepareAsync(InstallStep step, CancellationToken ct)
    {
        Log.Info($"pre-checks passed: {application} {version}, every image pulled");
        return Task.CompletedTask;
    }

    /// <summary>The images were pulled during the pre-checks: nothing left to load.</summary>
    public Task LoadAsync(InstallStep step, CancellationToken ct) => Task.CompletedTask;
}
