namespace AppModule.Tests;

/// <summary>
/// End to end: the real Mender client 3.4, our `app` and the real docker-compose sub-module (both AOT
/// binaries), a real engine, and real applications answering HTTP on unique ports.
/// </summary>
public sealed class ComposeRig : IDisposable
{
    /// <param name="soakSeconds">the `app` soak; null: the device default.</param>
    /// <param name="composeCommand">the Compose CLI the sub-module uses; null: its discovery (v2, else v1).</param>
    public ComposeRig(int healthTimeoutSeconds = 60, int? soakSeconds = 0, string? composeCommand = null)
    {
        Mender = new MenderRig(healthTimeoutSeconds: healthTimeoutSeconds, soakSeconds: soakSeconds);
        Web = new WebApps(Mender.Artifacts);
        Mender.InstallSubModule("docker-compose", Repo.Binary("docker-compose"));
        var state = Path.Combine(Mender.Artifacts, "compose-state");
        Mender.Client.WriteEtc("mender-app-docker-compose.conf",
            $"docker_command = \"/usr/bin/docker\"\nstate_dir = \"{state}\"\nrollout_timeout = 30\nsoak_seconds = 1\n"
            + (composeCommand is null ? string.Empty : $"docker_compose_command = \"{composeCommand}\"\n"));
    }

    public MenderRig Mender { get; }

    public WebApps Web { get; }

    public MenderClient Client => Mender.Client;

    public CmdResult Install(AppArtifactSpec spec) => Mender.Install(spec);

    /// <summary>The container ID running service web of <paramref name="app"/>.</summary>
    public static string Container(string app) =>
        DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}", "--filter", "label=com.docker.compose.service=web");

    public void Dispose()
    {
        Web.Dispose();
        Mender.Dispose();
    }
}

public class ComposeEndToEndTests
{
    private static void Ok(CmdResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    [SkippableFact]
    public void Install_and_commit_then_an_update_and_mender_rollback_bring_back_the_previous_app()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        var v2 = rig.Web.Image(app, "2.0");

        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Ok(rig.Client.Commit());
        Assert.Equal("web-v1", rig.Client.ShowArtifact());

        Ok(rig.Install(rig.Web.Spec("web-v2", app, v2, port)));
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal("web-v1", rig.Client.ShowArtifact()); // pending
        Ok(rig.Client.Rollback());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.False(WebApps.TagExists(v2.UrlNew)); // Cleanup deleted the image no composition uses

        Ok(rig.Install(rig.Web.Spec("web-v2b", app, v2, port)));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal("web-v2b", rig.Client.ShowArtifact());
        Assert.True(WebApps.TagExists(v1.UrlNew)); // kept: it is the rollback composition
    }

    [SkippableFact]
    public void A_failing_health_check_is_rolled_back_automatically_and_the_old_app_keeps_serving_without_INCONSISTENT()
    {
        using var rig = new ComposeRig(healthTimeoutSeconds: 20);
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        Ok(rig.Install(rig.Web.Spec("web-v1", app, rig.Web.Image(app, "1.0"), port)));
        Ok(rig.Client.Commit());

        var broken = rig.Install(rig.Web.Spec("web-broken", app, rig.Web.Image(app, "unhealthy"), port));
        Assert.Equal(1, broken.ExitCode);
        var log = broken.Stdout + broken.Stderr;
        Assert.Matches($"(ROLLOUT failed for application {app}|health check failed for {app})", log);
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.DoesNotContain("_INCONSISTENT", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", WebApps.Answer(port));
    }

    /// <summary>
    /// Runs busybox httpd for 6 s, then exits 1, under <c>restart: always</c>, without a healthcheck: each poll mostly sees it
    /// running (docker restarts it within a second), so only its restart count and start time give it away. 6 s, not less:
    /// the sub-module's own wait (soak 1 s) must see it up for a second before its first exit even when a loaded machine
    /// (CI's 2 cores) is slow between `compose up` and the first poll; otherwise ROLLOUT, not HEALTHY, catches it.
    /// </summary>
    private const string ExitsEvery6s = "    restart: always\n    command: [\"sh\", \"-c\", \"httpd -p 8080 -h /www; sleep 6; exit 1\"]\n";

    [SkippableTheory]
    [InlineData("/usr/bin/docker-compose")]
    [InlineData("/usr/bin/docker compose")]
    public void A_service_without_a_healthcheck_that_exits_every_6_s_under_a_restart_policy_fails_the_install_and_is_rolled_back(string composeCommand)
    {
        // The device's default soak (none set), and the sub-module's own wait short (soak_seconds = 1), so `app`'s HEALTHY must catch it.
        var cli = composeCommand.Split(' ');
        Requires.Component(cli.Length > 1 ? "Compose v2" : "Compose v1",
            File.Exists(cli[0]) && Cmd.Run(cli[0], [.. cli[1..], "version"]).ExitCode == 0 ? null : $"{composeCommand} does not run here: `make deps` installs Compose v1 and the v2 plugin");
        using var rig = new ComposeRig(healthTimeoutSeconds: 30, soakSeconds: null, composeCommand: composeCommand);
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Ok(rig.Client.Commit());
        var v1Container = ComposeRig.Container(app);

        var crashing = rig.Web.Image(app, "nohealth");
        var spec = rig.Web.Spec("web-crashloop", app, crashing, port) with
        {
            Manifests = new Dictionary<string, string> { ["docker-compose.yml"] = WebApps.Compose(crashing, port, ExitsEvery6s) },
        };
        var failed = rig.Install(spec);
        Assert.Equal(1, failed.ExitCode);
        var log = failed.Stdout + failed.Stderr;
        Assert.Contains("soak", log, StringComparison.Ordinal);
        Assert.Matches("container \\S+ restarted [0-9]+ time\\(s\\) since the rollout", log);

        // Rolled back: v1 runs again (a new container, v1's image, not restarting), the client and the store name v1.
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        var now = ComposeRig.Container(app);
        Assert.NotEqual(v1Container, now);
        Assert.Equal(v1.UrlNew, DockerEngine.DockerOk("inspect", "--format", "{{.Config.Image}}", now));
        Assert.Equal("0", DockerEngine.DockerOk("inspect", "--format", "{{.RestartCount}}", now));
        var status = rig.Mender.Status(app);
        Assert.Contains("rolled-back", status, StringComparison.Ordinal);
        Assert.Contains("web-v1", status, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Versions_that_reuse_one_tag_roll_back_to_the_old_image_and_cleanup_removes_the_replaced_one_by_its_id()
    {
        using var rig = new ComposeRig(healthTimeoutSeconds: 20);
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var latest = $"{app}/web:latest";
        var v1 = rig.Web.UniqueImageAs("1.0", latest);
        var broken = rig.Web.UniqueImageAs("unhealthy", latest);
        var v3 = rig.Web.UniqueImageAs("2.0", latest);

        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Ok(rig.Client.Commit());
        Assert.Equal("web 1.0", WebApps.Answer(port));

        // Loading the broken version moves myapp:latest; the rollback must start v1's image, not the broken one.
        var failed = rig.Install(rig.Web.Spec("web-broken", app, broken, port));
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("sha256:" + v1.Id, DockerEngine.ImageId(latest));
        Assert.Contains($"pointed {latest} back at", failed.Stderr, StringComparison.Ordinal);
        // Cleanup removed the broken image by its ID (the kept v1 uses the same reference).
        Assert.Null(DockerEngine.ImageId("sha256:" + broken.Id));

        Ok(rig.Install(rig.Web.Spec("web-v3", app, v3, port)));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal("sha256:" + v3.Id, DockerEngine.ImageId(latest));
        Assert.NotNull(DockerEngine.ImageId("sha256:" + v1.Id)); // v1 is the rollback composition: kept, untagged
    }

    [SkippableFact]
    public void When_the_app_dies_before_commit_the_commit_fails_and_the_client_rolls_back_to_the_last_known_good()
    {
        using var rig = new ComposeRig(healthTimeoutSeconds: 5);
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        Ok(rig.Install(rig.Web.Spec("web-v1", app, rig.Web.Image(app, "1.0"), port)));
        Ok(rig.Client.Commit());
        Ok(rig.Install(rig.Web.Spec("web-v2", app, rig.Web.Image(app, "2.0"), port)));
        Assert.Equal("web 2.0", WebApps.Answer(port));

        DockerEngine.DockerOk("stop", ComposeRig.Container(app));
        var commit = rig.Client.Commit();
        Assert.Equal(1, commit.ExitCode);
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Contains("commit-rolled-back", rig.Mender.Status(app));
    }

    [SkippableFact]
    public void Two_applications_run_side_by_side_and_updating_one_leaves_the_other_untouched()
    {
        using var rig = new ComposeRig();
        var a = Unique.Name("e2ea");
        var b = Unique.Name("e2eb");
        var pa = WebApps.FreePort();
        var pb = WebApps.FreePort();
        Ok(rig.Install(rig.Web.Spec("a-v1", a, rig.Web.Image(a, "1.0"), pa)));
        Ok(rig.Client.Commit());
        Ok(rig.Install(rig.Web.Spec("b-v1", b, rig.Web.Image(b, "1.0"), pb)));
        Ok(rig.Client.Commit());
        var containerA = ComposeRig.Container(a);

        Ok(rig.Install(rig.Web.Spec("b-v2", b, rig.Web.Image(b, "2.0"), pb)));
        Ok(rig.Client.Commit());
        Assert.Equal("web 1.0", WebApps.Answer(pa));
        Assert.Equal("web 2.0", WebApps.Answer(pb));
        Assert.Equal(containerA, ComposeRig.Container(a));
        Assert.Equal($"b-v2", rig.Client.ShowArtifact());
        var provides = rig.Client.ShowProvides();
        Assert.Equal("a-v1", provides[$"rootfs-image.{a}.version"]);
        Assert.Equal("b-v2", provides[$"rootfs-image.{b}.version"]);
    }

    [SkippableFact]
    public void A_second_install_while_one_is_pending_replaces_it_and_rollback_returns_to_the_committed_app()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Ok(rig.Client.Commit());
        Ok(rig.Install(rig.Web.Spec("web-v2", app, rig.Web.Image(app, "2.0"), port)));
        Assert.Equal("web 2.0", WebApps.Answer(port));

        var second = rig.Install(rig.Web.Spec("web-nohealth", app, rig.Web.Image(app, "nohealth"), port));
        Ok(second);
        Assert.Equal("web nohealth", WebApps.Answer(port));
        Ok(rig.Client.Rollback());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
    }

    [SkippableFact]
    public void A_delta_whose_base_is_missing_is_refused_before_anything_is_stopped_and_one_with_its_base_installs()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Ok(rig.Client.Commit());
        var running = ComposeRig.Container(app);
        var started = DockerEngine.DockerOk("inspect", "--format", "{{.State.StartedAt}}", running);

        // v2 as a whole-image VCDIFF against v1's saved tar (as `docker save` writes it on this engine).
        var v2 = rig.Web.Image(app, "2.0");
        var deltaFile = Path.Combine(rig.Web.Dir, "v2.vcdiff");
        Cmd.Ok(Tool.Xdelta3, "-e", "-f", "-s", v1.SavedPath, v2.SavedPath, deltaFile);
        var gone = new AppImage(v2.UrlNew, deltaFile, v2.Id, UrlCurrent: $"{app}/web:gone", IdCurrent: v1.Id);
        var refused = rig.Install(rig.Web.Spec("web-v2-delta-nobase", app, gone, port));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"pre-check failed for {v2.UrlNew}: the delta base {app}/web:gone", refused.Stdout + refused.Stderr);
        Assert.Equal(running, ComposeRig.Container(app));
        Assert.Equal(started, DockerEngine.DockerOk("inspect", "--format", "{{.State.StartedAt}}", running));
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("web-v1", rig.Client.ShowArtifact());

        var delta = new AppImage(v2.UrlNew, deltaFile, v2.Id, UrlCurrent: v1.UrlNew, IdCurrent: v1.Id);
        var install = rig.Install(rig.Web.Spec("web-v2-delta", app, delta, port));
        Ok(install);
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
    }

    [SkippableFact]
    public void A_delta_that_decodes_to_a_layer_not_matching_its_digest_is_cut_off_in_LOAD_leaving_the_app_running_and_no_image_in_the_engine()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("e2e");
        var port = WebApps.FreePort();
        var v1 = rig.Web.Image(app, "1.0");
        Ok(rig.Install(rig.Web.Spec("web-v1", app, v1, port)));
        Ok(rig.Client.Commit());
        var running = ComposeRig.Container(app);
        var started = DockerEngine.DockerOk("inspect", "--format", "{{.State.StartedAt}}", running);

        // v2 is an image of its own, gone from the engine; its delta decodes to v2's saved tar with one byte of a
        // layer flipped: config and manifest are intact (so the image ID is v2's), only that layer's digest is wrong.
        var reference = $"{app.ToLowerInvariant()}/web:2.0";
        var v2 = rig.Web.UniqueImageAs("2.0", reference);
        var corrupt = Path.Combine(rig.Web.Dir, "v2-corrupt.tar");
        FlipOneByteOfTheLastLayer(v2.SavedPath, corrupt);
        var corruptDelta = Path.Combine(rig.Web.Dir, "v2-corrupt.vcdiff");
        Cmd.Ok(Tool.Xdelta3, "-e", "-f", "-s", v1.SavedPath, corrupt, corruptDelta);
        var refused = rig.Install(rig.Web.Spec("web-v2-corrupt", app, new AppImage(v2.UrlNew, corruptDelta, v2.Id, UrlCurrent: v1.UrlNew, IdCurrent: v1.Id), port));

        Assert.Equal(1, refused.ExitCode);
        var log = refused.Stdout + refused.Stderr;
        Assert.Contains($"LOAD failed for image {v2.UrlNew}: ", log);
        Assert.Contains("of the rebuilt image has sha256 ", log);
        Assert.Contains("the stream into the engine was cut, nothing was stopped. Install an artifact with the full image instead", log);
        Assert.Equal(running, ComposeRig.Container(app));
        Assert.Equal(started, DockerEngine.DockerOk("inspect", "--format", "{{.State.StartedAt}}", running));
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal("web-v1", rig.Client.ShowArtifact());
        Assert.Null(DockerEngine.ImageId("sha256:" + v2.Id));
        Assert.Null(DockerEngine.ImageId(reference));
        Assert.Equal(string.Empty, DockerEngine.DockerOk("image", "ls", "-aq", "--filter", $"label=appmodule.test.reference={reference}"));

        // The right delta of the same image then installs, and the engine runs exactly v2.
        var deltaFile = Path.Combine(rig.Web.Dir, "v2.vcdiff");
        Cmd.Ok(Tool.Xdelta3, "-e", "-f", "-s", v1.SavedPath, v2.SavedPath, deltaFile);
        Ok(rig.Install(rig.Web.Spec("web-v2-delta", app, new AppImage(v2.UrlNew, deltaFile, v2.Id, UrlCurrent: v1.UrlNew, IdCurrent: v1.Id), port)));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal(v2.Id, DockerEngine.ImageId(reference)?.Replace("sha256:", string.Empty, StringComparison.Ordinal));
        Assert.Equal("web-v2-delta", rig.Client.ShowArtifact());
    }

    /// <summary>Copies a saved image tar, flipping one byte in the middle of the last layer file manifest.json lists.</summary>
    private static void FlipOneByteOfTheLastLayer(string savedTar, string target)
    {
        var entries = new List<(System.Formats.Tar.TarEntry Entry, byte[]? Data)>();
        using (var reader = new System.Formats.Tar.TarReader(File.OpenRead(savedTar)))
        {
            while (reader.GetNextEntry(copyData: true) is { } e)
            {
                byte[]? data = null;
                if (e.DataStream is not null)
                {
                    using var ms = new MemoryStream();
                    e.DataStream.CopyTo(ms);
                    data = ms.ToArray();
                }

                entries.Add((e, data));
            }
        }

        var manifest = entries.Single(x => x.Entry.Name.TrimStart('.', '/') == "manifest.json").Data!;
        using var doc = System.Text.Json.JsonDocument.Parse(manifest);
        var last = doc.RootElement[0].GetProperty("Layers").EnumerateArray().Last().GetString()!;
        var layer = entries.Single(x => x.Entry.Name.TrimStart('.', '/') == last && x.Data is { Length: > 0 });
        layer.Data![layer.Data.Length / 2] ^= 0xff;
        using var output = File.Create(target);
        using var writer = new System.Formats.Tar.TarWriter(output);
        foreach (var (entry, data) in entries)
        {
            if (data is not null)
            {
                entry.DataStream = new MemoryStream(data);
            }

            writer.WriteEntry(entry);
        }
    }
}
