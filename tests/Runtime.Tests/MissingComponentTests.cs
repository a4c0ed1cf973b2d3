using System.Text.RegularExpressions;

namespace Runtime.Tests;

/// <summary>
/// A green run means the components were there: a test host started with the Mender client taken off
/// PATH fails under CI=true naming the component and how to install it, and without CI skips with the
/// same line (TestSupport/Requires).
/// </summary>
public sealed partial class MissingComponentTests
{
    private const string MenderTest = "FullyQualifiedName~Runtime.Tests.MenderHarnessTests";

    [Fact]
    public void Without_the_Mender_client_on_PATH_a_CI_run_fails_naming_it()
    {
        var r = RunWithout("mender", MenderTest, ci: true);

        Assert.True(r.ExitCode != 0, "the test run should fail: " + r);
        Assert.Contains("Failed Runtime.Tests.MenderHarnessTests.", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("MissingComponentException : missing component Mender client: `mender` is not on PATH: `apt-get install mender-client`", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Skipped Runtime.Tests.", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_the_Mender_client_on_PATH_a_local_run_skips_with_the_same_line()
    {
        var r = RunWithout("mender", MenderTest, ci: false);

        Assert.True(r.ExitCode == 0, "a skip is not a failure outside CI: " + r);
        Assert.Contains("Skipped Runtime.Tests.MenderHarnessTests.", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("missing component Mender client: `mender` is not on PATH: `apt-get install mender-client`", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Failed Runtime.Tests.", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_mender_artifact_on_PATH_a_CI_run_fails_naming_it_where_the_test_would_have_run_it()
    {
        // The harness test finds the client, then writes its artifact through TestSupport/Tool.
        var r = RunWithout("mender-artifact", MenderTest, ci: true);

        Assert.True(r.ExitCode != 0, "the test run should fail: " + r);
        Assert.Contains("MissingComponentException : missing component mender-artifact: `mender-artifact` is not on PATH: `apt-get install mender-artifact`", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Win32Exception", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Tests_run_external_programs_through_Tool_not_by_bare_name()
    {
        // The programs TestSupport/Tool names: run by a bare name they fail as "file not found", not as a missing component.
        var bare = new Regex(@"(Cmd|Tools)\.(Run|Ok|MustRun)\(""(/usr/bin/)?(mender-artifact|xdelta3|skopeo|openssl|file|lintian|gcc|qemu-aarch64-static|podman|catatonit)""");
        var offenders = Directory.EnumerateFiles(Path.Combine(Repo.Root, "tests"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal))
            .Where(f => bare.IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(Repo.Root, f))
            .ToList();

        Assert.True(offenders.Count == 0, "run these through TestSupport/Tool (e.g. Cmd.Ok(Tool.MenderArtifact, ...)): " + string.Join(", ", offenders));
    }

    [Fact]
    public void Requires_is_the_only_way_a_test_skips()
    {
        // Built from parts so that this file does not match itself.
        var direct = new Regex(Regex.Escape("Skip" + ".If") + @"(Not)?\(|new\s+" + Regex.Escape("Skip" + "Exception") + @"\(");
        var offenders = Directory.EnumerateFiles(Path.Combine(Repo.Root, "tests"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal))
            .Where(f => !f.EndsWith("/TestSupport/Requires.cs", StringComparison.Ordinal))
            .Where(f => direct.IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(Repo.Root, f))
            .ToList();

        Assert.True(offenders.Count == 0, "skip through TestSupport/Requires (Component or Applicable), not directly: " + string.Join(", ", offenders));
    }

    /// <summary>Runs this assembly's tests matching <paramref name="filter"/> in a new test host whose PATH
    /// holds everything the current PATH holds except <paramref name="program"/>.</summary>
    private static CmdResult RunWithout(string program, string filter, bool ci)
    {
        using var dir = new TempDir("path-without-" + program);
        var bin = dir.Dir("bin");
        foreach (var pathDir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries).Where(Directory.Exists))
        {
            foreach (var file in Directory.EnumerateFileSystemEntries(pathDir))
            {
                var name = Path.GetFileName(file);
                var link = Path.Combine(bin, name);
                if (name != program && !File.Exists(link) && !Directory.Exists(link))
                {
                    File.CreateSymbolicLink(link, file);
                }
            }
        }

        Assert.False(File.Exists(Path.Combine(bin, program)), $"{program} should be off the new PATH");
        var dotnet = Environment.ProcessPath is { } self && Path.GetFileName(self) == "dotnet" ? self : Requires.Which("dotnet") ?? "dotnet";
        var env = new Dictionary<string, string?> { ["PATH"] = bin, ["CI"] = ci ? "true" : null };
        return Cmd.Run(dotnet, ["test", typeof(MissingComponentTests).Assembly.Location, "--filter", filter, "--logger", "console;verbosity=detailed"], env, timeout: TimeSpan.FromMinutes(3));
    }
}
