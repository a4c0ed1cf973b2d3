using System.Diagnostics;
using TestSupport;

namespace Fleet.Tests;

/// <summary>The published fleet-updater run as the operator runs it: one command to its end.</summary>
internal static class UpdaterCli
{
    /// <summary>Runs <c>fleet-updater --config CONF ARGS...</c> with <paramref name="env"/>: exit code, stdout, stderr.</summary>
    public static (int Code, string Out, string Err) Run(string conf, IReadOnlyDictionary<string, string?> env, params string[] args)
    {
        var psi = new ProcessStartInfo(Repo.Binary("fleet-updater")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(conf);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "fleet-updater " + string.Join(' ', args) + " did not end");
        return (p.ExitCode, stdout, err.Result);
    }
}
