using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Runtime;

namespace Fleet.Core.Agent;

/// <summary>
/// Gets a fleet version's images onto the device: <c>docker pull</c> of each reference, then its image ID,
/// which the store records (so a later rollback or cleanup names the image, not a tag that may have moved).
/// </summary>
public sealed class ImagePuller(string dockerCli)
{
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

        var inspect = await RunAsync(["image", "inspect", "--format", "{{.Id}}", reference], TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);
        var id = inspect.Stdout.Trim();
        if (!inspect.Succeeded || !id.StartsWith("sha256:", StringComparison.Ordinal))
        {
            throw new InstallException("pull", reference, $"the engine has no image ID for {reference} right after pulling it; nothing was stopped", inspect.StderrTail);
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
