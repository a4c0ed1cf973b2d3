namespace Runtime.Tests;

/// <summary>Proves the isolated Mender client harness that every end-to-end test stands on.</summary>
public class MenderHarnessTests
{
    [SkippableFact]
    public void The_isolated_client_runs_a_module_and_records_the_new_artifact_after_commit()
    {
        MenderClient.Require();
        using var client = new MenderClient();
        using var dir = new TempDir();
        var log = dir.File("calls.log");
        var module = dir.Write("logger", $"#!/bin/sh\necho \"$1\" >> {log}\ncase \"$1\" in SupportsRollback) echo Yes;; NeedsArtifactReboot) echo No;; esac\n");
        File.SetUnixFileMode(module, (UnixFileMode)0b111_101_101);
        client.AddModule("logger", module);
        var payload = dir.Write("a.txt", "hello");
        var artifact = dir.File("a.mender");
        Cmd.Ok(Tool.MenderArtifact, "write", "module-image", "-T", "logger", "-n", "harness-1", "-t", "test-device", "-f", payload, "-o", artifact);

        var install = client.Install(artifact);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Equal("initial", client.ShowArtifact());
        var commit = client.Commit();
        Assert.True(commit.ExitCode == 0, commit.ToString());
        Assert.Equal("harness-1", client.ShowArtifact());
        Assert.Equal(["Download", "SupportsRollback", "ArtifactInstall", "NeedsArtifactReboot", "ArtifactCommit", "Cleanup"], File.ReadAllLines(log));
        Assert.Equal(2, client.Commit().ExitCode); // nothing left to commit
    }
}
