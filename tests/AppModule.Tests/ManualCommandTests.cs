namespace AppModule.Tests;

/// <summary>`app unpack`, `app simulate`, `app status` and the config file, for users testing without a Mender client.</summary>
public class ManualCommandTests
{
    [Fact]
    public void Unpack_writes_the_file_tree_the_client_would_hand_over()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("u");
        var spec = rig.Spec("u-v1", app, "services: {}\n", rig.Image("web:1.0"));
        var artifact = AppArtifacts.WriteMender(spec, rig.Root);
        var tree = Path.Combine(rig.Root, "unpacked");

        var r = rig.RunArgs("unpack", artifact, tree);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("3", File.ReadAllText(Path.Combine(tree, "version")));
        Assert.Equal("u-v1", File.ReadAllText(Path.Combine(tree, "header", "artifact_name")));
        Assert.Equal("app", File.ReadAllText(Path.Combine(tree, "header", "payload_type")));
        Assert.StartsWith("{\n  \"application_name\": \"" + app + "\",\n", File.ReadAllText(Path.Combine(tree, "header", "meta-data")));
        Assert.True(File.Exists(Path.Combine(tree, "files", "images.tar.gz")));
        Assert.True(File.Exists(Path.Combine(tree, "files", "manifests.tar.gz")));
        Assert.True(Directory.Exists(Path.Combine(tree, "tmp")));

        // The tree works as the client's: the module installs from it.
        Assert.Equal(0, rig.Install(tree).ExitCode);
        Assert.NotNull(rig.Running(app));
    }

    [Fact]
    public void Simulate_drives_install_and_commit_and_an_injected_failure_takes_the_clients_rollback_path()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("s");
        var v1 = AppArtifacts.WriteMender(rig.Spec("s-v1", app, "services:\n  web:\n    image: web:1.0\n", rig.Image("web:1.0")), rig.Root);
        var v2 = AppArtifacts.WriteMender(rig.Spec("s-v2", app, "services:\n  web:\n    image: web:2.0\n", rig.Image("web:2.0")), rig.Root);

        var ok = rig.RunArgs("simulate", v1);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal(["==> Download", "==> SupportsRollback", "    answer: Yes", "==> ArtifactInstall", "==> NeedsArtifactReboot", "    answer: No", "==> ArtifactCommit", "==> Cleanup", "result: committed"],
            ok.Stdout.Trim().Split('\n'));

        var failed = rig.RunArgs("simulate", v2, "--fail-at", "ArtifactCommit");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("==> ArtifactRollback", failed.Stdout);
        Assert.Contains("result: failed, rolled back", failed.Stdout);
        Assert.Contains("image: web:1.0", rig.Running(app));

        var rolledBack = rig.RunArgs("simulate", v2, "--then", "rollback");
        Assert.Equal(0, rolledBack.ExitCode);
        Assert.Contains("result: rolled back", rolledBack.Stdout);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains("last-known-good: s-v1", rig.RunArgs("status").Stdout);
    }

    [Fact]
    public void Simulate_reports_a_refused_artifact_on_stderr_as_one_sentence_and_exits_non_zero_leaving_v1_running()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("s");
        var v1 = AppArtifacts.WriteMender(rig.Spec("r-v1", app, "services:\n  web:\n    image: web:1.0\n", rig.Image("web:1.0")), rig.Root);
        Assert.Equal(0, rig.RunArgs("simulate", v1).ExitCode);

        // meta-data lists no images although the payload carries one: an inconsistent artifact.
        var lying = rig.Spec("r-v2", app, "services:\n  web:\n    image: web:2.0\n", rig.Image("web:2.0"));
        var v2 = AppArtifacts.WriteMender(lying with { MetaDataJson = AppArtifacts.MetaData(lying).Replace($"\"images\":[\"{lying.Images[0].Id}\"]", "\"images\":[]", StringComparison.Ordinal) }, rig.Root);
        var r = rig.RunArgs("simulate", v2);

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("result: failed, rolled back", r.Stdout);
        Assert.Contains("app: error: ArtifactInstall failed: meta-data \"images\" is empty, but images.tar.gz carries 1 image(s) (web:2.0)", r.Stderr);
        Assert.Contains("app: error: simulate ", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains("last-known-good: r-v1", rig.RunArgs("status").Stdout);

        // A payload type other than app is refused by the reader before anything else.
        var notApp = Path.Combine(rig.Root, "single-file.mender");
        Cmd.Ok(Tool.MenderArtifact, "write", "module-image", "-T", "single-file", "-n", "not-app", "-t", "test-device", "-f", v1, "-o", notApp, "--compression", "none");
        var refused = rig.RunArgs("simulate", notApp);
        Assert.Equal(4, refused.ExitCode);
        Assert.Contains("the artifact's payload type is \"single-file\"", refused.Stderr);
    }

    [Fact]
    public void The_reference_KEY_VALUE_config_is_accepted_and_a_bad_config_names_the_file_and_the_fix()
    {
        using var dir = new TempDir();
        var store = dir.Dir("refstore");
        var conf = dir.Write("ref.conf", $"# reference style\npersistent_store={store}\n");
        var r = Cmd.Run(ModuleRig.App, ["status"], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = conf });
        Assert.Equal(0, r.ExitCode);
        Assert.Equal($"no applications in {store}\n", r.Stdout);

        var bad = dir.Write("bad.conf", "health_timeout_seconds = \"soon\"\n");
        r = Cmd.Run(ModuleRig.App, ["status"], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = bad });
        Assert.Equal(3, r.ExitCode);
        Assert.Contains($"{bad}: health_timeout_seconds = \"soon\" is not a whole number", r.Stderr);

        var documented = Path.Combine(Repo.Root, "mender-app.conf");
        r = Cmd.Run(ModuleRig.App, ["status"], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = documented });
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("/data/mender-app", r.Stdout + string.Join(' ', r.Stdout.Split('\n').Where(l => l.StartsWith("application", StringComparison.Ordinal))));
    }

    [Fact]
    public void A_wrong_command_line_prints_the_usage_and_exits_2()
    {
        var r = Cmd.Run(ModuleRig.App, ["ArtifactInstall"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("ArtifactInstall needs the File API tree", r.Stderr);
        Assert.Equal(2, Cmd.Run(ModuleRig.App, []).ExitCode);
    }
}
