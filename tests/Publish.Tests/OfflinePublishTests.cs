namespace Publish.Tests;

/// <summary>
/// Once packages are restored, a build needs no network (Yocto's do_compile and air-gapped CI have none):
/// the module's executable publishes, as build/publish.sh does for `make package`, inside a network
/// namespace of its own (<c>unshare -n</c>: not even loopback), with an empty NuGet HTTP cache and fresh
/// bin/obj directories, so that restore runs again and NuGet's vulnerability check cannot be answered.
/// </summary>
public class OfflinePublishTests
{
    [SkippableFact]
    public void Publishes_with_no_network_once_packages_are_restored()
    {
        var probe = Cmd.Run("unshare", ["-n", "true"]);
        Requires.Component("network namespaces", probe.ExitCode == 0, "`unshare -n` fails (the offline publish test needs root with CAP_SYS_ADMIN): " + probe.Stderr.Trim());
        using var dir = new TempDir("offline-publish");
        var output = dir.Dir("out");
        var env = new Dictionary<string, string?>
        {
            ["NUGET_HTTP_CACHE_PATH"] = dir.Dir("empty-http-cache"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };

        var r = Cmd.Run("unshare", ["-n", "dotnet", "publish", Path.Combine(Repo.Root, "src/AppModule"), "-c", "Release", "-r", "linux-x64",
            "--artifacts-path", dir.Dir("artifacts"), "-o", output, "-p:TreatWarningsAsErrors=true", "-nologo", "-clp:NoSummary", "-v:m"],
            env, timeout: TimeSpan.FromMinutes(15));

        Assert.True(r.ExitCode == 0, "an offline publish failed:\n" + r);
        var text = r.Stdout + r.Stderr;
        // The sandbox really had no network: NuGet could not fetch vulnerability data, and said so as a warning.
        Assert.Contains("warning NU1900", text, StringComparison.Ordinal);
        var otherWarnings = text.Split('\n')
            .Where(l => l.Contains("warning ", StringComparison.OrdinalIgnoreCase) && !l.Contains("NU1900", StringComparison.Ordinal))
            .ToList();
        Assert.True(otherWarnings.Count == 0, "warnings other than NU1900:\n" + string.Join('\n', otherWarnings));
        Assert.StartsWith("ELF 64-bit LSB pie executable, x86-64", Cmd.Ok(Tool.File, "-b", Path.Combine(output, "app")), StringComparison.Ordinal);
    }
}
