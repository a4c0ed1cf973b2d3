using Hardening.Tests.Corpus;
using Xunit.Abstractions;

namespace Hardening.Tests;

/// <summary>
/// Faults of the engine itself, each on a private dockerd so the shared engine is never touched:
/// dockerd restarted (SIGTERM, then started again, as a service manager does) in the middle of
/// ROLLOUT, and the engine's disk filling up during LOAD (a small tmpfs data root). Through the
/// real Mender client 3.4, like the SIGKILL matrix; part of `make test-faults` (HARDENING_FAULTS=1).
/// </summary>
[Trait("Category", "Faults")]
public sealed class EngineFaultTests(ITestOutputHelper output)
{
    private static void RequireEnabled()
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the engine faults run in `make test-faults` (HARDENING_FAULTS=1)");
        MenderClient.Require();
        DockerEngine.RequireImages();
    }

    [SkippableFact]
    public void When_dockerd_restarts_in_the_middle_of_ROLLOUT_the_app_answers_at_the_old_or_new_version_and_the_next_update_works()
    {
        RequireEnabled();
        using var engine = new PrivateDockerd();
        using var rig = new DeviceRig(engine: engine);
        rig.InstallV1();

        rig.ArmFault("ROLLOUT", "hook-during");
        var install = rig.RunHooked(engine.Restart, () => rig.Client.Install(rig.ArtifactFor("v2", rig.V2)));
        rig.Disarm();
        Assert.True(rig.FaultsFired().LastOrDefault() == "ROLLOUT hook-during", $"the engine was not restarted during ROLLOUT\n{install}");
        var commit = install.ExitCode == 0 ? rig.Client.Commit() : null;
        output.WriteLine($"install through the restart: {install}\ncommit: {commit?.ToString() ?? "not run"}");

        // Whatever the client recorded is what must run, and the store must be settled on it.
        var shown = rig.Client.ShowArtifact();
        Assert.True(shown is "v1" or "v2", $"the client shows {shown} after the engine restart\n{install}\n{commit}\n{rig.Status().Stdout}");
        var expected = shown == "v2" ? "web 2.0" : "web 1.0";
        Assert.True(rig.Answer() == expected, $"the client shows {shown}, the app answers {rig.Answer(5) ?? "nothing"}\n{install}\n{commit}\n{rig.Status().Stdout}");
        rig.AssertSettled(shown);

        // The next update, to the other version, works on the restarted engine.
        var (follow, image, answer) = shown == "v2" ? ("v3", rig.V1, "web 1.0") : ("v3", rig.V2, "web 2.0");
        var again = rig.Client.Install(rig.ArtifactFor(follow, image));
        Assert.True(again.ExitCode == 0, $"the next update after the engine restart: {again}\n{engine.Log}");
        Assert.True(rig.Client.Commit().ExitCode == 0, "committing the next update");
        Assert.Equal(answer, rig.Answer());
        rig.AssertSettled(follow);
    }

    [SkippableFact]
    public void When_the_engine_disk_fills_up_during_LOAD_the_install_fails_naming_the_cause_and_the_old_version_keeps_serving()
    {
        RequireEnabled();
        using var engine = new PrivateDockerd(dataRootMiB: 48);
        // The pre-check would refuse this artifact before LOAD (EngineDiskPreCheckTests): off, to reach the disk filling up during LOAD.
        using var rig = new DeviceRig(engine: engine, appConfig: "engine_disk_check = false");
        rig.InstallV1();

        // v2 with a 64 MiB incompressible layer: more than the engine's whole data root.
        using var context = new TempDir("big-image");
        using (var pad = File.Create(context.File("pad")))
        {
            var block = new byte[1 << 20];
            for (var i = 0; i < 64; i++)
            {
                Random.Shared.NextBytes(block);
                pad.Write(block);
            }
        }

        context.Write("Dockerfile", "FROM appmodule/web:2.0\nCOPY pad /pad\n");
        var bigTag = $"{rig.App}/web:big";
        DockerEngine.DockerOk("build", "-q", "-t", bigTag, context.Path);
        var big = AppArtifacts.SaveDockerImage(bigTag, bigTag, rig.Artifacts);
        DockerEngine.DockerOk("image", "rm", bigTag);

        var install = rig.Client.Install(rig.ArtifactFor("v2-big", new CorpusImage(big.UrlNew, big.Id, big.SavedPath)));
        output.WriteLine($"install on a full disk: {install}");
        Assert.NotEqual(0, install.ExitCode);
        Assert.Contains("no space left on device", install.Stdout + install.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", rig.Answer());
        rig.AssertSettled("v1");
        Assert.Null(rig.ImageId(big.UrlNew));

        // Once the failed load is gone, an update that fits installs.
        var again = rig.Client.Install(rig.ArtifactFor("v2", rig.V2));
        Assert.True(again.ExitCode == 0, $"the next update after the disk filled up: {again}\n{rig.Docker("system", "df").Stdout}");
        Assert.True(rig.Client.Commit().ExitCode == 0, "committing the next update");
        Assert.Equal("web 2.0", rig.Answer());
        rig.AssertSettled("v2");
    }
}
