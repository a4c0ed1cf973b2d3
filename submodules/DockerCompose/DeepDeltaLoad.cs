using System.IO.Pipelines;
using AppModule.Core.SubModules;
using AppModule.Delta;
using AppModule.Runtime;
using DockerApi;
using SubModule.Hosting;

namespace DockerCompose;

/// <summary>
/// Deep-delta LOAD (env <c>OPTIONS=deep_delta</c>, scratch space in <c>MODULE_TMPDIR</c>): the payload
/// holds the new image's <c>docker save</c> layout with layers replaced by VCDIFFs against, or
/// checksums of, layers of the current image (<c>url-current</c>). The current image is saved once to
/// scratch, the new image is reconstructed natively (no xdelta3 on the device; every layer is checked
/// against its digest) and streamed straight into the engine while it is being built.
/// </summary>
internal static class DeepDeltaLoad
{
    public static async Task LoadAsync(IEngine engine, DockerComposeModule module, SubModuleCall.Load call, ImageUrl url, string? scratchDirectory, CancellationToken ct)
    {
        var tmpRoot = scratchDirectory ?? Path.GetTempPath();
        var current = ImageUrl.Parse(call.UrlCurrent);
        if (await engine.InspectImageAsync(current.Reference, ct).ConfigureAwait(false) is null)
        {
            throw new SubModuleFailure($"the deep delta {call.File} for {url.Reference} is based on {current.Reference}, which is not in the engine; install a full image instead");
        }

        string scratch;
        try
        {
            scratch = Directory.CreateDirectory(Path.Combine(Path.GetFullPath(tmpRoot), $"deep-delta-{Environment.ProcessId}-{Guid.NewGuid():N}")).FullName;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot create scratch space in MODULE_TMPDIR={tmpRoot}: {e.Message}");
        }

        try
        {
            var payloadPath = await SeekablePayloadAsync(call.File, scratch, ct).ConfigureAwait(false);
            var basePath = Path.Combine(scratch, "current.tar");
            await using (var b = new FileStream(basePath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await engine.SaveImageAsync(current.Reference, b, ct).ConfigureAwait(false);
            }

            using var baseArchive = Open(() => BaseImageArchive.Open(basePath, ct), $"the saved current image {current.Reference}");
            await using var payload = new FileStream(payloadPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
            var plan = Open(() => DeepDelta.Inspect(payload, ct), $"deep delta {call.File}");
            var missing = plan.MissingBaseDigests(baseArchive.Contains);
            if (missing.Count > 0)
            {
                throw new SubModuleFailure($"{current.Reference} lacks {missing.Count} layer(s) the deep delta {call.File} needs ({string.Join(", ", missing.Select(m => m[..12]))}); install a full image instead");
            }

            payload.Position = 0;
            var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 8 << 20, resumeWriterThreshold: 4 << 20));
            var producer = Task.Run(() =>
            {
                var writer = pipe.Writer.AsStream();
                try
                {
                    DeepDelta.Reconstruct(payload, baseArchive.OpenLayer, writer, null, ct);
                    writer.Flush();
                    pipe.Writer.Complete();
                }
                catch (Exception e)
                {
                    pipe.Writer.Complete(e);
                    throw;
                }
            }, ct);

            Exception? loadError = null;
            try
            {
                await using var reader = pipe.Reader.AsStream();
                await module.LoadStreamAsync(reader, $"{call.File} (deep delta on {current.Reference})", url, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                loadError = e;
                pipe.Reader.Complete(e);
            }

            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (DeltaFormatException e)
            {
                throw new SubModuleFailure($"cannot rebuild {url.Reference} from the deep delta {call.File}: {e.Message}");
            }
            catch (Exception) when (loadError is not null)
            {
                // the reader stopped first; its error is the one to report
            }

            if (loadError is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(loadError).Throw();
            }

            Log.Info($"rebuilt {url.Reference} from the deep delta: {plan.Layers.Count} layer(s), {plan.Layers.Count(l => l.Origin == LayerOrigin.Decoded)} decoded, {plan.Layers.Count(l => l.Origin == LayerOrigin.FromBase)} reused");
        }
        finally
        {
            try
            {
                Directory.Delete(scratch, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static T Open<T>(Func<T> open, string what)
    {
        try
        {
            return open();
        }
        catch (DeltaFormatException e)
        {
            throw new SubModuleFailure($"cannot read {what}: {e.Message}");
        }
    }

    /// <summary>The reconstruction seeks in the payload; a pipe (FIFO) is copied to scratch first.</summary>
    private static async Task<string> SeekablePayloadAsync(string file, string scratch, CancellationToken ct)
    {
        try
        {
            await using var input = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan | FileOptions.Asynchronous);
            if (input.CanSeek)
            {
                return file;
            }

            var copy = Path.Combine(scratch, "payload.tar");
            await using var output = new FileStream(copy, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await input.CopyToAsync(output, 1 << 20, ct).ConfigureAwait(false);
            return copy;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot read deep delta {file}: {e.Message}");
        }
    }
}
