namespace Hardening.Tests;

/// <summary>
/// The Mender client's module timeout (ModuleTimeoutSeconds): SIGTERM to the module's process
/// group, SIGKILL 60 s later. `app` must stop its sub-module (which runs in its own process group)
/// politely, exit, and leave a state the client's ArtifactRollback recovers from.
/// </summary>
public sealed class SigtermTests
{
    [SkippableFact]
    public void When_the_client_times_out_a_hanging_install_app_stops_its_sub_module_and_the_rollback_restores_v1()
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        using var rig = new DeviceRig(moduleTimeoutSeconds: 25);
        rig.InstallV1();
        var before = rig.State();

        rig.ArmFault("LOAD", "hang");
        var install = rig.Client.Install(rig.ArtifactFor("v2-hangs", rig.V2));
        rig.Disarm();

        Assert.True(install.ExitCode != 0, install.ToString());
        Assert.Contains("LOAD hang", rig.FaultsFired());
        var pid = rig.HangingPid;
        Assert.NotNull(pid);
        Assert.False(Directory.Exists($"/proc/{pid}"), $"the hanging sub-module (pid {pid}) still runs after app was stopped");
        Assert.Equal("v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", rig.Answer());
        var after = rig.AssertSettled("v1");
        Assert.Equal(before.Committed, after.Committed);

        // Recoverable: the next update goes through.
        var again = rig.Client.Install(rig.ArtifactFor("v2", rig.V2));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal("web 2.0", rig.Answer());
        Assert.Equal(0, rig.Client.Commit().ExitCode);
        rig.AssertSettled("v2");
    }

    [SkippableFact]
    public void When_the_client_times_out_a_hanging_rollout_after_STOP_the_rollback_brings_v1_back()
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        using var rig = new DeviceRig(moduleTimeoutSeconds: 40);
        rig.InstallV1();

        rig.ArmFault("ROLLOUT", "hang");
        var install = rig.Client.Install(rig.ArtifactFor("v2-hangs", rig.V2));
        rig.Disarm();

        Assert.True(install.ExitCode != 0, install.ToString());
        Assert.Contains("ROLLOUT hang", rig.FaultsFired());
        Assert.False(Directory.Exists($"/proc/{rig.HangingPid}"), "the hanging sub-module still runs after app was stopped");
        Assert.Equal("v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", rig.Answer());
        rig.AssertSettled("v1");
    }
}
