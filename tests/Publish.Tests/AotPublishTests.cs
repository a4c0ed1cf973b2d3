namespace Publish.Tests;

/// <summary>
/// Every shipped executable publishes with Native AOT for linux-x64 without a single IL, trim or AOT
/// warning (warnings are errors by policy), and the result is a self-contained native ELF binary.
/// </summary>
public class AotPublishTests
{
    /// <summary>The shipped executables as build/shipped.sh lists them (the csproj files' AppModuleShipped flag).</summary>
    public static TheoryData<string, string> Executables
    {
        get
        {
            var list = Cmd.Ok(Path.Combine(Repo.Root, "build", "shipped.sh"));
            var data = new TheoryData<string, string>();
            foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = line.Split('\t');
                data.Add(f[0], f[1]);
            }

            return data;
        }
    }

    [Fact]
    public void The_shipped_list_names_the_seven_executables_with_their_install_paths_and_packages() =>
        Assert.Equal(
            """
            artifact-gen/ArtifactGen	app-gen	usr/bin/app-gen	mender-app-gen
            src/AppModule	app	usr/share/mender/modules/v3/app	mender-app-modules
            src/Fleet.Agent	fleet-agent	usr/bin/fleet-agent	appmodule-fleet-agent
            src/Fleet.Updater	fleet-updater	usr/bin/fleet-updater	appmodule-fleet-updater
            submodules/DockerCompose	docker-compose	usr/share/mender/app-modules/v1/docker-compose	mender-app-modules
            submodules/Kubernetes	k8s	usr/share/mender/app-modules/v1/k8s	mender-app-modules
            submodules/Podman	podman	usr/share/mender/app-modules/v1/podman	mender-app-modules
            """,
            Cmd.Ok(Path.Combine(Repo.Root, "build", "shipped.sh")).TrimEnd('\n'));

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
        var file = Cmd.Ok(Tool.File, "-b", exe);
        Assert.StartsWith("ELF 64-bit LSB pie executable, x86-64", file, StringComparison.Ordinal);
    }
}
