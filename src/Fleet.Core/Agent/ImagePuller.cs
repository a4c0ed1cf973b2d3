using AppModule.Core.Images;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Runtime;
using Fleet.Core.Registry;

namespace Fleet.Core.Agent;

/// <summary>
/// Gets a fleet version's images onto the device: <c>docker pull</c> of each reference, then its image ID,
/// which the store records (so a later rollback or cleanup names the image, not a tag that may have moved).
/// Before a pull, <see cref="ResolveAsync"/> asks the registry what the pull would bring (image ID, layers and
/// their compressed sizes), so the engine-disk pre-check can run before anything is written.
/// </summary>
/// <param name="registry">the registry client the agent reads manifests with; null: never resolved (pulled as they are)</param>
public sealed class ImagePuller(string dockerCli, RegistryClient? registry = null)
{
    /// <summary>
    /// What the registry holds for <paramref name="reference"/> on <paramref name="platform"/>, or why it cannot be
    /// told: then the caller pulls without the disk pre-check (the engine reaches registries with its own
    /// settings, daemon.json and certs.d, which the agent does not read).
    /// </summary>
    public async Task<(RemoteImage? Image, string? Why)> ResolveAsync(string reference, string platform, CancellationToken ct)
    {
        if (registry is null) return (null, "the agent reads no registry");
        if (!ImageReference.TryParse(reference, out var parsed, out var error)) return (null, $"{reference} is not an image reference the agent can resolve ({error})");
        try
        {
            var image = await registry.RemoteImageAsync(parsed.WithoutTagOrDigest(), parsed.Digest ?? parsed.Tag ?? ImageReference.DefaultTag, platform, ct).ConfigureAwait(false);
            return (image, null);
        }
        catch (Exception e) when (e is RegistryException or HttpRequestException or IOException)
        {
            return (null, $"the registry of {reference} did not tell its layers ({e.Message})");
        }
    }

    public async Task<ImageRef> PullAsync(string reference, CancellationToken ct)
    {
        Log.Info($"pulling {reference}");
        var pull = await RunAsync(["pull", "--quiet", reference], TimeSpan.FromMinutes(30), ct).ConfigureAwait(false);
        if (!pull.Succeeded)
        {
            throw new InstallException("pull", reference,
                $"{dockerCli} pull {(pull.TimedOut ? "timed out" : $"exited with status {pull.ExitCode}")}; nothing was stopped. Check that the tag exists in the registry and that the device can reach it",
                pull.StderrTail);
        }

        var inspect = await RunAsync(["image", "inspect", "--format", "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}", reference], TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);
        var fields = inspect.Stdout.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var id = fields.Length > 0 ? fields[0] : "";
        if (!inspect.Succeeded || !id.StartsWith("sha256:", StringComparison.Ordinal))
        {
            throw new InstallException("pull", reference, $"the engine has no image ID for {reference} right after pulling it; nothing was stopped", inspect.StderrTail);
        }

        // pinned to a digest (the manifest the updater checked): the engine must record the image under it
        if (ImageReference.TryParse(reference, out var pinned, out _) && pinned.Digest is { } digest
            && !fields.Skip(1).Any(d => ImageReference.TryParse(d, out var r, out _) && r.Name == pinned.Name && r.Digest == digest))
        {
            throw new InstallException("pull", reference,
                $"the engine pulled image {id[7..19]} for {reference}, but records it under {(fields.Length > 1 ? string.Join(", ", fields.Skip(1)) : "no digest")}, not {digest}; nothing was stopped");
        }

        Log.Info($"pulled {reference} (image {id[7..19]})");
        return new ImageRef(reference, id[7..]);
    }

    private async Task<ProcessResult> RunAsync(IReadOnlyList<string> args, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            return await ChildProcess.RunAsync(new ProcessSpec(dockerCli, args) { Timeout = timeout }, ct).ConfigureAwait(false);
        }
        catch (ChildProcessException e)
        {
            return new ProcessResult(127, string.Empty, e.Message, false, TimeSpan.Zero);
        }
    }
}
