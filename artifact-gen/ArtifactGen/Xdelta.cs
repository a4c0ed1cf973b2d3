using System.Diagnostics;

namespace ArtifactGen;

/// <summary>Runs <c>xdelta3 -e -s</c> on the build machine, like the reference generator.</summary>
public static class Xdelta
{
    public static string Command => Environment.GetEnvironmentVariable("XDELTA_COMMAND") is { Length: > 0 } c ? c : "xdelta3";

    /// <summary>xdelta3 -e -D -s source target output (run in workDir; names relative to it end up in the VCDIFF
    /// application header). -D turns off xdelta3's external decompression: without it, xdelta3 gunzips
    /// gzip inputs (OCI layer blobs) before encoding and re-gzips on decoding, which does not give back
    /// the original bytes (the blob digest breaks). For uncompressed inputs (docker-archive tars and
    /// layers) the output is the same as the reference's plain `xdelta3 -e -s`.</summary>
    public static async Task EncodeAsync(string workDir, string source, string target, string output, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Command) { WorkingDirectory = workDir, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-e", "-D", "-s", source, target, output }) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi) ?? throw new DeltaException("xdelta3 did not start"); }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new DeltaException($"{Command} is not installed on this build machine, but deltas need it: install it (apt-get install xdelta3) or set XDELTA_COMMAND; or ship full images (--image NEW without CURRENT)");
        }
        using (p)
        {
            using var reg = ct.Register(() => { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } });
            var errTask = p.StandardError.ReadToEndAsync(ct);
            var outTask = p.StandardOutput.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct).ConfigureAwait(false);
            var err = await errTask.ConfigureAwait(false);
            await outTask.ConfigureAwait(false);
            if (p.ExitCode != 0)
                throw new DeltaException($"xdelta3 -e -s {source} {target} failed with exit code {p.ExitCode}: {err.Trim().ReplaceLineEndings(" ")}");
        }
    }
}
