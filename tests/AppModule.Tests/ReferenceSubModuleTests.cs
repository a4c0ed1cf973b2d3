namespace AppModule.Tests;

/// <summary>A reference-style shell sub-module (reference-submodule/docker-compose) driven by our `app` under the real Mender client.</summary>
public class ReferenceSubModuleTests
{
    [SkippableFact]
    public void Our_app_drives_a_reference_shell_sub_module_through_install_commit_update_and_rollback()
    {
        using var rig = new MenderRig();
        using var web = new WebApps(rig.Artifacts);
        var script = Path.Combine(AppContext.BaseDirectory, "reference-submodule", "docker-compose");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        rig.InstallSubModule("docker-compose", script);
        var log = Path.Combine(rig.Artifacts, "reference.log");
        rig.Client.Environment["REFERENCE_SUBMODULE_LOG"] = log;
        var app = Unique.Name("ref");
        var port = WebApps.FreePort();
        var v1 = web.Image(app, "1.0");
        var v2 = web.Image(app, "2.0");

        var install = rig.Install(web.Spec("ref-v1", app, v1, port));
        Assert.True(install.ExitCode == 0, install.ToString());
        // The reference has no STORAGE ("unknown call", exit 1): the engine-disk pre-check is skipped with a warning, nothing else changes.
        Assert.Contains("the engine's disk space is not checked: the sub-module docker-compose did not answer STORAGE", install.Stdout + install.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        Assert.Equal("web 1.0", WebApps.Answer(port));

        var update = rig.Install(web.Spec("ref-v2", app, v2, port));
        Assert.True(update.ExitCode == 0, update.ToString());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        var rollback = rig.Client.Rollback();
        Assert.True(rollback.ExitCode == 0, rollback.ToString());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("ref-v1", rig.Client.ShowArtifact());
        Assert.False(WebApps.TagExists(v2.UrlNew)); // Cleanup deleted the image no composition uses
        Assert.True(WebApps.TagExists(v1.UrlNew));

        var calls = File.ReadAllLines(log).Select(l => l.Split(" | ")[0].Split(' ')[0]).ToArray();
        Assert.Equal(["REQS", "STORAGE", "LOAD", "ROLLOUT", "ALIVE", "HEALTHY"], calls[..6]);
        Assert.Contains("ROLLBACK", calls);
        Assert.Contains("DELETE", calls);
        Assert.All(File.ReadAllLines(log), l => Assert.EndsWith("platform=linux/amd64", l));
        var rollbackLine = File.ReadAllLines(log).First(l => l.StartsWith("ROLLBACK", StringComparison.Ordinal));
        Assert.Matches($"^ROLLBACK {app} {rig.Store}/{app}/c-000001/manifests {rig.Store}/{app}/c-000002/manifests", rollbackLine);
    }
}
