using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using AppModule.Core.Store;
using Fleet.Core.Bus;
using Fleet.Core.Wire;

namespace Hardening.Tests;

/// <summary>
/// A device the fleet agent updates: the published <c>fleet-agent</c> (Native AOT) on a private redis-server,
/// installing through the install engine into its own store with the published docker-compose sub-module, on
/// the shared engine; a private docker-registry holds the web app under four tags (1.0 and 1.1 answer
/// "web 1.0", 2.0 and 2.1 answer "web 2.0"), so that each update leaves an old tag for the cleanup to delete.
/// The app starts at 1.0, brought up by hand from its directory, as on a device before the agent ran.
/// The agent can be started with the rename shim preloaded (<see cref="StartAgent"/>) and SIGKILLed with
/// everything it started, as systemd does to the unit's control group (<see cref="KillAgentTree"/>).
/// </summary>
public sealed class AgentRig : IAsyncDisposable
{
    /// <summary>The tags an update cycles through, in order.</summary>
    public static readonly string[] Tags = ["1.0", "2.0", "1.1", "2.1"];

    private readonly RedisServer _redis;
    private readonly RegistryServer _registry;
    private readonly RedisFleetBus _bus;
    private readonly IAsyncDisposable _eventsSub;
    private readonly IAsyncDisposable _versionsSub;
    private readonly StringBuilder _agentLog = new();
    private readonly string _config;
    private Process? _agent;

    private AgentRig(RedisServer redis, RegistryServer registry, RedisFleetBus bus, IAsyncDisposable eventsSub, IAsyncDisposable versionsSub, string app, string config)
    {
        _redis = redis;
        _registry = registry;
        _bus = bus;
        _eventsSub = eventsSub;
        _versionsSub = versionsSub;
        _config = config;
        App = app;
    }

    public string App { get; }

    public string Dir { get; private init; } = "";

    public string ComposeFile => Path.Combine(Dir, "docker-compose.yml");

    public string Repo { get; private init; } = "";

    public int Port { get; private init; }

    public string Rpc { get; private init; } = "";

    public string AppConfig { get; private init; } = "";

    public AppStore Store { get; private init; } = null!;

    /// <summary>Every event the agent published, in order.</summary>
    public ConcurrentQueue<FleetEvent> Events { get; } = new();

    /// <summary>Every version report the agent published, in order.</summary>
    public ConcurrentQueue<VersionMessage> Reports { get; } = new();

    public string AgentLog
    {
        get
        {
            lock (_agentLog)
            {
                return _agentLog.ToString();
            }
        }
    }

    public static async Task<AgentRig> StartAsync(CancellationToken ct)
    {
        DockerEngine.Require();
        DockerEngine.RequireImages();
        Requires.Component("published fleet-agent", File.Exists(TestSupport.Repo.Binary("fleet-agent")) ? null : $"it is missing in {TestSupport.Repo.BinDir}: run build/publish.sh");
        var redis = new RedisServer();
        var registry = new RegistryServer();
        var app = Unique.Name("fleetkill");
        var repo = $"{registry.Address}/{app}/web";
        foreach (var tag in Tags)
        {
            registry.Push($"appmodule/web:{tag[..1]}.0", $"{app}/web:{tag}");
        }

        var root = new TempDir("agent-rig");
        var dir = root.Dir("app");
        var port = DeviceRig.FreePort();
        var appConf = root.Write("mender-app.conf",
            $"persistent_store = \"{root.Dir("store")}\"\nsubmodules_dir = \"{TestSupport.Repo.BinDir}\"\nhealth_timeout_seconds = 60\nhealth_poll_seconds = 1\nsoak_seconds = 2\n");
        var subConf = root.Write("docker-compose.conf", $"state_dir = \"{root.Dir("compose-state")}\"\ndocker_command = \"{DockerEngine.Cli}\"\nrollout_timeout = 90\n");
        var config = root.Write("agent.toml", $"""
            [redis]
            host = "127.0.0.1"
            port = {redis.Port}
            channel = "versions_{app}"
            events_channel = "events_{app}"
            [agent]
            rpc_name = "docker_compose_service_{app}"
            report_interval_seconds = 0
            app_config = "{appConf}"
            submodule_config = "{subConf}"
            docker = "{DockerEngine.Cli}"
            [apps.{app}]
            directory = "{dir}"
            """);
        var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = redis.Host, Port = redis.Port }, ct);
        AgentRig? rig = null;
        var events = await bus.SubscribeAsync($"events_{app}", (b, _) =>
        {
            var e = WireCodec.DecodeEvent(b);
            rig!.Events.Enqueue(e);
            rig.OnEvent?.Invoke(e);
            return Task.CompletedTask;
        }, ct);
        var versions = await bus.SubscribeAsync($"versions_{app}", (b, _) =>
        {
            rig!.Reports.Enqueue(WireCodec.DecodeVersion(b));
            return Task.CompletedTask;
        }, ct);
        rig = new AgentRig(redis, registry, bus, events, versions, app, config)
        {
            Dir = dir,
            Repo = repo,
            Port = port,
            Rpc = $"docker_compose_service_{app}",
            AppConfig = appConf,
            Store = new AppStore(root.Path + "/store"),
        };
        rig._rootHolder = root;
        await File.WriteAllTextAsync(rig.ComposeFile, rig.ComposeText("1.0"), ct);
        DockerEngine.DockerOk("pull", $"{repo}:1.0");
        Cmd.Ok(DockerEngine.Cli, "compose", "-p", app, "-f", rig.ComposeFile, "up", "-d");
        return rig;
    }

    private TempDir? _rootHolder;

    public string ComposeText(string tag) =>
        $"# written by hand; the agent keeps this comment\nservices:\n  web:\n    image: \"{Repo}:{tag}\"\n    ports:\n      - \"127.0.0.1:{Port}:8080\"\n";

    /// <summary>The tag after <paramref name="tag"/> in <see cref="Tags"/>.</summary>
    public static string Next(string tag) => Tags[(Array.IndexOf(Tags, tag) + 1) % Tags.Length];

    /// <summary>What the app answers when it runs <paramref name="tag"/>.</summary>
    public static string AnswerOf(string tag) => $"web {tag[..1]}.0";

    /// <summary>
    /// Starts the agent and waits until it has recovered and reported its version (it reports once at start, after
    /// recovery). With <paramref name="killAtRename"/> (0: log only) the rename shim is preloaded, logging to
    /// <paramref name="renameLog"/>. <paramref name="onEvent"/> is called on the subscriber's thread for every event.
    /// </summary>
    public async Task StartAgent(CancellationToken ct, int? killAtRename = null, string? renameLog = null, Action<FleetEvent>? onEvent = null)
    {
        Assert.True(_agent is null || _agent.HasExited, "the agent still runs");
        OnEvent = onEvent;
        var reports = Reports.Count;
        var psi = new ProcessStartInfo(TestSupport.Repo.Binary("fleet-agent")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(_config);
        psi.Environment["DOCKER_HOST"] = DockerEngine.Host;
        if (killAtRename is { } n)
        {
            psi.Environment["LD_PRELOAD"] = KillAtRename.Library;
            psi.Environment["KILL_AT_RENAME"] = n.ToString(CultureInfo.InvariantCulture);
            psi.Environment["RENAME_LOG"] = renameLog;
        }

        Log($"---- fleet-agent started{(killAtRename is { } k ? $" (rename shim, kill at {k})" : "")}");
        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Log(e.Data);
            }
        };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        _agent = p;
        await WaitFor(() => Reports.Count > reports || p.HasExited, "the agent's first version report", ct);
        if (p.HasExited)
        {
            Assert.Fail($"the agent exited at start ({p.ExitCode}):\n{AgentLog}");
        }
    }

    /// <summary>Called on the events subscriber's thread for every event the agent publishes.</summary>
    public Action<FleetEvent>? OnEvent { get; set; }

    public Process Agent => _agent ?? throw new InvalidOperationException("no agent started");

    private void Log(string line)
    {
        lock (_agentLog)
        {
            _agentLog.AppendLine(line);
        }
    }

    /// <summary>Sends a command without waiting for the answer (the agent may be killed before it answers).</summary>
    public Task<RpcResult> Send(DockerCommandRequest request, CancellationToken ct) =>
        new CommlibRpcClient(_bus).CallAsync(Rpc, request, TimeSpan.FromMinutes(4), ct);

    /// <summary>Sends update_version and returns the agent's answer.</summary>
    public async Task<DockerCommandResponse> UpdateAsync(string tag, CancellationToken ct)
    {
        var r = await Send(new DockerCommandRequest("update_version", Dir, tag), ct);
        Assert.True(r.Outcome == RpcOutcome.Replied, $"update_version {tag}: no answer ({r.Outcome}):\n{AgentLog}");
        return r.Response!;
    }

    /// <summary>SIGSTOPs the agent at once (from any thread): it makes no further step until it is killed.</summary>
    public void Freeze() => Signal(Agent.Id, SIGSTOP);

    /// <summary>
    /// SIGKILLs the agent and every process it started (the sub-module, docker compose, docker pull), as systemd
    /// does to the unit's control group when its main process dies; returns the command lines killed besides
    /// the agent. The tree is frozen first, so nothing escapes between listing and killing.
    /// </summary>
    public IReadOnlyList<string> KillAgentTree()
    {
        var root = Agent.Id;
        Signal(root, SIGSTOP);
        var tree = new List<int>();
        var found = new HashSet<int> { root };
        for (var round = 0; round < 5; round++)
        {
            var children = Descendants(found).Where(pid => !found.Contains(pid)).ToArray();
            if (children.Length == 0)
            {
                break;
            }

            foreach (var c in children)
            {
                Signal(c, SIGSTOP);
                found.Add(c);
                tree.Add(c);
            }
        }

        var lines = tree.Select(CommandLine).ToArray();
        Signal(root, SIGKILL);
        foreach (var c in tree)
        {
            Signal(c, SIGKILL);
        }

        Assert.True(Agent.WaitForExit(30_000), "the agent did not die of SIGKILL");
        Log($"---- fleet-agent SIGKILLed with {string.Join("; ", lines)}");
        return lines;
    }

    /// <summary>Stops the agent with SIGTERM (between commands) and waits for it to exit 0.</summary>
    public async Task StopAgent(CancellationToken ct)
    {
        Signal(Agent.Id, SIGTERM);
        await Agent.WaitForExitAsync(ct);
        Assert.True(Agent.ExitCode == 0, $"the agent exited {Agent.ExitCode} on SIGTERM:\n{AgentLog}");
    }

    /// <summary>Waits until the agent exits by itself (the rename shim killed it, or it stopped); returns its exit code.</summary>
    public async Task<int> WaitForAgentExit(CancellationToken ct)
    {
        await Agent.WaitForExitAsync(ct);
        return Agent.ExitCode;
    }

    /// <summary>Children of any of <paramref name="parents"/>, from /proc.</summary>
    private static IEnumerable<int> Descendants(HashSet<int> parents)
    {
        foreach (var d in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out var pid))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(d, "stat"));
            }
            catch (IOException)
            {
                continue;
            }

            // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (int.TryParse(fields[1], out var ppid) && parents.Contains(ppid))
            {
                yield return pid;
            }
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return $"pid {pid}";
        }
    }

    private const int SIGKILL = 9;
    private const int SIGSTOP = 19;
    private const int SIGTERM = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    private static void Signal(int pid, int sig) => SysKill(pid, sig);

    /// <summary>The store's journal events of the app (oldest first).</summary>
    public string[] JournalEvents() => Store.Journal(App).Select(j => j.Event).ToArray();

    /// <summary>The version name of the store's composition <paramref name="id"/>, or null.</summary>
    public string? VersionOf(string? id) => id is null ? null : Store.ReadComposition(App, id).ArtifactName;

    /// <summary>"image|container id|started at" of the app's running container, or null when none runs.</summary>
    public string[]? Container()
    {
        var ids = DockerEngine.DockerOk("ps", "-q", "--filter", $"label=com.docker.compose.project={App}").Trim();
        return ids.Length == 0 ? null : DockerEngine.DockerOk("inspect", "-f", "{{.Config.Image}}|{{.Id}}|{{.State.StartedAt}}", ids.Split('\n')[0]).Trim().Split('|');
    }

    /// <summary>What the app answers on its port (waits up to 30 s for an answer), or null.</summary>
    public async Task<string?> AnswerAsync(CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 60; i++)
        {
            try
            {
                return (await http.GetStringAsync(new Uri($"http://127.0.0.1:{Port}/"), ct)).Trim();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                await Task.Delay(500, ct);
            }
        }

        return null;
    }

    /// <summary>The running version and whether an install is pending, as `app status --json` (the real binary) reports them.</summary>
    public (string? Running, string? LastKnownGood, bool Pending) Status()
    {
        var r = Cmd.Run(TestSupport.Repo.Binary("app"), ["status", "--json", App], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = AppConfig });
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var a = doc.RootElement.GetProperty("applications")[0];
        string? V(string k) => a.GetProperty(k).ValueKind == JsonValueKind.Null ? null : a.GetProperty(k).GetProperty("version").GetString();
        return (V("running"), V("last_known_good"), a.GetProperty("pending").ValueKind != JsonValueKind.Null);
    }

    /// <summary>The restart or stop in progress as `app status --json` (the real binary) reports it: operation, version, and who asked (trigger, command id); null when none is.</summary>
    public (string Operation, string? Version, string? Trigger, string? CommandId)? InProgress()
    {
        var r = Cmd.Run(TestSupport.Repo.Binary("app"), ["status", "--json", App], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = AppConfig });
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var op = doc.RootElement.GetProperty("applications")[0].GetProperty("in_progress");
        if (op.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var by = op.GetProperty("requested_by");
        string? S(JsonElement e, string k) => e.ValueKind == JsonValueKind.Object && e.GetProperty(k).ValueKind == JsonValueKind.String ? e.GetProperty(k).GetString() : null;
        return (op.GetProperty("operation").GetString()!, S(op.GetProperty("version"), "version"), S(by, "trigger"), S(by, "command_id"));
    }

    /// <summary>`app status` (the real binary), as text.</summary>
    public string StatusText()
    {
        var r = Cmd.Run(TestSupport.Repo.Binary("app"), ["status", App], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = AppConfig });
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    /// <summary>
    /// The device is settled on <paramref name="tag"/>: the store has nothing pending or left to collect, runs its
    /// last-known-good, which is <paramref name="tag"/>, every composition it names exists with its manifests and
    /// images, no leftover of an interrupted write remains; `app status --json` says the same; the directory's
    /// compose file names the tag; the container runs that image and answers as that version.
    /// </summary>
    public async Task AssertSettledAsync(string tag, string context, CancellationToken ct)
    {
        var s = Store.Load(App);
        var why = $"{context}\njournal: {string.Join(' ', JournalEvents())}\nagent log:\n{AgentLog}";
        Assert.True(s.Pending is null, $"an install is still pending: {s.Pending}\n{why}");
        Assert.True(s.Running == s.Committed && s.Running is not null, $"the store runs {s.Running}, its last-known-good is {s.Committed}\n{why}");
        Assert.True(VersionOf(s.Committed) == tag, $"the store's last-known-good is {VersionOf(s.Committed)}, expected {tag}\n{why}");
        Assert.True(s.Garbage.Count == 0, $"versions left to collect: {string.Join(", ", s.Garbage)}\n{why}");
        Assert.Empty(Directory.EnumerateDirectories(Store.ApplicationDir(App), ".*"));
        foreach (var id in new[] { s.Committed, s.Previous }.OfType<string>())
        {
            Assert.True(Directory.Exists(Store.ManifestsOf(App, id)), $"composition {id} named by the state has no manifests\n{why}");
            foreach (var image in Store.ReadComposition(App, id).Images)
            {
                Assert.True(DockerEngine.ImageId($"sha256:{image.Id}") is not null, $"image {image.Url} ({image.Id}) of kept composition {id} is gone\n{why}");
            }
        }

        Assert.Equal((tag, tag, false), Status());
        Assert.Equal(ComposeText(tag), await File.ReadAllTextAsync(ComposeFile, ct));
        var container = Container();
        Assert.True(container?[0] == $"{Repo}:{tag}", $"the container runs {container?[0] ?? "nothing"}, expected {Repo}:{tag}\n{why}");
        Assert.Equal(AnswerOf(tag), await AnswerAsync(ct));
    }

    public static async Task WaitFor(Func<bool> done, string what, CancellationToken ct, int seconds = 240)
    {
        var watch = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(seconds), $"timed out after {seconds} s waiting for {what}");
            await Task.Delay(20, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_agent is { HasExited: false })
        {
            KillAgentTree();
        }

        _agent?.Dispose();
        Cmd.Run(DockerEngine.Cli, ["compose", "-p", App, "-f", ComposeFile, "down", "--remove-orphans"]);
        await _eventsSub.DisposeAsync();
        await _versionsSub.DisposeAsync();
        await _bus.DisposeAsync();
        _redis.Dispose();
        _registry.Dispose();
        _rootHolder?.Dispose();
    }
}
