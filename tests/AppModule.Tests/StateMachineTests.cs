namespace AppModule.Tests;

/// <summary>The `app` module's states driven like the Mender client drives them, against the scriptable fake sub-module.</summary>
public class StateMachineTests
{
    private static string Web(string version, string extra = "") => $"services:\n  web:\n    image: web:{version}\n{extra}";

    [Fact]
    public void Query_states_print_only_the_exact_answer_and_other_states_print_nothing()
    {
        using var rig = new ModuleRig();
        Assert.Equal("Yes\n", rig.Run("SupportsRollback", rig.Root).Stdout);
        Assert.Equal("No\n", rig.Run("NeedsArtifactReboot", rig.Root).Stdout);
        Assert.Equal("No\n", rig.Run("ProvidePayloadFileSizes", rig.Root).Stdout);
        foreach (var s in new[] { "ArtifactReboot", "ArtifactVerifyReboot", "ArtifactRollbackReboot", "ArtifactVerifyRollbackReboot", "SomeFutureState" })
        {
            var r = rig.Run(s, rig.Root);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(string.Empty, r.Stdout);
        }
    }

    [Fact]
    public void Install_streams_each_image_into_LOAD_rolls_out_waits_for_health_and_commit_makes_it_last_known_good()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var image = rig.Image("web:1.0");
        var tree = rig.Tree(rig.Spec("v1", app, Web("1.0"), image));

        var install = rig.Install(tree);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Equal(string.Empty, install.Stdout);
        var calls = rig.CallNames();
        Assert.Equal("REQS", calls[0]);
        Assert.StartsWith($"LOAD {app} web:1.0@sha256:{image.Id} {tree}/tmp/load-", calls[1]);
        Assert.Contains($"bytes={new FileInfo(image.SavedPath).Length}", rig.Calls()[1]);
        Assert.StartsWith($"ROLLOUT {app} {rig.Store}/{app}/c-", calls[2]);
        Assert.Equal([$"ALIVE {app}", $"HEALTHY {app}"], calls[3..5]);
        Assert.All(rig.Calls(), c => Assert.EndsWith("platform=linux/amd64", c.Split(" bytes=")[0]));
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.DoesNotContain(".fifo", string.Join(' ', Directory.GetFiles(Path.Combine(tree, "tmp"))));

        var status = rig.RunArgs("status", app);
        Assert.Contains("pending:        v1", status.Stdout);
        Assert.True(rig.Commit(tree).ExitCode == 0);
        status = rig.RunArgs("status", app);
        Assert.Contains("last-known-good: v1", status.Stdout);
        Assert.Contains("pending:        -", status.Stdout);
    }

    /// <summary>
    /// A power cut in Cleanup after it deleted a demoted version (its images DELETEd, its directory gone) but before
    /// state.json recorded "collected": the next Cleanup finds the record of a version that no longer exists and
    /// drops it (it stayed "to collect" for ever). The same engine code collects for the fleet agent
    /// (Hardening.Tests AgentStoreWriteFaultTests kills the agent at every rename of an update).
    /// </summary>
    [Fact]
    public void A_Cleanup_killed_after_it_deleted_a_version_but_before_it_recorded_that_is_finished_by_the_next_Cleanup()
    {
        using var rig = new ModuleRig();
        var log = Path.Combine(rig.Root, "renames.log");
        int? killAt = null;

        // Two applications through the same steps: the first Cleanup only counts its renames, the second is
        // killed just before the rename after the one that removed version 1's directory.
        foreach (var pass in new[] { "census", "killed" })
        {
            var app = Unique.Name("a");
            var t1 = rig.Tree(rig.Spec("v1", app, Web(pass + "-1.0"), rig.Image($"web:{pass}-1.0")));
            Assert.Equal(0, rig.Install(t1).ExitCode);
            Assert.Equal(0, rig.Commit(t1).ExitCode);
            var t2 = rig.Tree(rig.Spec("v2", app, Web(pass + "-2.0"), rig.Image($"web:{pass}-2.0")));
            Assert.Equal(0, rig.Install(t2).ExitCode);
            Assert.Equal(0, rig.Commit(t2).ExitCode);
            var t3 = rig.Tree(rig.Spec("v3", app, Web(pass + "-3.0"), rig.Image($"web:{pass}-3.0")));
            Assert.Equal(0, rig.Install(t3).ExitCode);
            Assert.Equal(0, rig.Run("ArtifactCommit", t3).ExitCode); // demotes v1 (v2 stays as the rollback version)
            var v1 = Path.Combine(rig.Store, app, "c-000001");
            Assert.True(Directory.Exists(v1));

            var cleanup = rig.RunKilledAtRename("Cleanup", t3, killAt ?? 0, log);
            var renames = File.ReadAllLines(log);
            if (killAt is null)
            {
                Assert.True(cleanup.ExitCode == 0, cleanup.ToString());
                var removed = Array.FindIndex(renames, r => r.Contains($" {v1} -> ", StringComparison.Ordinal));
                Assert.True(removed >= 0 && removed + 1 < renames.Length && renames[removed + 1].Contains("state.json", StringComparison.Ordinal),
                    "Cleanup did not remove version 1's directory and then write state.json:\n" + string.Join('\n', renames));
                killAt = removed + 2;
                continue;
            }

            Assert.True(renames[^1].EndsWith(" KILLED", StringComparison.Ordinal) && renames.Length == killAt, string.Join('\n', renames) + "\n" + cleanup);
            Assert.False(Directory.Exists(v1));
            Assert.False(rig.HasImage($"web:{pass}-1.0"));
            Assert.Equal(["c-000001"], ToCollect(rig, app).Collect);

            var again = rig.Run("Cleanup", t3);
            Assert.True(again.ExitCode == 0, again.ToString());
            var (collect, journal) = ToCollect(rig, app);
            Assert.Empty(collect);
            Assert.Contains("collected c-000001 (already deleted)", journal);
            Assert.True(rig.HasImage($"web:{pass}-2.0") && rig.HasImage($"web:{pass}-3.0"));
            Assert.Contains("last-known-good: v3", rig.RunArgs("status", app).Stdout);
        }
    }

    /// <summary>The versions left to collect and the journal's last entries ("event detail"), as `app status --json` reports them.</summary>
    private static (string[] Collect, string[] Journal) ToCollect(ModuleRig rig, string app)
    {
        var r = rig.RunArgs("status", "--json", app);
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var a = doc.RootElement.GetProperty("applications")[0];
        return (a.GetProperty("to_collect").EnumerateArray().Select(e => e.GetString()!).ToArray(),
            a.GetProperty("journal").EnumerateArray().Select(e => $"{e.GetProperty("event").GetString()} {e.GetProperty("detail").GetString()}").ToArray());
    }

    [Fact]
    public void Rollback_of_a_pending_install_restores_the_last_known_good_and_cleanup_deletes_only_unused_images()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), rig.Image("web:2.0")));
        rig.ClearCalls();

        Assert.Equal(0, rig.Install(t2).ExitCode);
        Assert.Contains("image: web:2.0", rig.Running(app));
        var calls = rig.CallNames();
        var stop = Array.FindIndex(calls, c => c.StartsWith("STOP", StringComparison.Ordinal));
        var load = Array.FindIndex(calls, c => c.StartsWith("LOAD", StringComparison.Ordinal));
        var rollout = Array.FindIndex(calls, c => c.StartsWith("ROLLOUT", StringComparison.Ordinal));
        Assert.True(load < stop && stop < rollout, string.Join('\n', calls));

        rig.ClearCalls();
        var rb = rig.Rollback(t2);
        Assert.True(rb.ExitCode == 0, rb.ToString());
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains(rig.CallNames(), c => c.StartsWith($"ROLLBACK {app} {rig.Store}/{app}/c-000001/manifests {rig.Store}/{app}/c-000002/manifests", StringComparison.Ordinal));
        Assert.Contains("DELETE web:2.0 " + app, rig.CallNames());
        Assert.True(rig.HasImage("web:1.0"));
        Assert.False(rig.HasImage("web:2.0"));
        Assert.Contains("last-known-good: v1", rig.RunArgs("status", app).Stdout);
    }

    [Fact]
    public void A_failing_health_check_fails_the_install_naming_the_step_and_the_output_and_rollback_restores_the_old_app()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);

        var t3 = rig.Tree(rig.Spec("v3", app, Web("3.0", "health: bad\n"), rig.Image("web:3.0")));
        var install = rig.Install(t3);
        Assert.Equal(1, install.ExitCode);
        Assert.Contains("health check failed for " + app, install.Stderr);
        Assert.Contains("is unhealthy: health check exited 1", install.Stderr);

        Assert.Equal(0, rig.Rollback(t3, failure: true).ExitCode);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains("last-known-good: v1", rig.RunArgs("status", app).Stdout);
    }

    [Fact]
    public void A_failing_rollout_names_the_step_the_application_and_the_sub_module_output()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t = rig.Tree(rig.Spec("v1", app, Web("1.0", "rollout: fail\n"), rig.Image("web:1.0")));
        var install = rig.Install(t);
        Assert.Equal(1, install.ExitCode);
        Assert.Contains($"ROLLOUT failed for application {app} (v1): fake ROLLOUT exited with status 1 | sub-module output: service web of {app} failed to start: exited with code 3", install.Stderr);
        Assert.Equal(0, rig.Rollback(t, failure: true).ExitCode);
        Assert.Null(rig.Running(app)); // first install: nothing to go back to, and nothing left running
        Assert.Contains($"STOP {app}", string.Join('\n', rig.CallNames()));
    }

    [Fact]
    public void A_commit_that_finds_the_app_unhealthy_fails_and_rollback_after_the_commit_returns_to_the_last_known_good()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), rig.Image("web:2.0")));
        Assert.Equal(0, rig.Install(t2).ExitCode);

        // The app breaks between install and commit (here: the fake engine reports it unhealthy).
        rig.FailCall("HEALTHY", "web: container is unhealthy");
        var commit = rig.Run("ArtifactCommit", t2);
        Assert.Equal(1, commit.ExitCode);
        Assert.Contains("not alive and healthy", commit.Stderr);
        File.Delete(Path.Combine(rig.FakeDir, "fail-HEALTHY"));

        Assert.Equal(0, rig.Rollback(t2, failure: true).ExitCode);
        Assert.Contains("image: web:1.0", rig.Running(app));
        var status = rig.RunArgs("status", app).Stdout;
        Assert.Contains("last-known-good: v1", status);
        Assert.Contains("commit-rolled-back", status);
    }

    [Fact]
    public void A_second_install_while_one_is_pending_abandons_the_first_and_rollback_returns_to_the_committed_one()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), rig.Image("web:2.0")));
        Assert.Equal(0, rig.Install(t2).ExitCode);

        // The client 3.4 drops the pending v2 silently and starts v3 in a fresh tree.
        var t3 = rig.Tree(rig.Spec("v3", app, Web("3.0"), rig.Image("web:3.0")));
        rig.ClearCalls();
        var install = rig.Install(t3);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains("abandoning it for v3", install.Stderr);
        Assert.Contains(rig.CallNames(), c => c.StartsWith($"STOP {app} {rig.Store}/{app}/c-000002/manifests", StringComparison.Ordinal));
        Assert.Contains("image: web:3.0", rig.Running(app));

        Assert.Equal(0, rig.Rollback(t3).ExitCode);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.False(rig.HasImage("web:2.0"));
        Assert.False(rig.HasImage("web:3.0"));
        Assert.True(rig.HasImage("web:1.0"));
    }

    [Fact]
    public void Supports_rollback_asked_after_the_install_as_client_4_does_gives_the_same_answer_and_the_same_outcome()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal("No\n", rig.Run("ProvidePayloadFileSizes", t).Stdout);
        Assert.Equal(0, rig.Run("Download", t).ExitCode);
        Assert.Equal(0, rig.Run("ArtifactInstall", t).ExitCode);
        Assert.Equal("No\n", rig.Run("NeedsArtifactReboot", t).Stdout);
        Assert.Equal("Yes\n", rig.Run("SupportsRollback", t).Stdout);
        Assert.Equal(0, rig.Commit(t).ExitCode);
        Assert.Contains("last-known-good: v1", rig.RunArgs("status", app).Stdout);
    }

    [Fact]
    public void A_missing_delta_base_is_refused_before_anything_is_loaded_or_stopped()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);
        rig.ClearCalls();

        var (deltaPath, _) = AppArtifacts.SyntheticImage(rig.Images, "delta-bytes"); // content is irrelevant: refused first
        var missingBase = new AppImage("web:2.0", deltaPath, rig.Image("web:2.0").Id, UrlCurrent: "web:0.9", IdCurrent: new string('a', 64));
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), missingBase));
        var install = rig.Install(t2);
        Assert.Equal(1, install.ExitCode);
        Assert.Contains("pre-check failed for web:2.0: the delta base web:0.9", install.Stderr);
        Assert.Contains("nothing was stopped", install.Stderr);
        Assert.Contains("No such image: web:0.9", install.Stderr);
        Assert.DoesNotContain(rig.CallNames(), c => c.StartsWith("STOP", StringComparison.Ordinal) || c.StartsWith("LOAD", StringComparison.Ordinal) || c.StartsWith("ROLLOUT", StringComparison.Ordinal));
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Equal(0, rig.Rollback(t2, failure: true).ExitCode);
        Assert.Contains("image: web:1.0", rig.Running(app));
    }

    [Fact]
    public void Env_keys_of_the_meta_data_reach_the_sub_module_as_environment_variables_only()
    {
        using var rig = new ModuleRig();
        File.WriteAllText(Path.Combine(rig.FakeDir, "record-env"), "K8S_NAMESPACE\nGREETING\n");
        var app = Unique.Name("a");
        var spec = rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0", platform: "linux/arm/v7")) with
        {
            Env = new Dictionary<string, string> { ["K8S_NAMESPACE"] = "ns1", ["GREETING"] = "hello $(touch /tmp/pwned) `x` ;" },
            Platform = "linux/arm/v7",
        };
        var t = rig.Tree(spec);
        Assert.Equal(0, rig.Install(t).ExitCode);
        Assert.All(rig.Calls(), c => Assert.Contains("platform=linux/arm/v7 K8S_NAMESPACE=ns1 GREETING=hello $(touch /tmp/pwned) `x` ;", c));
    }

    [Fact]
    public void Every_call_carries_apps_log_level_and_the_pre_check_gets_the_new_manifests_and_images()
    {
        using var rig = new ModuleRig("log_level = \"debug\"\n");
        File.WriteAllText(Path.Combine(rig.FakeDir, "record-env"), "MENDER_APP_LOG_LEVEL\nMENDER_APP_MANIFESTS_DIR\nMENDER_APP_IMAGES\n");
        var app = Unique.Name("a");
        var t = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t).ExitCode);

        Assert.All(rig.Calls(), c => Assert.Contains("MENDER_APP_LOG_LEVEL=debug", c));
        var reqs = Assert.Single(rig.Calls(), c => c.StartsWith("REQS", StringComparison.Ordinal));
        Assert.DoesNotContain("MENDER_APP_MANIFESTS_DIR=<unset>", reqs);
        Assert.Matches("MENDER_APP_IMAGES=(sha256:)?[0-9a-f]{64} web:1.0", reqs);
        var rollout = Assert.Single(rig.Calls(), c => c.StartsWith("ROLLOUT", StringComparison.Ordinal));
        Assert.Contains("MENDER_APP_MANIFESTS_DIR=<unset>", rollout);
    }

    [Fact]
    public void Cleanup_keeps_images_another_application_still_uses()
    {
        using var rig = new ModuleRig();
        var a = Unique.Name("a");
        var b = Unique.Name("b");
        var shared = rig.Image("shared:1");
        var ta = rig.Tree(rig.Spec("a1", a, Web("1.0"), shared));
        Assert.Equal(0, rig.Install(ta).ExitCode);
        Assert.Equal(0, rig.Commit(ta).ExitCode);
        var tb = rig.Tree(rig.Spec("b1", b, Web("1.0"), shared));
        Assert.Equal(0, rig.Install(tb).ExitCode);
        Assert.Equal(0, rig.Commit(tb).ExitCode);

        // b moves on twice; its old compositions are collected, but a still runs shared:1.
        foreach (var v in new[] { "b2", "b3" })
        {
            var t = rig.Tree(rig.Spec(v, b, Web(v), rig.Image("only-" + v)));
            Assert.Equal(0, rig.Install(t).ExitCode);
            Assert.Equal(0, rig.Commit(t).ExitCode);
        }

        Assert.True(rig.HasImage("shared:1"));
        Assert.True(rig.HasImage("only-b2")); // b's rollback composition
        Assert.True(rig.HasImage("only-b3"));
        Assert.NotNull(rig.Running(a));
        Assert.Contains("image: web:b3", rig.Running(b));
    }

    [Fact]
    public void A_whole_image_delta_is_rebuilt_against_the_saved_base_checked_and_loaded_as_a_full_image()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var v1 = rig.Image("web:1.0", payload: new string('1', 5000));
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), v1));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);

        var v2 = rig.Image("web:2.0", payload: new string('1', 4000) + "changed");
        var delta = Path.Combine(rig.Images, "v2.vcdiff");
        Cmd.Ok(Tool.Xdelta3, "-e", "-f", "-s", v1.SavedPath, v2.SavedPath, delta);
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), new AppImage("web:2.0", delta, v2.Id, UrlCurrent: "web:1.0", IdCurrent: v1.Id)));
        rig.ClearCalls();
        var install = rig.Install(t2);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains("rebuilt web:2.0 from its delta against web:1.0", install.Stderr);
        var calls = rig.Calls();
        Assert.StartsWith($"SAVE {app} web:1.0 ", calls[1]);
        Assert.Contains($"bytes={new FileInfo(v2.SavedPath).Length} sha256={Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(v2.SavedPath)))[..12]}", calls[2]);
        Assert.Contains("image: web:2.0", rig.Running(app));
    }

    [Fact]
    public void An_install_stopped_by_SIGTERM_in_the_middle_of_ROLLOUT_stops_the_sub_module_and_rollback_recovers_the_last_known_good()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t1 = rig.Tree(rig.Spec("v1", app, Web("1.0"), rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(t1).ExitCode);
        Assert.Equal(0, rig.Commit(t1).ExitCode);

        // The client's module timeout sends SIGTERM; here `timeout` does, while ROLLOUT of v2 hangs.
        File.WriteAllText(Path.Combine(rig.FakeDir, "delay-ROLLOUT"), "60");
        var t2 = rig.Tree(rig.Spec("v2", app, Web("2.0"), rig.Image("web:2.0")));
        var env = rig.Environment;
        var killed = Cmd.Run("timeout", ["--preserve-status", "-s", "TERM", "8", ModuleRig.App, "ArtifactInstall", t2], env);
        Assert.Equal(143, killed.ExitCode);
        Assert.Contains("received SIGTERM", killed.Stderr);
        Assert.Contains(rig.Calls(), c => c.StartsWith($"ROLLOUT {app}", StringComparison.Ordinal) && c.EndsWith("-> started", StringComparison.Ordinal));
        Assert.Null(rig.Running(app)); // v1 was stopped, v2 never came up
        Assert.Equal(1, Cmd.Run("pgrep", ["-f", $"ROLLOUT {app} "]).ExitCode); // the sub-module's process group was stopped too
        Assert.Contains("pending:        v2", rig.RunArgs("status", app).Stdout);
        File.Delete(Path.Combine(rig.FakeDir, "delay-ROLLOUT"));

        // The client goes on with the failure path; the store knows where the install stopped.
        Assert.Equal(0, rig.Rollback(t2, failure: true).ExitCode);
        Assert.Contains("image: web:1.0", rig.Running(app));
        Assert.Contains(rig.CallNames(), c => c.StartsWith($"ROLLBACK {app} {rig.Store}/{app}/c-000001/manifests {rig.Store}/{app}/c-000002/manifests", StringComparison.Ordinal));
        Assert.DoesNotContain(rig.Calls(), c => c.StartsWith($"ROLLOUT {app} {rig.Store}/{app}/c-000002", StringComparison.Ordinal) && !c.Contains("-> started", StringComparison.Ordinal));
        var status = rig.RunArgs("status", app).Stdout;
        Assert.Contains("last-known-good: v1", status);
        Assert.Contains("pending:        -", status);
    }

    [Fact]
    public void Plain_tar_payload_files_are_accepted_like_the_gzip_ones()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var image = rig.Image("web:1.0");
        var t = rig.Tree(rig.Spec("v1", app, Web("1.0"), image) with { PlainTar = true });
        Assert.True(File.Exists(Path.Combine(t, "files", "images.tar")));
        var install = rig.Install(t);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains($"bytes={new FileInfo(image.SavedPath).Length}", rig.Calls()[1]);
        Assert.Contains("image: web:1.0", rig.Running(app));
    }
}
