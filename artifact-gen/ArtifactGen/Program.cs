using System.Runtime.InteropServices;
using AppModule.Artifacts;
using ArtifactGen;

// app-gen: writes Mender artifacts for the App Update Module (payload type "app").
//
// Exit-code contract (ExitCodes in Errors.cs; every exception is mapped here, in one place):
//   0    success: the artifact exists at --output-path (and, with --json, the summary is on stdout)
//   2    usage error: unknown option, missing required option, bad option value
//   3    invalid input: application name, orchestrator, platform, manifests dir missing/empty,
//        compose/k8s file unreadable, unreadable or unsupported signing key, bad --image-file
//   4    image unavailable: not in the engine nor the image files, platform mismatch, engine unreachable
//   5    delta generation failed: xdelta3 missing or failing, formats that cannot be paired
//   6    output not writable: missing output directory, disk full, permission denied
//   70   internal error (a bug): the message names the exception
//   143  cancelled (SIGINT/SIGTERM)
// (docs/exit-codes.md: the table every executable shares)
// On any non-zero exit no output file (and no temporary file) is left behind. Messages are one line on
// stderr ("app-gen: error: ..."); progress goes to stderr; only --json output goes to stdout.

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });

GenOptions? options = null;
try
{
    options = GenOptions.Parse(args);
    if (options.Help)
    {
        Console.Out.WriteLine(GenOptions.Usage);
        return ExitCodes.Success;
    }
    var result = await new Generator(options).RunAsync(cts.Token);
    if (options.Json) Console.Out.WriteLine(Generator.SummaryJson(result, options));
    return ExitCodes.Success;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    Console.Error.WriteLine("app-gen: cancelled; no artifact written");
    return ExitCodes.Cancelled;
}
catch (GenException e)
{
    Console.Error.WriteLine($"app-gen: error: {e.Message}");
    if (e is UsageException) Console.Error.WriteLine("app-gen: run app-gen --help for the options");
    return e.ExitCode;
}
catch (ArtifactException e)
{
    Console.Error.WriteLine($"app-gen: error: {e.Message}");
    return ExitCodes.InvalidInput;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"app-gen: error: {e.Message.ReplaceLineEndings(" ")} (writing {options?.OutputPath ?? "the artifact"})");
    return ExitCodes.OutputFailed;
}
catch (Exception e)
{
    Console.Error.WriteLine($"app-gen: internal error: {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
    return ExitCodes.Internal;
}
