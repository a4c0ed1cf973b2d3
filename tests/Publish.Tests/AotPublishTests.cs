namespace Publish.Tests;

/// <summary>
/// Every shipped executable publishes with Native AOT for linux-x64 without a single IL, trim or AOT
/// warning (warnings are errors by policy), and the result is a self-contained native ELF binary.
/// </summary>
public class AotPublishTests
{
    public static TheoryData<string, string> Executables => new()
    {
        { "src/AppModule", "app" },
        { "submodules/DockerCompose", "docker-compose" },
        { "submodules/Kubernetes", "k8s" },
        { "artifact-gen/ArtifactGen", "app-gen" },
        { "src/Fleet.Updater", "fleet-updater" },
        { "src/Fleet.Agent", "fleet-agent" },
    };

    [Theory]
    [MemberData(nameof(Executables))]
    public void Publishes_as_native_AOT_without_any_warning(string project, string binary)
    {
        var output = Path.Combine(Repo.Root, "out", "publish-test", "linux-x64");
        var r = Cmd.Run("dotnet", ["publish", Path.Combine(Repo.Root, project), "-c", "Release", "-r", "linux-x64", "-o", output,
            "-p:TreatWarningsAsErrors=true", "-nologo", "-clp:NoSummary", "-v:m"], timeout: TimeSpan.FromMinutes(15));
        Assert.True(r.ExitCode == 0, $"publish of {project} failed:\n{r}");
        var warnings = (r.Stdout + r.Stderr).Split('\n').Where(l => l.Contains("warning ", StringComparison.OrdinalIgnoreCase) && !l.Contains("NETSDK1057", StringComparison.Ordinal)).ToList();
        Assert.True(warnings.Count == 0, "publish warnings:\n" + string.Join('\n', warnings));

        var exe = Path.Combine(output, binary);
        Assert.True(File.Exists(exe), exe + " missing");
        Assert.False(File.Exists(Path.Combine(output, binary + ".dll")), "a managed assembly was published: not Native AOT");
        var file = Cmd.Ok("file", "-b", exe);
        Assert.StartsWith("ELF 64-bit LSB pie executable, x86-64", file, StringComparison.Ordinal);
    }
}
