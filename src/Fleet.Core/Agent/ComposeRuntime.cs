using AppModule.Runtime;

namespace Fleet.Core.Agent;

/// <summary>A step on the engine failed; the message says which and why (with the tail of the tool's output).</summary>
public sealed class RuntimeStepException(string message) : Exception(message);

/// <summary>What the agent asks of the container runtime for one app (a compose project).</summary>
public interface IComposeRuntime
{
    /// <summary>Pulls the images the app's compose file names (one service, or all).</summary>
    Task PullAsync(string app, string directory, string? service, CancellationToken ct);
    /// <summary>Brings the app up from its directory and waits until its containers are running and healthy.</summary>
    Task RolloutAsync(string app, string directory, CancellationToken ct);
    /// <summary>Stops what <paramref name="failedDirectory"/> started and rolls out <paramref name="rollbackDirectory"/>.</summary>
    Task RollbackAsync(string app, string rollbackDirectory, string failedDirectory, CancellationToken ct);
    Task StopAsync(string app, string directory, CancellationToken ct);
    Task RestartAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct);
    /// <summary>Recreates one service or all from the current file (seed 002's "update"), optionally health-gated.</summary>
    Task UpAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct);
}

/// <summary>Rollout through the Compose CLI (v2 plugin or v1) plus an engine health wait. Used until the project's
/// docker-compose sub-module is available; see <see cref="SubModuleRuntime"/>.</summary>
public sealed class ComposeCliRuntime(IReadOnlyList<string> composeCommand, string dockerCli, TimeSpan healthTimeout) : IComposeRuntime
{
    public static IReadOnlyList<string> DetectCompose(string dockerCli)
    {
        try
        {
            var r = ChildProcess.RunAsync(new ProcessSpec(dockerCli, ["compose", "version"]) { Timeout = TimeSpan.FromSeconds(20) }, CancellationToken.None).GetAwaiter().GetResult();
            if (r.Succeeded) return [dockerCli, "compose"];
        }
        catch (ChildProcessException) { }
        return ChildProcess.FindOnPath("docker-compose") is { } v1 ? [v1]
            : throw new RuntimeStepException($"neither '{dockerCli} compose' (v2) nor docker-compose (v1) is available; install one or set compose_command");
    }

    private async Task<ProcessResult> RunAsync(string what, string file, IEnumerable<string> args, CancellationToken ct, bool check = true)
    {
        var spec = new ProcessSpec(file, args.ToList()) { Timeout = TimeSpan.FromMinutes(10), KillGrace = TimeSpan.FromSeconds(10) };
        var r = await ChildProcess.RunAsync(spec, ct);
        if (check && !r.Succeeded)
            throw new RuntimeStepException($"{what} failed ({(r.TimedOut ? "timed out" : "exit " + r.ExitCode)}): {ProcessSpec.Display(file, spec.Arguments)}: {r.StderrTail.Trim()}");
        return r;
    }

    private Task<ProcessResult> ComposeAsync(string what, string app, string dir, IEnumerable<string> args, CancellationToken ct, bool check = true) =>
        RunAsync(what, composeCommand[0], composeCommand.Skip(1).Concat(["--project-directory", dir, "-f", ComposeFile.Find(dir), "-p", app]).Concat(args), ct, check);

    public Task PullAsync(string app, string directory, string? service, CancellationToken ct) =>
        ComposeAsync("pull", app, directory, service is null ? ["pull"] : ["pull", service], ct);

    public async Task RolloutAsync(string app, string directory, CancellationToken ct)
    {
        await ComposeAsync("up", app, directory, ["up", "-d", "--remove-orphans"], ct);
        await WaitHealthyAsync(app, directory, null, ct);
    }

    public async Task RollbackAsync(string app, string rollbackDirectory, string failedDirectory, CancellationToken ct)
    {
        await ComposeAsync("stop of the failed composition", app, failedDirectory, ["down", "--remove-orphans"], ct, check: false);
        await RolloutAsync(app, rollbackDirectory, ct);
    }

    public Task StopAsync(string app, string directory, CancellationToken ct) =>
        ComposeAsync("down", app, directory, ["down", "--remove-orphans"], ct);

    public async Task RestartAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct)
    {
        await ComposeAsync("restart", app, directory, service is null ? ["restart"] : ["restart", service], ct);
        if (waitHealthy) await WaitHealthyAsync(app, directory, service, ct);
    }

    public async Task UpAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct)
    {
        await ComposeAsync("up", app, directory, service is null ? ["up", "-d", "--remove-orphans"] : ["up", "-d", "--no-deps", service], ct);
        if (waitHealthy) await WaitHealthyAsync(app, directory, service, ct);
    }

    /// <summary>[name, status, health ("none" without a healthcheck), exit code, id] per container of `docker inspect`.</summary>
    private static List<string[]> ParseStates(string json)
    {
        var list = new List<string[]>();
        if (string.IsNullOrWhiteSpace(json)) return list;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                var st = c.GetProperty("State");
                var health = st.TryGetProperty("Health", out var h) && h.ValueKind == System.Text.Json.JsonValueKind.Object ? h.GetProperty("Status").GetString() ?? "none" : "none";
                list.Add([c.GetProperty("Name").GetString() ?? "", st.GetProperty("Status").GetString() ?? "", health,
                    st.GetProperty("ExitCode").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture), c.GetProperty("Id").GetString() ?? ""]);
            }
        }
        catch (System.Text.Json.JsonException) { }
        return list;
    }

    /// <summary>Polls the engine until every container of the project (or service) runs and, when it has a
    /// healthcheck, is healthy. An exited, restarting or unhealthy container fails at once, with its last log lines.</summary>
    public async Task WaitHealthyAsync(string app, string directory, string? service, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + healthTimeout;
        string last = "no containers";
        while (true)
        {
            var ps = await ComposeAsync("ps", app, directory, service is null ? ["ps", "-a", "-q"] : ["ps", "-a", "-q", service], ct);
            var ids = ps.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (ids.Length > 0)
            {
                var insp = await RunAsync("inspect", dockerCli, new[] { "inspect" }.Concat(ids), ct, check: false);
                // a container can vanish between ps and inspect while compose replaces it: judge what is there
                var states = ParseStates(insp.Stdout);
                var bad = states.FirstOrDefault(s => s[1] is "exited" or "dead" or "restarting" || s[2] == "unhealthy");
                if (bad is not null)
                {
                    var logs = await RunAsync("logs", dockerCli, ["logs", "--tail", "20", bad[4]], ct, check: false);
                    var why = bad[2] == "unhealthy" ? "is unhealthy" : $"is {bad[1]} (exit code {bad[3]})";
                    throw new RuntimeStepException($"container {bad[0].TrimStart('/')} {why}; last log lines: {(logs.Stdout + logs.StderrTail).Trim()}");
                }
                if (insp.Succeeded && states.All(s => s[1] == "running" && s[2] is "healthy" or "none")) return;
                last = string.Join(", ", states.Select(s => $"{s[0].TrimStart('/')} {s[1]}/{s[2]}"));
            }
            if (DateTime.UtcNow > deadline)
                throw new RuntimeStepException($"not healthy within {healthTimeout.TotalSeconds:0} s: {last}");
            await Task.Delay(500, ct);
        }
    }
}

/// <summary>Rollout through the project's docker-compose sub-module (sub-module-api.md: ROLLOUT, ROLLBACK, STOP),
/// which owns the health gate. Pull, restart and single-service up go through the Compose CLI.</summary>
public sealed class SubModuleRuntime(string executable, ComposeCliRuntime cli, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null) : IComposeRuntime
{
    private async Task CallAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        var spec = new ProcessSpec(executable, args) { Timeout = timeout, OnStderr = l => Log.Debug("sub-module: " + l) };
        if (environment is not null) spec = spec with { Environment = environment };
        var r = await ChildProcess.RunAsync(spec, ct);
        if (!r.Succeeded)
            throw new RuntimeStepException($"{executable} {string.Join(' ', args)} failed ({(r.TimedOut ? "timed out" : "exit " + r.ExitCode)}): {r.StderrTail.Trim()}");
    }

    public Task PullAsync(string app, string directory, string? service, CancellationToken ct) => cli.PullAsync(app, directory, service, ct);
    public Task RolloutAsync(string app, string directory, CancellationToken ct) => CallAsync(["ROLLOUT", app, directory], ct);
    public Task RollbackAsync(string app, string rollbackDirectory, string failedDirectory, CancellationToken ct) =>
        CallAsync(["ROLLBACK", app, rollbackDirectory, failedDirectory], ct);
    public Task StopAsync(string app, string directory, CancellationToken ct) => CallAsync(["STOP", app, directory], ct);
    public Task RestartAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct) => cli.RestartAsync(app, directory, service, waitHealthy, ct);
    public Task UpAsync(string app, string directory, string? service, bool waitHealthy, CancellationToken ct) =>
        service is null && waitHealthy ? RolloutAsync(app, directory, ct) : cli.UpAsync(app, directory, service, waitHealthy, ct);
}
