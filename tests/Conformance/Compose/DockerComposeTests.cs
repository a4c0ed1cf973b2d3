namespace Conformance.Compose;

/// <summary>
/// docker-compose specifics beyond the shared suite: how the Compose CLI and config are found, LOAD
/// from a FIFO, no pulling, deep deltas, and the reference shell `app` driving our sub-module.
/// Runs against Compose v2 (the fixture's config) unless a test writes its own config.
/// </summary>
public sealed class DockerComposeTests(ComposeV2Fixture fx) : IClassFixture<ComposeV2Fixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private string Binary
    {
        get
        {
            Requires.Component(fx.Name, fx.Unavailable);
            return fx.Executable;
        }
    }

    private CmdResult Run(IDictionary<string, string?> env, params string[] args) => Cmd.Run(Binary, args, env, timeout: Timeout);

    private CmdResult Run(params string[] args) => Run(new Dictionary<string, string?>(fx.Environment(new SubModuleSettings())), args);

    private static Dictionary<string, string?> WithConfig(string path) => new() { ["MENDER_APP_DOCKER_COMPOSE_CONF"] = path, ["OPTIONS"] = null };

    [SkippableFact]
    public void The_reference_style_config_selects_compose_v1_by_DOCKER_COMPOSE_COMMAND()
    {
        using var dir = new TempDir("compose-conf");
        var conf = dir.Write("c.conf", $"# reference style\nDOCKER_COMPOSE_COMMAND=/usr/bin/docker-compose\nexport STATE_DIR=\"{dir.Path}/state\"\n");
        var r = Run(WithConfig(conf), "REQS");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("compose:ok /usr/bin/docker-compose 1.", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("compose-v2:warning", r.Stdout, StringComparison.Ordinal);
        Assert.Contains($"state-dir:ok {dir.Path}/state", r.Stdout, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Without_a_compose_command_in_the_config_compose_v2_is_discovered_and_preferred()
    {
        using var dir = new TempDir("compose-conf");
        var conf = dir.Write("c.toml", $"docker_command = \"/usr/bin/docker\"\nstate_dir = \"{dir.Path}/state\"\n");
        var r = Run(WithConfig(conf), "REQS");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches(@"(?m)^compose:ok /usr/bin/docker compose 2\.", r.Stdout);
        Assert.Contains("compose-v2:ok", r.Stdout, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Reqs_exits_4_and_says_error_when_the_configured_compose_command_is_missing()
    {
        using var dir = new TempDir("compose-conf");
        var conf = dir.Write("c.toml", $"docker_compose_command = \"/nonexistent/docker-compose\"\nstate_dir = \"{dir.Path}/state\"\n");
        var r = Run(WithConfig(conf), "REQS");
        Assert.Equal(4, r.ExitCode);
        Assert.Matches(@"(?m)^compose:error .*/nonexistent/docker-compose", r.Stdout);
        Assert.Contains("docker-engine:ok", r.Stdout, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void A_malformed_config_file_is_a_configuration_error_naming_the_file()
    {
        using var dir = new TempDir("compose-conf");
        var conf = dir.Write("c.toml", "rollout_timeout = \"soon\"\n");
        var r = Run(WithConfig(conf), "ALIVE", "whatever");
        Assert.Equal(3, r.ExitCode);
        Assert.Contains(conf, r.Stderr, StringComparison.Ordinal);
        Assert.Contains("rollout_timeout", r.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void The_shipped_config_file_is_valid()
    {
        var conf = Repo.Script("packaging/files/etc/mender/mender-app-docker-compose.conf");
        var r = Run(WithConfig(conf), "ALIVE", Unique.Name("shipped"));
        Assert.True(r.ExitCode == 1, r.ToString()); // not alive, but not a configuration error (3)
        Assert.Contains("has no containers", r.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Purge_keeps_an_image_that_a_stopped_application_still_names()
    {
        var a = Unique.Name("purgea");
        var b = Unique.Name("purgeb");
        try
        {
            using var dir = new TempDir("compose-shared");
            var url = $"conformance/{a}:shared";
            DockerEngine.DockerOk("tag", "appmodule/web:1.0", url);
            var yaml = $"services:\n  web:\n    image: {url}\n";
            var da = dir.Write("a/docker-compose.yml", yaml);
            var db = dir.Write("b/docker-compose.yml", yaml);
            Assert.Equal(0, Run("ROLLOUT", a, Path.GetDirectoryName(da)!).ExitCode);
            Assert.Equal(0, Run("ROLLOUT", b, Path.GetDirectoryName(db)!).ExitCode);
            Assert.Equal(0, Run("STOP", b, Path.GetDirectoryName(db)!).ExitCode);

            var r = Run("PURGE", a);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("another application's manifests", r.Stderr, StringComparison.Ordinal);
            Assert.True(fx.HasImage(url));
            Assert.Null(fx.Observe(a, "web"));

            r = Run("PURGE", b);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.False(fx.HasImage(url));
        }
        finally
        {
            fx.Cleanup(a);
            fx.Cleanup(b);
        }
    }

    [SkippableFact]
    public void Sigterm_during_the_health_wait_stops_the_call_with_exit_143()
    {
        var bin = Binary;
        var app = Unique.Name("sigterm");
        try
        {
            using var dir = new TempDir("compose-sigterm");
            var url = $"conformance/{app}:nohealth";
            DockerEngine.DockerOk("tag", "appmodule/web:nohealth", url);
            dir.Write("m/docker-compose.yml", $"services:\n  web:\n    image: {url}\n");
            var conf = dir.Write("c.toml", $"docker_compose_command = \"{fx.ComposeCommand}\"\nstate_dir = \"{dir.Path}/state\"\nsoak_seconds = 600\n");
            var env = new Dictionary<string, string?>(WithConfig(conf)) { ["BIN"] = bin, ["APP"] = app, ["DIR"] = dir.File("m") };
            // Wait until the container runs (the call is then in its soak wait), then SIGTERM it.
            var r = Cmd.Sh("""
                "$BIN" ROLLOUT "$APP" "$DIR" & pid=$!
                for _ in $(seq 1 120); do [ -n "$(docker ps -q --filter label=com.docker.compose.project=$APP)" ] && break; sleep 0.5; done
                sleep 1; kill -TERM $pid; wait $pid; echo "rc=$?"
                """, env, Timeout);
            Assert.Contains("rc=143", r.Stdout, StringComparison.Ordinal);
            Assert.Contains("interrupted", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    [SkippableFact]
    public void Reqs_with_the_new_manifests_checks_them_against_the_policy_and_the_images_the_artifact_carries()
    {
        using var dir = new TempDir("compose-reqs-manifests");
        var conf = dir.Write("c.toml", $"docker_command = \"/usr/bin/docker\"\nstate_dir = \"{dir.Path}/state\"\n");
        CmdResult Reqs(string compose, string images = "")
        {
            var manifests = dir.Dir("m-" + Guid.NewGuid().ToString("n")[..8]);
            File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"), compose);
            var env = WithConfig(conf);
            env["MENDER_APP_MANIFESTS_DIR"] = manifests;
            env["MENDER_APP_IMAGES"] = images;
            return Run(env, "REQS");
        }

        DockerEngine.RequireImages();
        var id = new string('a', 64);
        var ok = Reqs("services:\n  web:\n    image: appmodule/web:1.0\n  new:\n    image: example/new:2\n", $"{id} example/new:2");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Matches(@"(?m)^manifests:ok 2 service\(s\): ", ok.Stdout);

        var root = Reqs("services:\n  web:\n    image: appmodule/web:1.0\n    volumes:\n      - /:/host\n");
        Assert.Equal(4, root.ExitCode);
        Assert.Matches(@"(?m)^manifests:error service web in .* mounts the host's root directory", root.Stdout);

        var missing = Reqs("services:\n  web:\n    image: example/nowhere:1\n", $"{id} example/new:2");
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains("manifests:error image example/nowhere:1 of service web is neither in the artifact nor in the engine", missing.Stdout, StringComparison.Ordinal);

        var broken = Reqs("services:\n  web: [not, a, service\n");
        Assert.Equal(4, broken.ExitCode);
        Assert.Matches(@"(?m)^manifests:error ", broken.Stdout);
    }

    [SkippableFact]
    public void Host_access_is_refused_by_default_at_reqs_and_rollout_and_allowed_only_by_name()
    {
        DockerEngine.RequireImages();
        using var dir = new TempDir("compose-host-access");
        CmdResult Reqs(string config, string service, string? platform = null)
        {
            var conf = dir.Write($"c-{Guid.NewGuid():n}.toml", $"docker_command = \"/usr/bin/docker\"\nstate_dir = \"{dir.Path}/state\"\n{config}");
            var manifests = dir.Dir("m-" + Guid.NewGuid().ToString("n")[..8]);
            File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"), "services:\n  web:\n    image: appmodule/web:1.0\n" + service);
            var env = WithConfig(conf);
            env["MENDER_APP_MANIFESTS_DIR"] = manifests;
            env["MENDER_APP_IMAGES"] = string.Empty;
            env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = platform;
            return Run(env, "REQS");
        }

        var cases = new (string Kind, string Service, string Refusal)[]
        {
            ("root-mount", "    volumes:\n      - /:/host\n", "mounts the host's root directory (/)"),
            ("root-mount", "    volumes:\n      - type: bind\n        source: /etc/..\n        target: /host\n", "mounts the host's root directory"),
            ("engine-socket", "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n", "mounts the engine socket or its directory /var/run/docker.sock"),
            ("engine-socket", "    volumes:\n      - /run/containerd:/c\n", "mounts the engine socket or its directory /run/containerd"),
            ("privileged", "    privileged: true\n", "is privileged (privileged: true)"),
            ("host-pid", "    pid: host\n", "shares the host's PID namespace (pid: host)"),
            ("host-network", "    network_mode: host\n", "shares the host's network namespace (network_mode: host)"),
        };
        foreach (var (kind, service, refusal) in cases)
        {
            var refused = Reqs(string.Empty, service);
            Assert.True(refused.ExitCode == 4, $"{kind}: {refused}");
            Assert.Contains($"manifests:error service web in ", refused.Stdout, StringComparison.Ordinal);
            Assert.Contains(refusal, refused.Stdout, StringComparison.Ordinal);
            Assert.Contains($"host access \"{kind}\" is refused unless allow_host_access in ", refused.Stdout, StringComparison.Ordinal);

            var allowed = Reqs($"allow_host_access = [\"{kind}\"]\n", service);
            Assert.True(allowed.ExitCode == 0, $"{kind} allowed by name: {allowed}");
            var other = Reqs($"allow_host_access = [\"{(kind == "privileged" ? "host-pid" : "privileged")}\"]\n", service);
            Assert.True(other.ExitCode == 4, $"{kind} is not allowed by another name: {other}");
        }

        Assert.Equal(0, Reqs("forbid_host_root_mounts = false\n", cases[0].Service).ExitCode); // the legacy key still allows /
        Assert.Equal(4, Reqs("forbid_host_root_mounts = false\n", cases[4].Service).ExitCode); // and nothing else
        Assert.Equal(0, Reqs(string.Empty, "    volumes:\n      - /srv/data:/data\n").ExitCode); // an ordinary bind mount
        var unknown = Reqs("allow_host_access = [\"everything\"]\n", string.Empty);
        Assert.Equal(3, unknown.ExitCode);
        Assert.Contains("allow_host_access names \"everything\", which is not a kind of host access", unknown.Stderr, StringComparison.Ordinal);

        // The artifact's platform against the engine's.
        var engine = DockerEngine.Docker("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}").Stdout.Trim();
        Assert.True(Reqs(string.Empty, string.Empty, engine).ExitCode == 0, engine);
        var foreign = Reqs(string.Empty, string.Empty, engine.EndsWith("/amd64", StringComparison.Ordinal) ? "linux/arm64" : "linux/amd64");
        Assert.Equal(4, foreign.ExitCode);
        Assert.Matches(@"(?m)^platform:error the artifact is for linux/(arm64|amd64), but the engine at .* runs " + engine, foreign.Stdout);
    }

    [SkippableFact]
    public void Rollout_refuses_host_access_the_config_does_not_allow_before_anything_starts()
    {
        var app = Unique.Name("hostaccess");
        try
        {
            using var dir = new TempDir("compose-host-rollout");
            dir.Write("docker-compose.yml", "services:\n  web:\n    image: appmodule/web:1.0\n    privileged: true\n");
            DockerEngine.RequireImages();
            var r = Run("ROLLOUT", app, dir.Path);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("is privileged (privileged: true): host access \"privileged\" is refused", r.Stderr, StringComparison.Ordinal);
            Assert.Equal(string.Empty, DockerEngine.Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={app}").Stdout.Trim());
        }
        finally
        {
            Run("PURGE", app);
        }
    }

    [SkippableFact]
    public void Rollout_refuses_an_image_that_was_not_loaded_instead_of_pulling_it()
    {
        var app = Unique.Name("nopull");
        try
        {
            using var dir = new TempDir("compose-nopull");
            var url = $"conformance/{app}:never-loaded";
            dir.Write("docker-compose.yml", $"services:\n  web:\n    image: {url}\n");
            var r = Run("ROLLOUT", app, dir.Path);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(url, r.Stderr, StringComparison.Ordinal);
            Assert.Contains("LOAD it first", r.Stderr, StringComparison.Ordinal);
            Assert.Equal(string.Empty, DockerEngine.Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={app}").Stdout.Trim());
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    [SkippableFact]
    public void Rollout_points_a_reused_tag_back_at_the_image_MENDER_APP_IMAGES_names_and_fails_clearly_when_that_image_is_gone()
    {
        var app = Unique.Name("pin");
        var latest = $"conformance/{app}:latest";
        string Build(string variant)
        {
            var r = Cmd.Run(DockerEngine.Cli, ["build", "-q", "-t", latest, "-"], stdin: $"FROM appmodule/web:{variant}\nLABEL conformance.pin=\"{app}-{variant}\"\n", timeout: Timeout);
            Assert.True(r.ExitCode == 0, r.ToString());
            return DockerEngine.ImageId(latest)!;
        }

        var old = Build("1.0");
        var newer = Build("2.0"); // moves the tag: the old image is left without one
        try
        {
            using var dir = new TempDir("compose-pin");
            dir.Write("docker-compose.yml", $"services:\n  web:\n    image: {latest}\n");
            var env = new Dictionary<string, string?>(fx.Environment(new SubModuleSettings())) { ["MENDER_APP_IMAGES"] = $"{old["sha256:".Length..]} {latest}" };

            var r = Run(env, "ROLLOUT", app, dir.Path);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains($"pointed {latest} back at {old[..19]}", r.Stderr, StringComparison.Ordinal);
            Assert.Equal(old, DockerEngine.ImageId(latest));
            var running = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={ComposeProject(app)}");
            Assert.Equal(old, DockerEngine.DockerOk("inspect", "--format", "{{.Image}}", running));

            // The old image gone for good (the tag moved on, the image was deleted): say so, start nothing.
            Assert.Equal(0, Run(env, "STOP", app, dir.Path).ExitCode);
            DockerEngine.DockerOk("tag", newer, latest);
            DockerEngine.DockerOk("image", "rm", old);
            r = Run(env, "ROLLOUT", app, dir.Path);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("Install this version's artifact again", r.Stderr, StringComparison.Ordinal);
            Assert.Equal(string.Empty, DockerEngine.Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={ComposeProject(app)}").Stdout.Trim());
        }
        finally
        {
            fx.Cleanup(app);
            DockerEngine.Docker("image", "rm", latest);
            DockerEngine.Docker("image", "rm", old);
        }
    }

    private static string ComposeProject(string app) => app.ToLowerInvariant();

    [SkippableFact]
    public void Rollout_gives_up_after_rollout_timeout_when_a_service_never_becomes_healthy_naming_the_setting()
    {
        var app = Unique.Name("slowhealth");
        using var dir = new TempDir("compose-timeout");
        var conf = dir.Write("c.toml", $"docker_command = \"/usr/bin/docker\"\nstate_dir = \"{dir.Path}/state\"\nrollout_timeout = 3\n");
        var manifests = dir.Dir("manifests");
        // The first health check runs after an hour: the container stays "starting".
        File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"),
            "services:\n  web:\n    image: appmodule/web:nohealth\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 1h\n      start_period: 1h\n");
        try
        {
            DockerEngine.RequireImages();
            var r = Run(WithConfig(conf), "ROLLOUT", app, manifests);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"not every service was ready within 3 s (rollout_timeout in {conf})", r.Stderr, StringComparison.Ordinal);
            Assert.Contains("web", r.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    [SkippableFact]
    public void A_Compose_CLI_that_hangs_is_stopped_after_compose_timeout_and_the_call_fails_naming_the_setting()
    {
        var app = Unique.Name("hang");
        using var dir = new TempDir("compose-hang");
        var marker = "fake-compose-" + app;
        var fake = dir.Write("fake-compose", $"#!/bin/bash\ncase \" $* \" in *\" version \"*) echo 2.26.1; exit 0 ;; esac\nexec -a {marker} sleep 120\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
        var conf = dir.Write("c.toml", $"docker_compose_command = \"{fake}\"\nstate_dir = \"{dir.Path}/state\"\ncompose_timeout = 2\n");
        var manifests = dir.Dir("manifests");
        File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"), "services:\n  web:\n    image: appmodule/web:1.0\n");

        var r = Run(WithConfig(conf), "ROLLOUT", app, manifests);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"did not finish within 2 s (compose_timeout in {conf})", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, Cmd.Run("pgrep", "-f", marker).ExitCode); // the hanging CLI was stopped, not left behind
    }

    [SkippableFact]
    public void An_engine_that_accepts_but_never_answers_fails_the_call_after_engine_timeout_naming_the_setting()
    {
        using var dir = new TempDir("compose-mute");
        var socketPath = dir.File("mute.sock");
        using var mute = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        mute.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath));
        mute.Listen(16); // connections are queued and never answered
        var conf = dir.Write("c.toml", $"docker_host = \"unix://{socketPath}\"\nstate_dir = \"{dir.Path}/state\"\nengine_timeout = 2\n");

        var r = Run(WithConfig(conf), "ALIVE", Unique.Name("mute"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains($"the Docker engine at unix://{socketPath} did not", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("within 2 s (engine_timeout in the config)", r.Stderr, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ deep delta

    private const string CurrentDockerfile = "FROM appmodule/busybox:base\nRUN busybox seq 1 20000 > /d1\nRUN busybox seq 5 30000 > /d2\n";
    private const string NewDockerfile = "FROM appmodule/busybox:base\nRUN busybox seq 1 20000 > /d1\nRUN busybox seq 5 30001 > /d2\n";

    /// <summary>Builds current and new images, writes a docker-archive deep delta (reference layout, real xdelta3) and removes the new image.</summary>
    private static (string Current, string New, string NewId, string Payload) MakeDeepDelta(string app, TempDir dir)
    {
        string Build(string tag, string dockerfile)
        {
            var ctx = dir.Dir("ctx-" + tag);
            File.WriteAllText(Path.Combine(ctx, "Dockerfile"), dockerfile);
            var name = $"conformance/{app}:{tag}";
            var r = Cmd.Run(DockerEngine.Cli, ["build", "-q", "--network", "none", "-t", name, ctx], new Dictionary<string, string?> { ["DOCKER_BUILDKIT"] = "0" }, timeout: Timeout);
            Assert.True(r.ExitCode == 0, r.ToString());
            return name;
        }

        var current = Build("current", CurrentDockerfile);
        var next = Build("new", NewDockerfile);
        var newId = DockerEngine.ImageId(next)!;
        const string maker = """
            set -euo pipefail
            cd "$WORK"; mkdir cur new
            docker save -o cur.tar "$CUR"; docker save -o new.tar "$NEW"
            tar -xf cur.tar -C cur; tar -xf new.tar -C new
            layers() { python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Layers"]))' "$1/manifest.json"; }
            declare -A cursum
            for l in $(layers cur); do cursum[$(sha256sum < "cur/$l" | cut -d' ' -f1)]="cur/$l"; done
            last=""; for l in $(layers cur); do last="cur/$l"; done
            for l in $(layers new); do
              f="new/$l"; s=$(sha256sum < "$f" | cut -d' ' -f1)
              if [ -n "${cursum[$s]:-}" ]; then echo "$s" > "$f.sha256sum"
              else
                xdelta3 -e -s "$last" "$f" "$f.vcdiff"
                sha256sum < "$last" | cut -d' ' -f1 > "$f.current.sha256sum"; echo "$s" > "$f.new.sha256sum"
              fi
              rm "$f"
            done
            tar -cf payload.tar -C new .
            """;
        var env = new Dictionary<string, string?> { ["WORK"] = dir.Path, ["CUR"] = current, ["NEW"] = next, ["PATH"] = "/usr/bin:/bin" };
        var m = Cmd.Sh(maker, env, Timeout);
        Assert.True(m.ExitCode == 0, m.ToString());
        DockerEngine.DockerOk("image", "rm", next);
        Assert.Null(DockerEngine.ImageId(next));
        return (current, next, newId, dir.File("payload.tar"));
    }

    [SkippableFact]
    public void Deep_delta_load_rebuilds_the_new_image_from_the_current_one_and_verifies_its_id()
    {
        var bin = Binary;
        var app = Unique.Name("deep");
        try
        {
            using var dir = new TempDir("compose-deep");
            var (current, next, newId, payload) = MakeDeepDelta(app, dir);
            var scratch = dir.Dir("module-tmp");
            var env = new Dictionary<string, string?>(fx.Environment(new SubModuleSettings())) { ["OPTIONS"] = "deep_delta", ["MODULE_TMPDIR"] = scratch };
            var url = $"{next}@{newId}";
            var r = Cmd.Run(bin, ["LOAD", app, url, payload, current], env, timeout: Timeout);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal(newId, DockerEngine.ImageId(next));
            Assert.Matches(@"[1-9][0-9]* decoded", r.Stderr);
            Assert.Empty(Directory.EnumerateFileSystemEntries(scratch));
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    [SkippableFact]
    public void Deep_delta_load_fails_before_loading_when_the_current_image_lacks_a_base_layer()
    {
        var bin = Binary;
        var app = Unique.Name("deepmiss");
        try
        {
            using var dir = new TempDir("compose-deep");
            var (_, next, newId, payload) = MakeDeepDelta(app, dir);
            var wrongBase = $"conformance/{app}:wrong-base";
            DockerEngine.DockerOk("tag", "appmodule/web:2.0", wrongBase);
            var env = new Dictionary<string, string?>(fx.Environment(new SubModuleSettings())) { ["OPTIONS"] = "deep_delta", ["MODULE_TMPDIR"] = dir.Dir("module-tmp") };
            var r = Cmd.Run(bin, ["LOAD", app, $"{next}@{newId}", payload, wrongBase], env, timeout: Timeout);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("lacks", r.Stderr, StringComparison.Ordinal);
            Assert.Contains(wrongBase, r.Stderr, StringComparison.Ordinal);
            Assert.Null(DockerEngine.ImageId(next));
        }
        finally
        {
            fx.Cleanup(app);
        }
    }

    // ------------------------------------------------------------------ the reference `app`

    [SkippableFact]
    public void The_reference_shell_app_installs_updates_and_rolls_back_an_application_with_our_sub_module()
    {
        var bin = Binary;
        var app = Unique.Name("refapp");
        try
        {
            using var dir = new TempDir("compose-refapp");
            var store = dir.Dir("store");
            var script = Repo.Script("tests/Conformance/Compose/reference-app.sh");
            var env = new Dictionary<string, string?>(fx.Environment(new SubModuleSettings()));

            // An unpacked app artifact: one full image (url-current == url-new) and the manifests.
            string Artifact(string label, string source, string tag)
            {
                var data = dir.Dir(label);
                var url = $"conformance/{app}:{tag}";
                DockerEngine.DockerOk("tag", source, url);
                var id = DockerEngine.ImageId(url)!;
                var img = Directory.CreateDirectory(Path.Combine(data, "images", id[7..])).FullName;
                DockerEngine.DockerOk("image", "save", "-o", Path.Combine(img, "image.img"), url);
                DockerEngine.DockerOk("image", "rm", url);
                File.WriteAllText(Path.Combine(img, "url-new.txt"), url + "\n");
                File.WriteAllText(Path.Combine(img, "url-current.txt"), url + "\n");
                File.WriteAllText(Path.Combine(img, "sums-new.txt"), id[7..] + "\n");
                Directory.CreateDirectory(Path.Combine(data, "manifests"));
                File.WriteAllText(Path.Combine(data, "manifests", "docker-compose.yml"), $"services:\n  web:\n    image: {url}\n");
                return data;
            }

            CmdResult Install(string data) => Cmd.Run(script, [bin, store, app, data], env, timeout: Timeout);

            var v1 = Install(Artifact("v1", "appmodule/web:1.0", "v1"));
            Assert.True(v1.ExitCode == 0, v1.ToString());
            Assert.Equal($"conformance/{app}:v1", fx.Observe(app, "web")?.Image);

            var v2 = Install(Artifact("v2", "appmodule/web:2.0", "v2"));
            Assert.True(v2.ExitCode == 0, v2.ToString());
            Assert.Equal(new ServiceObservation(true, "healthy", $"conformance/{app}:v2"), fx.Observe(app, "web"));

            var bad = Install(Artifact("v3", "appmodule/web:exits", "v3"));
            Assert.True(bad.ExitCode == 1, bad.ToString());
            Assert.Contains("exited", bad.Stderr, StringComparison.Ordinal);
            Assert.Equal(new ServiceObservation(true, "healthy", $"conformance/{app}:v2"), fx.Observe(app, "web"));
            Assert.Equal(0, Cmd.Run(bin, ["HEALTHY", app], env).ExitCode);
        }
        finally
        {
            fx.Cleanup(app);
        }
    }
}
