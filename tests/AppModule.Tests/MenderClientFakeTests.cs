namespace AppModule.Tests;

/// <summary>The real Mender client 3.4 driving our `app` (AOT binary) with the scriptable fake sub-module.</summary>
public class MenderClientFakeTests
{
    private static AppArtifactSpec Spec(MenderRig rig, string artifact, string app, string version, string extra = "")
    {
        var (path, id) = AppArtifacts.SyntheticImage(Path.Combine(rig.Artifacts, "img"), "web:" + version);
        return new AppArtifactSpec(artifact, app, [new AppImage("web:" + version, path, id)],
            new Dictionary<string, string> { ["docker-compose.yml"] = $"services:\n  web:\n    image: web:{version}\n{extra}" }, Orchestrator: "fake");
    }

    [SkippableFact]
    public void Install_and_commit_through_the_client_records_the_new_artifact_and_its_provides()
    {
        using var rig = new MenderRig();
        var app = Unique.Name("m");
        var install = rig.Install(Spec(rig, "app-v1", app, "1.0"));
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Equal("initial", rig.Client.ShowArtifact());
        var commit = rig.Client.Commit();
        Assert.True(commit.ExitCode == 0, commit.ToString());
        Assert.Equal("app-v1", rig.Client.ShowArtifact());
        Assert.Equal("app-v1", rig.Client.ShowProvides()[$"rootfs-image.{app}.version"]);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains("last-known-good: app-v1", rig.Status(app));
    }

    [SkippableFact]
    public void A_failing_health_check_is_rolled_back_by_the_client_without_INCONSISTENT_and_the_old_app_keeps_running()
    {
        using var rig = new MenderRig(healthTimeoutSeconds: 2);
        var app = Unique.Name("m");
        Assert.Equal(0, rig.Install(Spec(rig, "app-v1", app, "1.0")).ExitCode);
        Assert.Equal(0, rig.Client.Commit().ExitCode);

        var install = rig.Install(Spec(rig, "app-v2-broken", app, "2.0", "health: bad\n"));
        Assert.Equal(1, install.ExitCode);
        Assert.Contains("health check failed for " + app, install.Stderr + install.Stdout);
        Assert.Equal("app-v1", rig.Client.ShowArtifact());
        Assert.DoesNotContain("_INCONSISTENT", rig.Client.ShowArtifact());
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Equal(2, rig.Client.Rollback().ExitCode); // nothing pending any more
    }

    [SkippableFact]
    public void Mender_rollback_of_a_pending_install_restores_the_previous_composition()
    {
        using var rig = new MenderRig();
        var app = Unique.Name("m");
        Assert.Equal(0, rig.Install(Spec(rig, "app-v1", app, "1.0")).ExitCode);
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        Assert.Equal(0, rig.Install(Spec(rig, "app-v2", app, "2.0")).ExitCode);
        Assert.Contains("image: web:2.0", rig.Running(app));
        var rollback = rig.Client.Rollback();
        Assert.True(rollback.ExitCode == 0, rollback.ToString());
        Assert.Equal("app-v1", rig.Client.ShowArtifact());
        Assert.Contains("image: web:1.0", rig.Running(app));
    }

    [SkippableFact]
    public void A_second_install_while_one_is_pending_replaces_it_and_commit_keeps_the_second()
    {
        using var rig = new MenderRig();
        var app = Unique.Name("m");
        Assert.Equal(0, rig.Install(Spec(rig, "app-v1", app, "1.0")).ExitCode);
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        Assert.Equal(0, rig.Install(Spec(rig, "app-v2", app, "2.0")).ExitCode);
        var second = rig.Install(Spec(rig, "app-v3", app, "3.0"));
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("image: web:3.0", rig.Running(app));
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        Assert.Equal("app-v3", rig.Client.ShowArtifact());
        var status = rig.Status(app);
        Assert.Contains("last-known-good: app-v3", status);
        Assert.Contains("rollback:       app-v1", status);
    }

    [SkippableFact]
    public void When_the_app_breaks_before_commit_the_client_rolls_back_after_the_commit_step_to_the_last_known_good()
    {
        using var rig = new MenderRig(healthTimeoutSeconds: 2);
        var app = Unique.Name("m");
        Assert.Equal(0, rig.Install(Spec(rig, "app-v1", app, "1.0")).ExitCode);
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        Assert.Equal(0, rig.Install(Spec(rig, "app-v2", app, "2.0")).ExitCode);
        File.WriteAllText(Path.Combine(rig.FakeDir, "unhealthy-when-running"), "image: web:2.0");
        var commit = rig.Client.Commit();
        Assert.Equal(1, commit.ExitCode);
        Assert.Equal("app-v1", rig.Client.ShowArtifact());
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains("commit-rolled-back", rig.Status(app));
    }
}
