using System.Globalization;
using System.Text.Json.Nodes;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Podman;

/// <summary>One container of an application as <c>podman container inspect</c> describes it.</summary>
/// <param name="Id">full container ID</param>
/// <param name="Name">podman's name, <c>&lt;pod&gt;-&lt;container&gt;</c></param>
/// <param name="Workload">the Pod or Deployment it belongs to, as the manifests name it</param>
/// <param name="State">podman's state: created, running, exited, stopped, ...</param>
/// <param name="ExitCode">the last exit code</param>
/// <param name="RestartCount">restarts by its restart policy since it was created</param>
/// <param name="Healthcheck">its healthcheck (a livenessProbe, as podman maps it), or null</param>
/// <param name="Health">podman's record of it: healthy, unhealthy, starting or empty (nothing ran it yet)</param>
/// <param name="ImageId">the image ID, sha256:...</param>
/// <param name="StartedAt">when it last started</param>
public sealed record PodmanContainer(
    string Id, string Name, string Workload, string State, int ExitCode, int RestartCount, Healthcheck? Healthcheck, string Health, string ImageId, DateTimeOffset StartedAt)
{
    public bool Running => State == "running";
}

/// <summary>
/// A container's healthcheck as podman keeps it: the test (<c>CMD-SHELL cmd...</c> or <c>CMD argv...</c>), how often
/// it runs, how long one run may take, how many failures in a row make it unhealthy, and the start period in which
/// failures do not count (a livenessProbe's periodSeconds, timeoutSeconds, failureThreshold, initialDelaySeconds).
/// </summary>
public sealed record Healthcheck(IReadOnlyList<string> Test, TimeSpan Interval, TimeSpan Timeout, int Retries, TimeSpan StartPeriod)
{
    /// <summary>The command line to run in the container (CMD-SHELL runs its words joined, through sh -c).</summary>
    public IReadOnlyList<string> Command => Test[0] switch
    {
        "CMD-SHELL" => ["/bin/sh", "-c", string.Join(' ', Test.Skip(1))],
        "CMD" => Test.Skip(1).ToList(),
        _ => Test,
    };
}

/// <summary>
/// The podman CLI, every command with the configured global options, run through <see cref="ChildProcess"/>
/// (own process group, timeout, SIGTERM then SIGKILL). Podman has no daemon to talk to unless one is started
/// for it; the CLI works on any device that has podman (see README.md for the measurement behind this choice).
/// </summary>
public sealed class PodmanCli(PodmanSettings settings)
{
    /// <summary>The label of every pod, container and volume of an application (the one the k8s sub-module puts on its objects).</summary>
    public const string ApplicationLabel = "app.mender.io/application";

    /// <summary>The label naming the Pod or Deployment of the manifests a pod and its containers come from.</summary>
    public const string WorkloadLabel = "app.mender.io/workload";

    /// <summary>The label naming its kind (Pod or Deployment), so that a Deployment replacing a Pod of the same name replaces its pod.</summary>
    public const string KindLabel = "app.mender.io/kind";

    private string? _path;

    private string Path => _path ??= settings.Command.Contains('/', StringComparison.Ordinal)
        ? settings.Command
        : ChildProcess.FindOnPath(settings.Command)
          ?? throw new SubModuleFailure($"podman_command \"{settings.Command}\" is not on PATH: install podman (`apt-get install podman catatonit`) or set podman_command in {settings.Source}");

    public async Task<ProcessResult> RunAsync(IEnumerable<string> args, CancellationToken ct, TimeSpan? timeout = null)
    {
        var spec = new ProcessSpec(Path, [.. settings.GlobalArgs, .. args])
        {
            Timeout = timeout ?? settings.CommandTimeout,
            Environment = settings.ContainersConf is { } conf ? new Dictionary<string, string?> { ["CONTAINERS_CONF"] = conf } : new Dictionary<string, string?>(),
        };
        Log.Debug($"running {spec}");
        try
        {
            return await ChildProcess.RunAsync(spec, ct).ConfigureAwait(false);
        }
        catch (ChildProcessException e)
        {
            throw new SubModuleFailure($"{e.Message}: install podman (`apt-get install podman catatonit`) or set podman_command in {settings.Source}");
        }
    }

    /// <summary>Runs a command that must succeed; a failure names the command and podman's last words.</summary>
    public async Task<string> OkAsync(IEnumerable<string> args, string what, CancellationToken ct)
    {
        var list = args.ToList();
        var r = await RunAsync(list, ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw new SubModuleFailure($"{what} failed: {Reason(r, list)}");
        }

        return r.Stdout;
    }

    /// <summary>Why a command failed, in one line: podman's last error line, or the timeout.</summary>
    public string Reason(ProcessResult r, IEnumerable<string> args)
    {
        ArgumentNullException.ThrowIfNull(r);
        var command = $"podman {string.Join(' ', args)}";
        if (r.TimedOut)
        {
            return $"`{command}` did not finish within {settings.CommandTimeout.TotalSeconds:0} s (command_timeout_seconds in {settings.Source})";
        }

        var last = r.StderrTail.Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.Length > 0 && !l.Contains("level=warning", StringComparison.Ordinal)) ?? $"exit {r.ExitCode}";
        return $"`{command}` exited {r.ExitCode}: {last}";
    }

    /// <summary>The image ID (sha256:...) podman has for a reference or ID, or null.</summary>
    public async Task<string?> ImageIdAsync(string reference, CancellationToken ct)
    {
        var r = await RunAsync(["image", "inspect", "--format", "{{.Id}}", reference], ct).ConfigureAwait(false);
        var id = r.Stdout.Trim();
        return r.Succeeded && id.Length > 0 ? "sha256:" + id : null;
    }

    /// <summary>The containers (not the pods' infra containers) of an application, by its label.</summary>
    public async Task<IReadOnlyList<PodmanContainer>> ContainersAsync(string app, CancellationToken ct)
    {
        var ids = (await OkAsync(["ps", "--all", "--quiet", "--no-trunc", "--filter", $"label={ApplicationLabel}={app}"], "listing the containers of " + app, ct).ConfigureAwait(false))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids.Length == 0)
        {
            return [];
        }

        // A container removed between the two commands makes inspect fail for it; it prints the others.
        var r = await RunAsync(["container", "inspect", .. ids], ct).ConfigureAwait(false);
        var array = r.Stdout.Trim().Length > 0 ? JsonNode.Parse(r.Stdout) as JsonArray : null;
        return (array ?? []).OfType<JsonObject>().Select(Container).OrderBy(c => c.Name, StringComparer.Ordinal).ToList();
    }

    private static PodmanContainer Container(JsonObject c)
    {
        var state = c["State"] as JsonObject ?? [];
        var labels = c["Config"]?["Labels"] as JsonObject ?? [];
        var image = c["Image"]?.GetValue<string>() ?? string.Empty;
        return new PodmanContainer(
            c["Id"]?.GetValue<string>() ?? string.Empty,
            c["Name"]?.GetValue<string>() ?? string.Empty,
            labels[WorkloadLabel]?.GetValue<string>() ?? string.Empty,
            state["Status"]?.GetValue<string>() ?? "unknown",
            Int(state["ExitCode"]),
            Int(c["RestartCount"]),
            HealthcheckOf(c["Config"]?["Healthcheck"]),
            state["Health"]?["Status"]?.GetValue<string>() ?? string.Empty,
            image.Length == 0 || image.StartsWith("sha256:", StringComparison.Ordinal) ? image : "sha256:" + image,
            DateTimeOffset.TryParse(state["StartedAt"]?.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var started) ? started : DateTimeOffset.MinValue);
    }

    /// <summary>A container's Config.Healthcheck as podman inspects it (durations in nanoseconds), or null when it has none.</summary>
    private static Healthcheck? HealthcheckOf(JsonNode? node)
    {
        var test = (node?["Test"] as JsonArray ?? []).Select(t => t?.GetValue<string>()).OfType<string>().ToList();
        if (test.Count == 0 || test[0] == "NONE" || (test[0] is "CMD" or "CMD-SHELL" && test.Count == 1))
        {
            return null;
        }

        static TimeSpan Duration(JsonNode? n, TimeSpan fallback) =>
            n is JsonValue v && v.TryGetValue<long>(out var ns) && ns > 0 ? TimeSpan.FromTicks(ns / 100) : fallback;
        var retries = node?["Retries"] is JsonValue r && r.TryGetValue<int>(out var count) && count > 0 ? count : 3;
        return new Healthcheck(test, Duration(node?["Interval"], TimeSpan.FromSeconds(30)), Duration(node?["Timeout"], TimeSpan.FromSeconds(30)), retries, Duration(node?["StartPeriod"], TimeSpan.Zero));
    }

    private static int Int(JsonNode? n) =>
        n is JsonValue v && v.TryGetValue<int>(out var i) ? i : n is JsonValue d && d.TryGetValue<double>(out var x) ? (int)x : 0;

    /// <summary>The last lines of a container's log (stdout and stderr), for failure messages; empty when it has none.</summary>
    public async Task<string> LogTailAsync(string container, CancellationToken ct)
    {
        if (settings.LogTailLines == 0)
        {
            return string.Empty;
        }

        var r = await RunAsync(["logs", "--tail", settings.LogTailLines.ToString(CultureInfo.InvariantCulture), container], ct).ConfigureAwait(false);
        // podman logs writes the container's stderr lines to its own stderr.
        var text = (r.Stdout + "\n" + r.StderrTail).Trim();
        return r.Succeeded || text.Length > 0 ? text : string.Empty;
    }
}
