using System.Globalization;
using System.Text.Json.Nodes;
using AppModule.Core.Images;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using Kubernetes;
using SubModule.Hosting;

namespace Podman;

/// <summary>
/// The podman sub-module: Kubernetes manifests (the ones the k8s sub-module takes) run by <c>podman kube play</c>,
/// images in podman's image store. Each application's pods, containers and volumes carry its label
/// (<see cref="PodmanCli.ApplicationLabel"/>); its manifests are kept under <c>state_dir</c> (current and previous,
/// for EXPORT_MANIFEST and ROLLBACK) with the restart counts its containers had when they were last found healthy.
/// </summary>
public sealed partial class PodmanSubModule(PodmanSettings settings, SubModuleContext context) : ISubModule
{
    private const string CurrentSnapshot = "current";
    private const string PreviousSnapshot = "previous";
    private const string RestartsRecord = "restarts";
    private readonly PodmanCli _podman = new(settings);
    private readonly ManifestStore _state = new(settings.StateDirectory);

    // ---- images ---------------------------------------------------------------------------------

    public async Task LoadAsync(SubModuleCall.Load call, CancellationToken ct)
    {
        if (context.Options.Contains(SubModuleContext.DeepDeltaOption))
        {
            throw new SubModuleFailure($"{call.File} is a deep delta, which only the docker-compose sub-module takes: build the artifact for podman without --deep-delta");
        }

        var url = ImageUrl.Parse(call.UrlNew);
        var staged = await StageStreamAsync(call.File, ct).ConfigureAwait(false);
        ProcessResult r;
        string[] args;
        try
        {
            args = ["load", "--input", staged ?? call.File];
            r = await _podman.RunAsync(args, ct).ConfigureAwait(false);
        }
        finally
        {
            if (staged is not null)
            {
                File.Delete(staged);
            }
        }

        if (!r.Succeeded)
        {
            throw new SubModuleFailure($"cannot load {call.File} as an image for {call.UrlNew}: {_podman.Reason(r, args)}");
        }

        // "Loaded image: localhost/web:1.0" or "Loaded image(s): a,b" (an archive of an untagged image names its ID).
        var loaded = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith("Loaded image", StringComparison.Ordinal))
            .SelectMany(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToList();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in loaded)
        {
            if (await _podman.ImageIdAsync(item, ct).ConfigureAwait(false) is { } id)
            {
                ids.Add(id);
            }
        }

        if (ids.Count == 0)
        {
            throw new SubModuleFailure($"podman loaded no image from {call.File} (expected {call.UrlNew}); is it a `docker save` or `podman save` archive?");
        }

        var current = await _podman.ImageIdAsync(url.Reference, ct).ConfigureAwait(false);
        if (current is null || !ids.Contains(current))
        {
            if (ids.Count != 1 || url.IsId)
            {
                throw new SubModuleFailure($"{call.File} does not hold {call.UrlNew} (it holds {string.Join(", ", loaded)})");
            }

            current = ids.Single();
            await _podman.OkAsync(["tag", current[7..], url.Reference], $"tagging the image loaded from {call.File} as {url.Reference}", ct).ConfigureAwait(false);
        }

        if (url.Digest is { } digest && !url.Matches(current, await RepoDigestsAsync(url.Reference, ct).ConfigureAwait(false)))
        {
            if (!url.IsId)
            {
                await _podman.RunAsync(["untag", current[7..], url.Reference], ct).ConfigureAwait(false);
            }

            throw new SubModuleFailure($"the image loaded from {call.File} for {url.Reference} is {current[..19]}, not {digest[..19]} as {call.UrlNew} says; the artifact's image does not match its url");
        }

        Log.Info($"loaded {url.Reference} ({current[..19]}) from {call.File}");
    }

    /// <summary>
    /// `podman load --input` opens its input once per archive format it tries, which a stream (the FIFO `app` feeds
    /// an artifact's image through) serves only once: the second open waits for a writer that is gone. A stream is
    /// therefore copied to a file under state_dir first (podman would copy its stdin to a temporary file the same way);
    /// returns that file, or null when <paramref name="file"/> is a regular file podman can read where it is.
    /// </summary>
    private async Task<string?> StageStreamAsync(string file, CancellationToken ct)
    {
        FileStream source;
        try
        {
            source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot read {file}: {e.Message}");
        }

        await using (source.ConfigureAwait(false))
        {
            if (source.CanSeek)
            {
                return null;
            }

            var dir = Path.Combine(settings.StateDirectory, "staging");
            var staged = Path.Combine(dir, $"load-{Guid.NewGuid():N}.tar");
            try
            {
                Directory.CreateDirectory(dir);
                var target = new FileStream(staged, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
                await using (target.ConfigureAwait(false))
                {
                    await source.CopyToAsync(target, ct).ConfigureAwait(false);
                }

                Log.Debug($"{file} is a stream: copied it to {staged} ({new FileInfo(staged).Length} bytes) for podman load");
                return staged;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                File.Delete(staged);
                throw new SubModuleFailure($"cannot copy the image stream {file} to {staged} for podman load: {e.Message}; free space under state_dir ({settings.StateDirectory}, {settings.Source})");
            }
        }
    }

    private async Task<IReadOnlyList<string>> RepoDigestsAsync(string reference, CancellationToken ct)
    {
        var r = await _podman.RunAsync(["image", "inspect", "--format", "{{range .RepoDigests}}{{.}}\n{{end}}", reference], ct).ConfigureAwait(false);
        return r.Succeeded ? r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
    }

    public async Task SaveAsync(SubModuleCall.Save call, CancellationToken ct)
    {
        var url = ImageUrl.Parse(call.Url);
        if (await _podman.ImageIdAsync(url.Reference, ct).ConfigureAwait(false) is null)
        {
            throw new SubModuleFailure($"cannot save {call.Url}: podman has no such image (`podman images` lists what it has)");
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(call.OutputFile))!;
        Directory.CreateDirectory(dir);
        var partial = Path.Combine(dir, $".{Path.GetFileName(call.OutputFile)}.{Environment.ProcessId}.partial");
        try
        {
            await _podman.OkAsync(["save", "--format", "docker-archive", "--output", partial, url.Reference], $"saving {call.Url} to {call.OutputFile}", ct).ConfigureAwait(false);
            File.Move(partial, call.OutputFile, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    public async Task DeleteAsync(SubModuleCall.Delete call, CancellationToken ct)
    {
        var url = ImageUrl.Parse(call.Url);
        if (await _podman.ImageIdAsync(url.Reference, ct).ConfigureAwait(false) is not { } id)
        {
            Log.Info($"{call.Url} is not in podman's image store; nothing to delete");
            return;
        }

        // podman rmi of one of several tags only untags, also while a container runs the image: refuse that too.
        var users = (await _podman.OkAsync(["ps", "--all", "--format", "{{.Names}}", "--filter", $"ancestor={id[7..]}"], $"listing the containers of {call.Url}", ct).ConfigureAwait(false))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (users.Length > 0)
        {
            throw new SubModuleFailure($"cannot delete {call.Url}: it is in use by container(s) {string.Join(", ", users)}; stop or purge the application that runs it first");
        }

        var args = new[] { "rmi", url.Reference };
        var r = await _podman.RunAsync(args, ct).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            var reason = _podman.Reason(r, args);
            throw new SubModuleFailure(reason.Contains("in use", StringComparison.OrdinalIgnoreCase)
                ? $"cannot delete {call.Url}: it is in use by a container; stop the application that runs it first ({reason})"
                : $"cannot delete {call.Url}: {reason}");
        }
    }

    public async Task<EngineStorage> StorageAsync(CancellationToken ct)
    {
        var info = JsonNode.Parse(await _podman.OkAsync(["info", "--format", "json"], "asking podman where it stores images", ct).ConfigureAwait(false));
        var root = info?["store"]?["graphRoot"]?.GetValue<string>() ?? throw new SubModuleFailure("`podman info` names no store.graphRoot");
        var version = info?["version"]?["Version"]?.GetValue<string>() ?? "?";
        var ids = (await _podman.OkAsync(["images", "--all", "--quiet", "--no-trunc"], "listing podman's images", ct).ConfigureAwait(false))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        var images = new List<string>();
        var layers = new SortedSet<string>(StringComparer.Ordinal);
        if (ids.Count > 0)
        {
            var inspected = JsonNode.Parse(await _podman.OkAsync(["image", "inspect", .. ids], "inspecting podman's images", ct).ConfigureAwait(false)) as JsonArray ?? [];
            foreach (var image in inspected.OfType<JsonObject>())
            {
                var id = image["Id"]?.GetValue<string>() ?? string.Empty;
                images.Add(id.StartsWith("sha256:", StringComparison.Ordinal) ? id : "sha256:" + id);
                var diffs = (image["RootFS"]?["Layers"] as JsonArray ?? []).Select(l => l?.GetValue<string>()).OfType<string>();
                layers.UnionWith(ImageLayers.ChainIds(diffs));
            }
        }

        // podman load reads the archive where it is (a stream goes to a temporary file outside the store), and
        // stores each layer once.
        return new EngineStorage($"podman {version}", root, FreeSpace.Of(root), layers.ToList(), images, StagesArchive: false, CopiesPerLayer: 1);
    }

    // ---- rollout --------------------------------------------------------------------------------

    public async Task RolloutAsync(SubModuleCall.Rollout call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        await RolloutDirectoryAsync(call.Application, call.ManifestsDirectory, ct).ConfigureAwait(false);
    }

    public async Task RollbackAsync(SubModuleCall.Rollback call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        var dir = call.RollbackDirectory;
        if (!HasManifests(dir))
        {
            if (!_state.HasSnapshot(call.Application, PreviousSnapshot))
            {
                throw new SubModuleFailure($"cannot roll back {call.Application}: {dir} holds no manifests and no previous manifests were recorded in {_state.AppDirectory(call.Application)}");
            }

            Log.Info($"{dir} holds no manifests; rolling back to the previously rolled out manifests");
            dir = _state.Snapshot(call.Application, PreviousSnapshot);
        }

        // The failed version's pods stop first (its volumes stay); ROLLOUT then removes those the rollback does not run.
        await StopPodsAsync(call.Application, ct).ConfigureAwait(false);
        await RolloutDirectoryAsync(call.Application, dir, ct).ConfigureAwait(false);
    }

    private static bool HasManifests(string dir)
    {
        try
        {
            return Manifests.Files(dir).Count > 0;
        }
        catch (SubModuleFailure)
        {
            return false;
        }
    }

    private PlayPlan PlanOf(string app, string dir)
    {
        var objects = Manifests.Load(dir);
        HostAccessCheck.Check(objects, settings.HostAccess);
        return KubePlay.Plan(app, objects);
    }

    private async Task RolloutDirectoryAsync(string app, string dir, CancellationToken ct)
    {
        var plan = PlanOf(app, dir);

        // Pods of workloads the new manifests no longer have go; their volumes stay.
        var dropped = (await PodsAsync(app, ct).ConfigureAwait(false)).Where(p => plan.Kinds.GetValueOrDefault(p.Workload) != p.Kind).Select(p => p.Name).ToList();
        if (dropped.Count > 0)
        {
            await _podman.OkAsync(["pod", "rm", "--force", "--time", Seconds(settings.StopTimeout), .. dropped], $"removing the pods {string.Join(", ", dropped)} of {app}", ct).ConfigureAwait(false);
            Log.Info($"removed {string.Join(", ", dropped)}: not in the manifests of {dir}");
        }

        foreach (var v in plan.Volumes)
        {
            if ((await _podman.RunAsync(["volume", "exists", v.Volume], ct).ConfigureAwait(false)).ExitCode != 0)
            {
                await _podman.OkAsync(["volume", "create", "--label", $"{PodmanCli.ApplicationLabel}={app}", v.Volume], $"creating volume {v.Volume} for claim {v.Claim} of {app}", ct).ConfigureAwait(false);
                Log.Info($"created volume {v.Volume} for the claim {v.Claim}");
            }
        }

        Directory.CreateDirectory(_state.AppDirectory(app));
        var play = Path.Combine(_state.AppDirectory(app), $".play.{Environment.ProcessId}.yaml");
        try
        {
            await File.WriteAllTextAsync(play, plan.Yaml, ct).ConfigureAwait(false);
            await _podman.OkAsync(["kube", "play", "--replace", play], $"`podman kube play` of the manifests in {dir} for {app}", ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(play);
        }

        Record(app, dir);
        await WaitReadyAsync(app, plan.Workloads.Keys.ToHashSet(StringComparer.Ordinal), new Dictionary<string, int>(), ct).ConfigureAwait(false);
    }

    /// <summary>Records a rollout: current becomes previous (unless <paramref name="dir"/> is current itself), the given manifests become current.</summary>
    private void Record(string app, string dir)
    {
        var same = string.Equals(Path.GetFullPath(_state.Snapshot(app, CurrentSnapshot)).TrimEnd('/'), Path.GetFullPath(dir).TrimEnd('/'), StringComparison.Ordinal);
        _state.Keep(app, CurrentSnapshot, dir, Manifests.Files, keepOldAs: same ? null : PreviousSnapshot);
    }

    /// <summary>
    /// Waits until every container of <paramref name="workloads"/> runs and, when it has a healthcheck, passes it.
    /// Podman runs healthchecks from systemd timers, which a device without systemd (or a store given by --root)
    /// does not have, and <c>podman healthcheck run</c> applies kube play's on-failure action (it kills the container
    /// and, on 4.3, fails to start it again in its pod), so this runs the check's command itself (<c>podman exec</c>)
    /// at the check's interval, with its timeout, start period and retries. Fails at once for a container that exited
    /// and is not restarted, that restarted since <paramref name="baseline"/>, or whose check failed as many times in
    /// a row as its retries (failureThreshold) allow; fails at <c>rollout_timeout_seconds</c> otherwise. Records the
    /// restart counts it saw as the baseline of HEALTHY.
    /// </summary>
    private async Task WaitReadyAsync(string app, IReadOnlySet<string> workloads, IReadOnlyDictionary<string, int> baseline, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + settings.RolloutTimeout;
        var probes = new Dictionary<string, ProbeState>(StringComparer.Ordinal);
        while (true)
        {
            var containers = (await _podman.ContainersAsync(app, ct).ConfigureAwait(false)).Where(c => workloads.Contains(c.Workload)).ToList();
            var waiting = new List<string>();
            foreach (var w in workloads.Where(w => containers.All(c => c.Workload != w)))
            {
                waiting.Add($"{w}: no container");
            }

            foreach (var c in containers)
            {
                var restarts = c.RestartCount - baseline.GetValueOrDefault(c.Id);
                if (restarts > 0)
                {
                    throw await FailureAsync(app, c, $"restarted {restarts} time(s) since the rollout (a restart loop: it exits with code {c.ExitCode})", ct).ConfigureAwait(false);
                }

                if (c.Health == "unhealthy")
                {
                    throw await FailureAsync(app, c, "is unhealthy: podman's own runs of its healthcheck (livenessProbe) failed", ct).ConfigureAwait(false);
                }

                if (!c.Running)
                {
                    if (c.State is "exited" or "stopped" && c.RestartCount == 0 && await StaysDownAsync(c, ct).ConfigureAwait(false))
                    {
                        throw await FailureAsync(app, c, $"exited with code {c.ExitCode}", ct).ConfigureAwait(false);
                    }

                    waiting.Add($"{c.Name}: {c.State}");
                    continue;
                }

                if (c.Healthcheck is not { } check)
                {
                    continue;
                }

                var probe = probes.TryGetValue(c.Id, out var known) ? known : probes[c.Id] = new ProbeState();
                var now = DateTimeOffset.UtcNow;
                if (!probe.Passed && now >= probe.Next)
                {
                    probe.Next = now + check.Interval;
                    var (ok, output) = await ProbeAsync(c, check, ct).ConfigureAwait(false);
                    if (ok)
                    {
                        probe.Passed = true;
                    }
                    else if (now - c.StartedAt >= check.StartPeriod)
                    {
                        probe.Failures++;
                        probe.Last = output;
                        if (probe.Failures >= check.Retries)
                        {
                            throw await FailureAsync(app, c, $"is unhealthy: its healthcheck (livenessProbe) failed {probe.Failures} times in a row ({output})", ct).ConfigureAwait(false);
                        }
                    }
                }

                if (!probe.Passed)
                {
                    waiting.Add($"{c.Name}: healthcheck not passed yet{(probe.Failures > 0 ? $" ({probe.Failures} failure(s): {probe.Last})" : string.Empty)}");
                }
            }

            if (waiting.Count == 0)
            {
                _state.WriteRecord(app, RestartsRecord, containers.Select(c => $"{c.Id} {c.RestartCount.ToString(CultureInfo.InvariantCulture)}"));
                Log.Info($"{app}: {containers.Count} container(s) of {workloads.Count} workload(s) run{(containers.Any(c => c.Healthcheck is not null) ? " and pass their healthchecks" : string.Empty)}");
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new SubModuleFailure($"{app} is not ready after {settings.RolloutTimeout.TotalSeconds:0} s (rollout_timeout_seconds in {settings.Source}): {string.Join("; ", waiting)}");
            }

            await Task.Delay(settings.PollInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>What ROLLOUT and START know of one container's healthcheck while they wait.</summary>
    private sealed class ProbeState
    {
        public bool Passed { get; set; }

        public int Failures { get; set; }

        public string Last { get; set; } = string.Empty;

        public DateTimeOffset Next { get; set; } = DateTimeOffset.MinValue;
    }

    /// <summary>True when an exited container will not be started again by its restart policy (no, or on-failure after a success).</summary>
    private async Task<bool> StaysDownAsync(PodmanContainer c, CancellationToken ct)
    {
        var policy = (await _podman.RunAsync(["container", "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", c.Id], ct).ConfigureAwait(false)).Stdout.Trim();
        return policy is "" or "no" || (policy == "on-failure" && c.ExitCode == 0);
    }

    /// <summary>Runs the healthcheck's command in the container once: passed, or why not (its last output line, exit code or timeout).</summary>
    private async Task<(bool Ok, string Output)> ProbeAsync(PodmanContainer c, Healthcheck check, CancellationToken ct)
    {
        // The check's own timeout, plus what starting the podman client costs on a loaded device.
        var r = await _podman.RunAsync(["exec", c.Id, .. check.Command], ct, check.Timeout + TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        if (r.Succeeded)
        {
            return (true, string.Empty);
        }

        var last = (r.Stdout + "\n" + r.StderrTail).Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.Length > 0);
        return (false, r.TimedOut ? $"timed out after {check.Timeout.TotalSeconds:0} s" : $"exit {r.ExitCode}{(last is null ? string.Empty : ": " + last)}");
    }

    private async Task<SubModuleFailure> FailureAsync(string app, PodmanContainer c, string what, CancellationToken ct)
    {
        var tail = await _podman.LogTailAsync(c.Id, ct).ConfigureAwait(false);
        var log = tail.Length == 0 ? " (its log is empty)" : $"; the last lines of its log:\n{tail}";
        return new SubModuleFailure($"{app}: container {c.Name} of {c.Workload} {what} (state {c.State}){log}");
    }

    // ---- stop, start --------------------------------------------------------------------------------

    /// <summary>The pods of an application: name, the workload they run and its kind.</summary>
    private async Task<IReadOnlyList<(string Name, string Workload, string Kind)>> PodsAsync(string app, CancellationToken ct)
    {
        var text = await _podman.OkAsync(["pod", "ps", "--filter", $"label={PodmanCli.ApplicationLabel}={app}", "--format", "json"], $"listing the pods of {app}", ct).ConfigureAwait(false);
        return (JsonNode.Parse(text.Trim().Length == 0 ? "[]" : text) as JsonArray ?? []).OfType<JsonObject>()
            .Select(p => (
                p["Name"]?.GetValue<string>() ?? string.Empty,
                p["Labels"]?[PodmanCli.WorkloadLabel]?.GetValue<string>() ?? string.Empty,
                p["Labels"]?[PodmanCli.KindLabel]?.GetValue<string>() ?? string.Empty))
            .Where(p => p.Item1.Length > 0)
            .ToList();
    }

    private async Task StopPodsAsync(string app, CancellationToken ct)
    {
        var pods = await PodsAsync(app, ct).ConfigureAwait(false);
        if (pods.Count == 0)
        {
            return;
        }

        var names = pods.Select(p => p.Name).ToList();
        await _podman.OkAsync(["pod", "stop", "--time", Seconds(settings.StopTimeout), .. names], $"stopping the pods of {app}", ct).ConfigureAwait(false);
        Log.Info($"stopped {string.Join(", ", names)}; the volumes of {app} stay");
    }

    public async Task StopAsync(SubModuleCall.Stop call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        await StopPodsAsync(call.Application, ct).ConfigureAwait(false);
    }

    public async Task StartAsync(SubModuleCall.Start call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        var pods = await PodsAsync(call.Application, ct).ConfigureAwait(false);
        if (pods.Count == 0)
        {
            // Nothing to start: the pods were removed (PURGE, or by hand). Play the manifests again.
            var dir = call.ManifestsDirectory is { } given && HasManifests(given) ? given
                : _state.HasSnapshot(call.Application, CurrentSnapshot) ? _state.Snapshot(call.Application, CurrentSnapshot)
                : throw new SubModuleFailure($"cannot start {call.Application}: it has no pods and no manifests (none given, none recorded in {_state.AppDirectory(call.Application)})");
            Log.Info($"{call.Application} has no pods; rolling out {dir}");
            await RolloutDirectoryAsync(call.Application, dir, ct).ConfigureAwait(false);
            return;
        }

        await _podman.OkAsync(["pod", "start", .. pods.Select(p => p.Name)], $"starting the pods of {call.Application}", ct).ConfigureAwait(false);
        var before = (await _podman.ContainersAsync(call.Application, ct).ConfigureAwait(false)).ToDictionary(c => c.Id, c => c.RestartCount, StringComparer.Ordinal);
        await WaitReadyAsync(call.Application, pods.Select(p => p.Workload).ToHashSet(StringComparer.Ordinal), before, ct).ConfigureAwait(false);
    }

    // ---- queries ------------------------------------------------------------------------------------

    public async Task AliveAsync(SubModuleCall.Alive call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        var containers = await _podman.ContainersAsync(call.Application, ct).ConfigureAwait(false);
        if (containers.Count == 0)
        {
            throw new SubModuleFailure($"{call.Application} has no containers (never rolled out, or purged)");
        }

        var down = containers.Where(c => !c.Running).Select(c => $"{c.Name} is {c.State}{(c.State == "exited" ? $" (code {c.ExitCode})" : string.Empty)}").ToList();
        if (down.Count > 0)
        {
            throw new SubModuleFailure($"{call.Application} is not alive: {string.Join("; ", down)}");
        }
    }

    public async Task HealthyAsync(SubModuleCall.Healthy call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        var containers = await _podman.ContainersAsync(call.Application, ct).ConfigureAwait(false);
        if (containers.Count == 0)
        {
            throw new SubModuleFailure($"{call.Application} has no containers (never rolled out, or purged)");
        }

        var baseline = (_state.ReadRecord(call.Application, RestartsRecord) ?? [])
            .Select(l => l.Split(' ', 2))
            .Where(p => p.Length == 2 && int.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .ToDictionary(p => p[0], p => int.Parse(p[1], NumberStyles.None, CultureInfo.InvariantCulture), StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var c in containers)
        {
            var restarts = c.RestartCount - baseline.GetValueOrDefault(c.Id);
            if (restarts > 0)
            {
                problems.Add($"{c.Name} restarted {restarts} time(s) since the rollout");
            }
            else if (!c.Running)
            {
                problems.Add($"{c.Name} is {c.State}{(c.State == "exited" ? $" (code {c.ExitCode})" : string.Empty)}");
            }
            else if (c.Health == "unhealthy")
            {
                problems.Add($"{c.Name} is unhealthy (podman's own runs of its healthcheck failed)");
            }
            else if (c.Healthcheck is { } check && await ProbeAsync(c, check, ct).ConfigureAwait(false) is { Ok: false } probe)
            {
                problems.Add($"{c.Name} fails its healthcheck (livenessProbe): {probe.Output}");
            }
        }

        if (problems.Count > 0)
        {
            throw new SubModuleFailure($"{call.Application} is not healthy: {string.Join("; ", problems)}");
        }
    }

    public async Task<IReadOnlyList<Component>> ListComponentsAsync(SubModuleCall.LsComponents call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        if (!_state.HasSnapshot(call.Application, CurrentSnapshot))
        {
            return [];
        }

        var plan = PlanOf(call.Application, _state.Snapshot(call.Application, CurrentSnapshot));
        var result = new List<Component>();
        foreach (var (image, workloads) in plan.Workloads
                     .SelectMany(w => w.Value.Select(i => (Image: i, Workload: w.Key)))
                     .GroupBy(x => x.Image, StringComparer.Ordinal)
                     .Select(g => (g.Key, g.Select(x => x.Workload).Distinct().Order(StringComparer.Ordinal))))
        {
            var data = new Dictionary<string, string>(StringComparer.Ordinal) { ["services"] = string.Join(',', workloads) };
            if (await _podman.ImageIdAsync(image, ct).ConfigureAwait(false) is { } id)
            {
                data["image_id"] = id;
            }

            result.Add(new Component("image", image, data));
        }

        return result;
    }

    public Task ExportManifestAsync(SubModuleCall.ExportManifest call, CancellationToken ct)
    {
        KubePlay.CheckApplication(call.Application);
        if (!_state.HasSnapshot(call.Application, CurrentSnapshot))
        {
            throw new SubModuleFailure($"{call.Application} was never rolled out by this sub-module: no manifests in {_state.AppDirectory(call.Application)}");
        }

        ManifestStore.CopyFiles(_state.Snapshot(call.Application, CurrentSnapshot), call.OutputDirectory, Manifests.Files);
        return Task.CompletedTask;
    }

    public async Task PurgeAsync(SubModuleCall.Purge call, CancellationToken ct)
    {
        var app = call.Application;
        KubePlay.CheckApplication(app);
        var images = _state.HasSnapshot(app, CurrentSnapshot)
            ? PlanOf(app, _state.Snapshot(app, CurrentSnapshot)).Workloads.Values.SelectMany(i => i).Distinct(StringComparer.Ordinal).ToList()
            : [];
        var pods = (await PodsAsync(app, ct).ConfigureAwait(false)).Select(p => p.Name).ToList();
        if (pods.Count > 0)
        {
            await _podman.OkAsync(["pod", "rm", "--force", "--time", Seconds(settings.StopTimeout), .. pods], $"removing the pods of {app}", ct).ConfigureAwait(false);
        }

        foreach (var image in images)
        {
            var r = await _podman.RunAsync(["rmi", image], ct).ConfigureAwait(false);
            if (!r.Succeeded && await _podman.ImageIdAsync(image, ct).ConfigureAwait(false) is not null)
            {
                Log.Warning($"{image} stays: {_podman.Reason(r, ["rmi", image])}");
            }
        }

        if (settings.PurgeVolumes)
        {
            var volumes = (await _podman.OkAsync(["volume", "ls", "--quiet", "--filter", $"label={PodmanCli.ApplicationLabel}={app}"], $"listing the volumes of {app}", ct).ConfigureAwait(false))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            if (volumes.Count > 0)
            {
                await _podman.OkAsync(["volume", "rm", "--force", .. volumes], $"removing the volumes of {app}", ct).ConfigureAwait(false);
                Log.Info($"removed the volumes {string.Join(", ", volumes)} (purge_volumes)");
            }
        }
        else
        {
            Log.Info($"the volumes of {app} stay (set purge_volumes = true in {settings.Source} to remove them with PURGE)");
        }

        _state.Forget(app);
    }

    public async Task<IReadOnlyList<Requirement>> RequirementsAsync(CancellationToken ct)
    {
        var result = new List<Requirement>();
        try
        {
            var info = JsonNode.Parse(await _podman.OkAsync(["info", "--format", "json"], "`podman info`", ct).ConfigureAwait(false));
            result.Add(new Requirement("podman", true, "error",
                $"podman {info?["version"]?["Version"]?.GetValue<string>() ?? "?"}, store {info?["store"]?["graphRoot"]?.GetValue<string>() ?? "?"}"));
        }
        catch (SubModuleFailure e)
        {
            result.Add(new Requirement("podman", false, "error", e.Message));
        }

        // podman runs images for the machine it is on.
        if (settings.Platform is { } platform)
        {
            result.Add(Requirement.PlatformOnMachine(platform));
        }

        // With MENDER_APP_MANIFESTS_DIR (the version `app` is about to install): the manifests must be ones podman
        // runs and the host-access policy allows, before anything stops.
        if (context.PreCheckManifests is { } manifests)
        {
            try
            {
                var objects = Manifests.Load(manifests);
                HostAccessCheck.Check(objects, settings.HostAccess);
                var plan = KubePlay.Plan("precheck", objects);
                result.Add(new Requirement("manifests", true, "error", $"{objects.Count} object(s), {plan.Workloads.Count} workload(s)"));
            }
            catch (SubModuleFailure e)
            {
                result.Add(new Requirement("manifests", false, "error", e.Message));
            }
        }

        return result;
    }

    private static string Seconds(TimeSpan t) => ((int)Math.Ceiling(t.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}
