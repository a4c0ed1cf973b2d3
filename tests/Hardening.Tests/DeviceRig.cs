using System.Net.Sockets;
using System.Text.Json;
using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// A device: the real Mender client 3.4 (isolated), our `app` as the Update Module for payload type
/// app, and our docker-compose sub-module on the shared engine, behind a fault-injecting wrapper
/// (<see cref="ArmFault"/>). Application v1 (appmodule/web:1.0 under a unique tag, on a unique
/// port) is installed and committed by <see cref="InstallV1"/>; v2 is the image the updates carry.
/// </summary>
public sealed class DeviceRig : IDisposable
{
    private readonly TempDir _root = new("hardening-device");
    private readonly List<string> _tags = [];
    private readonly PrivateDockerd? _engine;

    /// <param name="engine">an engine of the test's own for the application (the images are still saved from the shared one); null: the shared engine.</param>
    /// <param name="appConfig">lines added to mender-app.conf</param>
    public DeviceRig(int moduleTimeoutSeconds = 600, string subModuleConfig = "", PrivateDockerd? engine = null, string appConfig = "")
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        _engine = engine;
        if (engine is not null)
        {
            subModuleConfig += $"\ndocker_host = \"{engine.Host}\"\n";
        }

        Client = new MenderClient(moduleTimeoutSeconds: moduleTimeoutSeconds);
        Store = _root.Dir("store");
        SubModules = _root.Dir("submodules");
        Artifacts = _root.Dir("artifacts");
        FaultFile = _root.File("fault");
        FaultLog = _root.File("fault.log");
        App = Unique.Name("hard");
        Port = FreePort();
        Client.WriteEtc("mender-app.conf",
            $"persistent_store = \"{Store}\"\nsubmodules_dir = \"{SubModules}\"\nhealth_timeout_seconds = 60\nhealth_poll_seconds = 1\nsoak_seconds = 0\nsubmodule_timeout_seconds = 600\n{appConfig}\n");
        Client.WriteEtc("mender-app-docker-compose.conf",
            $"state_dir = \"{_root.Dir("compose-state")}\"\nsoak_seconds = 1\nrollout_timeout = 90\n{subModuleConfig}");
        RenameLog = _root.File("renames.log");
        Client.AddModule("app", WriteAppWrapper());
        WriteFaultWrapper(Path.Combine(SubModules, "docker-compose"), Repo.Binary("docker-compose"));
        V1 = SaveImage("1.0");
        V2 = SaveImage("2.0");
        V3 = SaveImage("3.0", "appmodule/web:2.0");
    }

    public MenderClient Client { get; }

    public string Store { get; }

    public string SubModules { get; }

    public string Artifacts { get; }

    public string FaultFile { get; }

    /// <summary>One line per fault that fired: "&lt;CALL&gt; &lt;mode&gt;".</summary>
    public string FaultLog { get; }

    public string App { get; }

    public int Port { get; }

    public CorpusImage V1 { get; }

    public CorpusImage V2 { get; }

    /// <summary>The v2 image under a third reference (answers "web 2.0"): no other composition uses it, so Cleanup DELETEs it.</summary>
    public CorpusImage V3 { get; }

    public CorpusBase Base => new(App, V2, V1, url => LibraryCorpusTests.Compose(url, Port));

    public string Compose(string url) => LibraryCorpusTests.Compose(url, Port);

    public string Artifact(ArtifactParts parts) => parts.Write(Path.Combine(Artifacts, parts.ArtifactName + ".mender"));

    public string ArtifactFor(string name, CorpusImage image) => Artifact(ArtifactParts.Valid(name, App, image, Compose(image.Url)));

    /// <summary>Installs and commits v1 ("v1"); asserts it serves.</summary>
    public void InstallV1()
    {
        var install = Client.Install(ArtifactFor("v1", V1));
        Assert.True(install.ExitCode == 0, "installing v1: " + install);
        var commit = Client.Commit();
        Assert.True(commit.ExitCode == 0, "committing v1: " + commit);
        Assert.Equal("web 1.0", Answer());
    }

    /// <summary>
    /// Arms a one-shot fault: the next sub-module call <paramref name="call"/> (REQS, LOAD, STOP,
    /// ROLLOUT, ROLLBACK, ALIVE, HEALTHY, DELETE, ...) does <paramref name="mode"/>:
    /// kill-app-before (SIGKILL to `app` before the sub-module runs), kill-app-after (after it
    /// succeeded), kill-self (the sub-module dies by SIGKILL before doing anything), kill-self-during
    /// (the sub-module is SIGKILLed 1 s into its work), hang (the sub-module sleeps 600 s),
    /// hook-during (1 s into the sub-module's work the test's <see cref="RunHooked"/> hook runs, while
    /// the sub-module goes on).
    /// </summary>
    public void ArmFault(string call, string mode) => File.WriteAllText(FaultFile, $"{call} {mode}\n");

    public void Disarm() => File.Delete(FaultFile);

    /// <summary>The PID of the sub-module that hangs (mode "hang"), once it started.</summary>
    public int? HangingPid => File.Exists(FaultFile + ".pid") ? int.Parse(File.ReadAllText(FaultFile + ".pid").Trim(), System.Globalization.CultureInfo.InvariantCulture) : null;

    /// <summary>One line per rename of the `app` process armed by <see cref="ArmRenameFault"/>: "N from -> to", "KILLED" on the last one when it fired.</summary>
    public string RenameLog { get; }

    /// <summary>
    /// Arms a one-shot store-write fault: the next `app` call for <paramref name="state"/> runs with
    /// tests/TestSupport/native/kill-at-rename.c preloaded, which logs every rename of that
    /// process to <see cref="RenameLog"/> (emptied here) and SIGKILLs it just before rename number
    /// <paramref name="killAt"/> (0: log only). Every store transition is a rename, so this is a
    /// power cut between two store writes.
    /// </summary>
    public void ArmRenameFault(string state, int killAt)
    {
        File.WriteAllText(RenameLog, "");
        File.WriteAllText(_root.File("app-fault"), $"{state} {killAt.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n");
    }

    public string[] Renames() => File.Exists(RenameLog) ? File.ReadAllLines(RenameLog) : [];

    private string WriteAppWrapper()
    {
        // The Update Module as the client sees it: the real `app` (exec'd, so it keeps its name and
        // PID), with the rename shim preloaded for one armed state call.
        var path = Path.Combine(_root.Dir("module"), "app");
        var script = $$"""
            #!/bin/bash
            fault='{{_root.File("app-fault")}}'
            if [ -f "$fault" ]; then
              read -r fstate fkill < "$fault" || true
              if [ "$fstate" = "$1" ]; then
                rm -f "$fault"
                export LD_PRELOAD='{{KillAtRename.Library}}' KILL_AT_RENAME="$fkill" RENAME_LOG='{{RenameLog}}'
              fi
            fi
            exec '{{Repo.Binary("app")}}' "$@"
            """;
        File.WriteAllText(path, script.Replace("\r", string.Empty, StringComparison.Ordinal) + "\n");
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return path;
    }

    /// <summary>
    /// Runs <paramref name="run"/> (e.g. an install through the client); when an armed hook-during
    /// fault fires, <paramref name="hook"/> runs in this process while the sub-module waits for it.
    /// </summary>
    public T RunHooked<T>(Action hook, Func<T> run)
    {
        var request = FaultFile + ".hook";
        var done = FaultFile + ".hooked";
        using var stop = new CancellationTokenSource();
        Exception? failed = null;
        var watcher = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (File.Exists(request))
                {
                    try
                    {
                        hook();
                    }
                    catch (Exception e)
                    {
                        failed = e;
                    }

                    File.Delete(request);
                    File.WriteAllText(done, "");
                    return;
                }

                Thread.Sleep(100);
            }
        });
        watcher.Start();
        T result;
        try
        {
            result = run();
        }
        finally
        {
            stop.Cancel();
            watcher.Join();
        }

        return failed is null ? result : throw new InvalidOperationException("the fault hook failed", failed);
    }

    public string[] FaultsFired() => File.Exists(FaultLog) ? File.ReadAllLines(FaultLog) : [];

    private void WriteFaultWrapper(string path, string real)
    {
        // A sub-module in front of the real one: reads the armed fault, fires it once, logs it.
        var script = $$"""
            #!/bin/bash
            real='{{real}}'
            fault='{{FaultFile}}'
            log='{{FaultLog}}'
            call="$1"
            mode=""
            if [ -f "$fault" ]; then
              read -r fcall fmode < "$fault" || true
              if [ "$fcall" = "$call" ]; then mode="$fmode"; rm -f "$fault"; echo "$call $mode" >> "$log"; fi
            fi
            app_pid() {
              local pid=$PPID
              while [ "$pid" -gt 1 ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" != "app" ]; do
                pid=$(awk '{print $4}' /proc/$pid/stat)
              done
              echo "$pid"
            }
            case "$mode" in
              kill-app-before) kill -KILL "$(app_pid)"; exit 137 ;;
              kill-app-after) "$real" "$@"; rc=$?; kill -KILL "$(app_pid)"; exit $rc ;;
              kill-self) kill -KILL $$ ;;
              kill-self-during) "$real" "$@" & child=$!; sleep 1; kill -KILL $child; kill -KILL $$ ;;
              hang) echo $$ > "$fault.pid"; exec sleep 600 ;;
              hook-during) "$real" "$@" & child=$!; sleep 1; touch "$fault.hook"
                while [ ! -f "$fault.hooked" ]; do sleep 0.1; done; rm -f "$fault.hooked"
                wait $child; exit $? ;;
            esac
            exec "$real" "$@"
            """;
        File.WriteAllText(path, script.Replace("\r", string.Empty, StringComparison.Ordinal) + "\n");
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
    }

    private CorpusImage SaveImage(string variant, string? source = null)
    {
        var tag = $"{App}/web:{variant}";
        var image = AppArtifacts.SaveDockerImage(source ?? $"appmodule/web:{variant}", tag, Artifacts);
        DockerEngine.DockerOk("image", "rm", tag);
        _tags.Add(tag);
        return new CorpusImage(image.UrlNew, image.Id, image.SavedPath);
    }

    public static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>What the application answers (waits up to <paramref name="seconds"/>), or null.</summary>
    public string? Answer(int seconds = 30)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < seconds * 2; i++)
        {
            try
            {
                return http.GetStringAsync(new Uri($"http://127.0.0.1:{Port}/")).GetAwaiter().GetResult().Trim();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                Thread.Sleep(500);
            }
        }

        return null;
    }

    /// <summary>What the application answers when it runs <paramref name="image"/>.</summary>
    public string AnswerOf(CorpusImage image) => image.Url == V1.Url ? "web 1.0" : "web 2.0";

    /// <summary>
    /// After a fault during an update from <paramref name="old"/> to <paramref name="attempted"/>: the
    /// client's record decides which version must run (the attempted one when it shows it, or when it
    /// shows _INCONSISTENT and the store runs it); that version answers, the store is settled on it,
    /// and the next update (to the other image, named <paramref name="followName"/>) installs and
    /// commits. Returns the committed version afterwards.
    /// </summary>
    public (string Name, CorpusImage Image) AssertRecoveredAndUpdatable(string fault, (string Name, CorpusImage Image) old, (string Name, CorpusImage Image) attempted, CmdResult faulted, string followName)
    {
        var shown = Client.ShowArtifact();
        var running = State().Running;
        var expectNew = shown == attempted.Name || (shown.EndsWith("_INCONSISTENT", StringComparison.Ordinal) && running is not null && RunningArtifact() == attempted.Name);
        var expected = expectNew ? attempted : old;
        Assert.True(Answer() == AnswerOf(expected.Image), $"after {fault}: the client shows {shown}, expected {AnswerOf(expected.Image)}, got {Answer(5) ?? "no answer"}\n{faulted}\n{Status().Stdout}");
        AssertSettled(expected.Name);

        var followImage = expected.Image.Url == V1.Url ? V2 : V1;
        var again = Client.Install(ArtifactFor(followName, followImage));
        Assert.True(again.ExitCode == 0, $"the next update after {fault}: {again}");
        var commit = Client.Commit();
        Assert.True(commit.ExitCode == 0, $"committing the next update after {fault}: {commit}");
        Assert.Equal(AnswerOf(followImage), Answer());
        var settled = AssertSettled(followName);
        Assert.True(settled.Garbage.Count == 0, $"after {fault} and the next update's Cleanup, versions are still left to collect: {string.Join(", ", settled.Garbage)}\n{Status().Stdout}");
        return (followName, followImage);
    }

    private string? RunningArtifact()
    {
        var line = Status().Stdout.Split('\n').FirstOrDefault(l => l.TrimStart().StartsWith("running:", StringComparison.Ordinal));
        return line?.Split(':', 2)[1].Trim().Split(' ')[0];
    }

    /// <summary>
    /// After a hostile artifact <paramref name="name"/> was refused: v1 serves from the same container
    /// (<paramref name="container"/>, so it was refused before v1 was stopped), the store is settled on v1 with the
    /// same committed version as <paramref name="before"/>, and nothing was written where the corpus aims outside.
    /// </summary>
    public void AssertV1Untouched(string name, StoreState before, string container, CmdResult attempt)
    {
        Assert.Equal("web 1.0", Answer());
        Assert.True(container == WebContainer(), $"{name}: v1's container was replaced (the artifact was refused only after v1 was stopped): {attempt}");
        var after = AssertSettled("v1");
        Assert.Equal(before.Committed, after.Committed);
        foreach (var escaped in new[] { "/tmp/evil", "/tmp/evil.yml", "/etc/cron.d/evil" })
        {
            Assert.False(File.Exists(escaped), $"{escaped} exists: something escaped");
        }
    }

    /// <summary>`app simulate` of <paramref name="artifact"/> through the real binary, on this device's store and sub-modules.</summary>
    public CmdResult Simulate(string artifact) =>
        Cmd.Run(Repo.Binary("app"), ["simulate", artifact], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = Path.Combine(Client.EtcDir, "mender-app.conf") }, timeout: TimeSpan.FromMinutes(10));

    /// <summary>
    /// After a case `app simulate` let through (or that replaced v1): v1 installed and committed again in the store by
    /// `app simulate` (the client's record is untouched by simulate), so the next case starts from the same device.
    /// </summary>
    public void PutV1BackBySimulate()
    {
        var r = Simulate(ArtifactFor("v1", V1));
        Assert.True(r.ExitCode == 0, "putting v1 back: " + r);
        Assert.Equal("web 1.0", Answer());
    }

    /// <summary>`app status` through the real binary (the store as a user sees it).</summary>
    public CmdResult Status() =>
        Cmd.Run(Repo.Binary("app"), ["status", App], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = Path.Combine(Client.EtcDir, "mender-app.conf") });

    /// <summary>`app plan --json` through the real binary with the device's configs (what an install of <paramref name="artifact"/> would need and do).</summary>
    public CmdResult Plan(string artifact) =>
        Cmd.Run(Repo.Binary("app"), ["plan", artifact, "--json"], new Dictionary<string, string?>
        {
            ["MENDER_APP_CONFIG"] = Path.Combine(Client.EtcDir, "mender-app.conf"),
            ["MENDER_APP_DOCKER_COMPOSE_CONF"] = Path.Combine(Client.EtcDir, "mender-app-docker-compose.conf"),
        }, timeout: TimeSpan.FromMinutes(5));

    /// <summary>The application's state.json as key → value (strings; null for JSON null).</summary>
    public StoreState State()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Store, App, "state.json")));
        var r = doc.RootElement;
        string? S(string k) => r.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var pending = r.TryGetProperty("pending", out var p) && p.ValueKind == JsonValueKind.Object ? p.GetProperty("composition").GetString() : null;
        var garbage = r.TryGetProperty("garbage", out var g) && g.ValueKind == JsonValueKind.Array ? g.EnumerateArray().Select(x => x.GetString()!).ToArray() : [];
        return new StoreState(S("committed"), S("previous"), S("running"), pending, garbage);
    }

    /// <summary>
    /// The store is consistent and settled: nothing pending, what runs is the last-known-good, every
    /// composition the state names exists with its manifests, no leftovers of interrupted writes,
    /// `app status` reads it, and every image a kept composition needs is in the engine.
    /// </summary>
    public StoreState AssertSettled(string expectRunningArtifact)
    {
        var s = State();
        Assert.Null(s.Pending);
        Assert.Equal(s.Committed, s.Running);
        var dir = Path.Combine(Store, App);
        Assert.Empty(Directory.EnumerateDirectories(dir, ".*"));
        foreach (var id in new[] { s.Committed, s.Previous, s.Running }.Where(i => i is not null))
        {
            Assert.True(Directory.Exists(Path.Combine(dir, id!, "manifests")), $"composition {id} named by the state is missing");
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, id!, "composition.json")));
            foreach (var image in doc.RootElement.GetProperty("images").EnumerateArray())
            {
                var url = image.GetProperty("url").GetString()!;
                Assert.True(ImageId(url) is not null, $"image {url} of kept composition {id} was deleted");
            }
        }

        var status = Status();
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains($"running:        {expectRunningArtifact} (", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("pending:        -", status.Stdout, StringComparison.Ordinal);
        return s;
    }

    /// <summary>The ID of the container that runs service web, or "" when none runs.</summary>
    public string WebContainer() =>
        Docker("ps", "-q", "--filter", $"label=com.docker.compose.project={App}", "--filter", "label=com.docker.compose.service=web").Stdout.Trim();

    /// <summary>The docker CLI against the application's engine.</summary>
    public CmdResult Docker(params string[] args) => _engine is null ? DockerEngine.Docker(args) : _engine.Docker(args);

    /// <summary>The image ID of a reference in the application's engine, or null.</summary>
    public string? ImageId(string reference) => _engine is null ? DockerEngine.ImageId(reference) : _engine.ImageId(reference);

    public void Dispose()
    {
        var ids = Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={App}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (ids.Length > 0)
        {
            Docker(["rm", "-f", .. ids]);
        }

        foreach (var n in Docker("network", "ls", "-q", "--filter", $"label=com.docker.compose.project={App}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Docker("network", "rm", n);
        }

        foreach (var t in _tags)
        {
            Docker("image", "rm", t);
        }

        Client.Dispose();
        _root.Dispose();
    }
}

public sealed record StoreState(string? Committed, string? Previous, string? Running, string? Pending, IReadOnlyList<string> Garbage);
