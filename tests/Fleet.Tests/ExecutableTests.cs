using System.Diagnostics;
using System.Text;
using TestSupport;

namespace Fleet.Tests;

/// <summary>The published fleet-updater and fleet-agent (Native AOT) working together over a real redis-server,
/// against a real docker-registry, engine and the docker-compose sub-module.</summary>
public sealed class ExecutableTests(Deferred<AgentFixture> deferred) : IClassFixture<Deferred<AgentFixture>>
{
    private AgentFixture fx => deferred.Value;

    private const string Key = "exe-test-shared-key-0123456789abcdef";

    private sealed class Running(Process p, StringBuilder err) : IDisposable
    {
        public Process Process => p;
        public string Stderr { get { lock (err) return err.ToString(); } }

        public int Terminate()
        {
            if (!p.HasExited) Cmd.Run("kill", "-TERM", p.Id.ToString());
            if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException("did not stop within 60 s of SIGTERM:\n" + Stderr); }
            return p.ExitCode;
        }

        public void Dispose() { if (!p.HasExited) p.Kill(true); p.Dispose(); }
    }

    private static Running Launch(string exe, IEnumerable<string> args, IDictionary<string, string> env)
    {
        var psi = new ProcessStartInfo(Repo.Binary(exe)) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var err = new StringBuilder();
        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (err) err.AppendLine(e.Data); };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        return new Running(p, err);
    }

    [SkippableFact]
    public async Task The_updater_and_agent_binaries_update_a_listed_app_over_redis_with_signed_commands_and_stop_on_SIGTERM()
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var app = "fleetexe" + id;
        using var tmp = new TempDir("fleet-exe");
        var dir = tmp.Dir("app");
        var compose = Path.Combine(dir, "docker-compose.yml");
        File.WriteAllText(compose, $"# ops notes\nservices:\n  web:\n    image: {fx.Repo}:1.0  # current\n");
        var subConf = tmp.Write("dc.conf", $"state_dir = \"{tmp.Path}/state\"\ndocker_command = \"/usr/bin/docker\"\nrollout_timeout = 60\n");
        var appConf = tmp.Write("mender-app.conf", $"persistent_store = \"{tmp.Path}/store\"\nsubmodules_dir = \"{Repo.BinDir}\"\nhealth_timeout_seconds = 60\nsoak_seconds = 0\n");
        var agentConf = tmp.Write("agent.toml", $"""
            [redis]
            host = "127.0.0.1"
            port = {fx.Redis.Port}
            channel = "vc_{id}"
            [agent]
            rpc_name = "docker_compose_service_{id}"
            report_interval_seconds = 1
            log_format = "json"
            app_config = "{appConf}"
            submodule_config = "{subConf}"
            [apps.{app}]
            directory = "{dir}"
            """);
        int metricsPort = RedisServer.FreePort();
        var updaterConf = tmp.Write("updater.toml", $"""
            [redis]
            channel = "vc_{id}"
            [updater]
            rpc_timeout_seconds = 120
            metrics_listen = "127.0.0.1:{metricsPort}"
            """);
        var env = new Dictionary<string, string>
        {
            ["REDIS_HOST"] = "127.0.0.1",
            ["REDIS_PORT"] = fx.Redis.Port.ToString(),
            ["FLEET_HMAC_KEY"] = Key,
            ["APP_TO_DIRECTORY"] = $"{{\"{app}\":\"{dir}\"}}",
            ["APPS_TO_UPDATE"] = $"{{\"{app}\":\"2.0\"}}",
            ["APP_TO_RPC"] = $"{{\"{app}\":\"docker_compose_service_{id}\"}}",
            ["APP_TO_IMAGE"] = $"{{\"{app}\":\"{fx.Repo}\"}}",
        };
        // the app runs 1.0 before the agent starts (as a device would)
        DockerEngine.DockerOk("pull", $"{fx.Repo}:1.0");
        Cmd.Ok(Tool.DockerComposeV2, ["compose", "--project-directory", dir, "-p", app, "up", "-d"]);
        try
        {
            using var agent = Launch("fleet-agent", ["--config", agentConf], env);
            using var updater = Launch("fleet-updater", ["--config", updaterConf], env);
            using var http = new HttpClient();
            string metrics = "";
            for (int i = 0; i < 600 && !metrics.Contains("fleet_rpc_total{outcome=\"success\"} 1"); i++)
            {
                await Task.Delay(250);
                try { metrics = await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics"); } catch (HttpRequestException) { }
            }
            Assert.True(metrics.Contains("fleet_rpc_total{outcome=\"success\"} 1"), $"no successful update.\nupdater:\n{updater.Stderr}\nagent:\n{agent.Stderr}");
            Assert.Contains("fleet_decision_seconds_count", metrics);
            Assert.Contains("fleet_registry_request_seconds_count{op=\"head_manifest\"}", metrics);
            // the agent runs the manifest the updater checked: the tag pinned to its digest
            var pinned = $"{fx.Repo}:2.0@{fx.Registry.ManifestDigest("fleetagent/web:2.0")}";
            Assert.Equal($"# ops notes\nservices:\n  web:\n    image: {pinned}  # current\n", File.ReadAllText(compose));
            var cid = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={app}").Trim();
            Assert.Equal($"{pinned}|healthy", DockerEngine.DockerOk("inspect", "-f", "{{.Config.Image}}|{{.State.Health.Status}}", cid).Trim());
            // No second update: a second one would be decided before the agent's next 2.0 reports are judged up to
            // date, so wait for two such judgements (the agent reports every second) and then count the updates.
            metrics = await MetricsWhenAsync(http, metricsPort, m => Counter(m, "fleet_decisions_total{decision=\"uptodate\"}") >= 2);
            Assert.True(Counter(metrics, "fleet_decisions_total{decision=\"uptodate\"}") >= 2, $"the updated app's reports were not judged up to date.\nupdater:\n{updater.Stderr}\nagent:\n{agent.Stderr}");
            Assert.Equal(1, Counter(metrics, "fleet_decisions_total{decision=\"update\"}"));
            Assert.Equal(1, Counter(metrics, "fleet_rpc_total{outcome=\"success\"}"));
            Assert.Equal(0, updater.Terminate());
            Assert.Equal(0, agent.Terminate());
            Assert.Contains("Successfully updated to version 2.0", updater.Stderr);
            Assert.Single(updater.Stderr.Split('\n'), l => l.Contains("rpc " + app + ": success"));
            // the agent was configured for JSON lines: each line one object with time, level, component, msg and its fields
            var agentLines = agent.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.Clone()).ToList();
            Assert.All(agentLines, j => Assert.Equal("fleet-agent", j.GetProperty("component").GetString()));
            Assert.Contains(agentLines, j => j.TryGetProperty("command", out var c) && c.GetString() == "update_version"
                && j.GetProperty("app").GetString() == app && j.GetProperty("outcome").GetString() == "success" && j.GetProperty("level").GetString() == "info");
        }
        finally
        {
            Cmd.Run(Tool.DockerComposeV2, ["compose", "--project-directory", dir, "-p", app, "down", "--remove-orphans"]);
        }
    }

    /// <summary>The updater's /metrics once <paramref name="done"/> holds for them (polled for up to 150 s; the last answer otherwise).</summary>
    private static async Task<string> MetricsWhenAsync(HttpClient http, int port, Func<string, bool> done)
    {
        var metrics = "";
        for (int i = 0; i < 600 && !done(metrics); i++)
        {
            await Task.Delay(250);
            try { metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics"); } catch (HttpRequestException) { }
        }

        return metrics;
    }

    /// <summary>The value of one counter line ("name{labels} value") in Prometheus text, 0 when absent.</summary>
    private static long Counter(string metrics, string series) =>
        metrics.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal)).Select(l => long.Parse(l[(series.Length + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();

    [SkippableFact]
    public void Check_prints_each_target_and_exits_4_when_one_is_missing_and_bad_config_exits_2()
    {
        var env = new Dictionary<string, string?>
        {
            ["APPS_TO_UPDATE"] = """{"app1":"2.0","app2":"5.5"}""",
            ["APP_TO_IMAGE"] = $"{{\"app1\":\"{fx.Repo}\",\"app2\":\"{fx.Repo}\"}}",
        };
        var r = Cmd.Run(Repo.Binary("fleet-updater"), ["--check"], env);
        Assert.Equal(4, r.ExitCode);
        Assert.Equal("app1 2.0\napp2 MISSING", r.Stdout.Trim());
        env["APPS_TO_UPDATE"] = """{"app1":">=1.0,<3"}""";
        env["APP_TO_IMAGE"] = $"{{\"app1\":\"{fx.Repo}\"}}";
        r = Cmd.Run(Repo.Binary("fleet-updater"), ["--check"], env);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("app1 2.0", r.Stdout.Trim());
        env["APPS_TO_UPDATE"] = """{"app1":"~="}""";
        r = Cmd.Run(Repo.Binary("fleet-updater"), ["--check"], env);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("target of app 'app1'", r.Stderr);
        Assert.Equal("", r.Stdout);
        r = Cmd.Run(Repo.Binary("fleet-agent"), ["--bogus"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("usage: fleet-agent", r.Stderr);
    }

    [SkippableFact]
    public void The_updater_exits_3_with_advice_when_redis_is_unreachable()
    {
        var r = Cmd.Run(Repo.Binary("fleet-updater"), [], new Dictionary<string, string?>
        {
            ["REDIS_HOST"] = "127.0.0.1",
            ["REDIS_PORT"] = RedisServer.FreePort().ToString(),
            ["APPS_TO_UPDATE"] = """{"app1":"2.0"}""",
            ["APP_TO_IMAGE"] = $"{{\"app1\":\"{fx.Repo}\"}}",
        }, timeout: TimeSpan.FromMinutes(2));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("cannot connect to Redis", r.Stderr);
    }
}
