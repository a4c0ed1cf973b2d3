namespace AppModule.Tests;

/// <summary>
/// The `app` executable called the way the Mender client calls it (<c>app &lt;State&gt; &lt;tree&gt;</c>),
/// with its own store, config and sub-module directory, and the scriptable fake sub-module installed
/// as orchestrator "fake" (its engine lives in <see cref="FakeDir"/>).
/// </summary>
public sealed class ModuleRig : IDisposable
{
    private readonly TempDir _root = new("app-rig");

    public ModuleRig(string extraConfig = "")
    {
        Store = _root.Dir("store");
        SubModules = _root.Dir("submodules");
        FakeDir = _root.Dir("fake");
        Images = _root.Dir("images");
        Config = _root.Write("mender-app.conf",
            $"persistent_store = \"{Store}\"\nsubmodules_dir = \"{SubModules}\"\nhealth_timeout_seconds = 3\nhealth_poll_seconds = 1\n{(extraConfig.Contains("soak_seconds", StringComparison.Ordinal) ? string.Empty : "soak_seconds = 0\n")}{extraConfig}");
        InstallSubModule("fake", FakeSubModuleExe);
    }

    public string Store { get; }

    public string SubModules { get; }

    public string FakeDir { get; }

    public string Images { get; }

    public string Config { get; }

    public string Root => _root.Path;

    /// <summary>The JIT-built fake sub-module (built with the tests through a project reference).</summary>
    public static string FakeSubModuleExe
    {
        get
        {
            var candidates = new[] { "Debug", "Release" }
                .Select(c => Path.Combine(Repo.Root, "tests", "Fakes", "FakeSubModule", "bin", c, "net10.0", "fake-submodule"))
                .Where(File.Exists)
                .OrderByDescending(File.GetLastWriteTimeUtc)
                .ToArray();
            return candidates.Length > 0 ? candidates[0] : throw new InvalidOperationException("fake-submodule is not built: dotnet build tests/Fakes/FakeSubModule");
        }
    }

    /// <summary>Installs an executable as sub-module <paramref name="name"/> (a wrapper script, so the real path stays where it is).</summary>
    public void InstallSubModule(string name, string executable)
    {
        var path = Path.Combine(SubModules, name);
        File.WriteAllText(path, $"#!/bin/sh\nexec '{executable}' \"$@\"\n");
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
    }

    public Dictionary<string, string?> Environment => new()
    {
        ["MENDER_APP_CONFIG"] = Config,
        ["FAKE_SUBMODULE_DIR"] = FakeDir,
    };

    public static string App => Repo.Binary("app");

    public CmdResult Run(string state, string? tree = null) =>
        Cmd.Run(App, tree is null ? [state] : [state, tree], Environment, timeout: TimeSpan.FromMinutes(3));

    /// <summary>One state with the rename shim preloaded (<see cref="KillAtRename"/>): killed just before rename <paramref name="killAt"/> (0: log only), every rename logged to <paramref name="log"/>.</summary>
    public CmdResult RunKilledAtRename(string state, string tree, int killAt, string log)
    {
        File.WriteAllText(log, "");
        var env = Environment;
        foreach (var (k, v) in KillAtRename.Environment(killAt, log))
        {
            env[k] = v;
        }

        return Cmd.Run(App, [state, tree], env, timeout: TimeSpan.FromMinutes(3));
    }

    public CmdResult RunArgs(params string[] args) => Cmd.Run(App, args, Environment, timeout: TimeSpan.FromMinutes(3));

    /// <summary>A synthetic image for the fake engine.</summary>
    public AppImage Image(string reference, string payload = "", string platform = "linux/amd64")
    {
        var (path, id) = AppArtifacts.SyntheticImage(Images, reference, payload, platform);
        return new AppImage(reference, path, id);
    }

    public AppArtifactSpec Spec(string artifact, string application, string manifest, params AppImage[] images) =>
        new(artifact, application, images, new Dictionary<string, string> { ["docker-compose.yml"] = manifest }, Orchestrator: "fake");

    /// <summary>Writes a fresh File API tree (as a new `mender install` would) and returns its path.</summary>
    public string Tree(AppArtifactSpec spec)
    {
        var dir = Path.Combine(_root.Path, "trees", Unique.Name("t"));
        return AppArtifacts.WriteTree(spec, dir);
    }

    /// <summary>The client 3.4's install: Download, SupportsRollback, ArtifactInstall, NeedsArtifactReboot. Returns the first failing result, or the install's.</summary>
    public CmdResult Install(string tree)
    {
        foreach (var s in new[] { "Download", "SupportsRollback" })
        {
            var r0 = Run(s, tree);
            Assert.True(r0.ExitCode == 0, r0.ToString());
        }

        var r = Run("ArtifactInstall", tree);
        if (r.ExitCode == 0)
        {
            Assert.Equal("No\n", Run("NeedsArtifactReboot", tree).Stdout);
        }

        return r;
    }

    /// <summary>What the client 3.4 does after a failed install or a `mender rollback`: SupportsRollback, ArtifactRollback (, ArtifactFailure), Cleanup.</summary>
    public CmdResult Rollback(string tree, bool failure = false)
    {
        Assert.Equal("Yes\n", Run("SupportsRollback", tree).Stdout);
        var r = Run("ArtifactRollback", tree);
        if (failure)
        {
            Run("ArtifactFailure", tree);
        }

        var c = Run("Cleanup", tree);
        Assert.True(c.ExitCode == 0, c.ToString());
        return r;
    }

    public CmdResult Commit(string tree)
    {
        var r = Run("ArtifactCommit", tree);
        if (r.ExitCode == 0)
        {
            var c = Run("Cleanup", tree);
            Assert.True(c.ExitCode == 0, c.ToString());
        }

        return r;
    }

    public string[] Calls() => File.Exists(Path.Combine(FakeDir, "calls.log")) ? File.ReadAllLines(Path.Combine(FakeDir, "calls.log")) : [];

    /// <summary>The calls, without the "| platform=..." suffix.</summary>
    public string[] CallNames() => Calls().Select(c => c.Split(" | ")[0]).ToArray();

    public void ClearCalls() => File.Delete(Path.Combine(FakeDir, "calls.log"));

    /// <summary>The manifests the fake engine runs for <paramref name="app"/>, or null.</summary>
    public string? Running(string app)
    {
        var p = Path.Combine(FakeDir, "running", app);
        return File.Exists(p) ? File.ReadAllText(p) : null;
    }

    public bool HasImage(string url) => File.Exists(Path.Combine(FakeDir, "images", Uri.EscapeDataString(url)));

    public void FailCall(string call, string message) => File.WriteAllText(Path.Combine(FakeDir, "fail-" + call), message);

    public void Dispose() => _root.Dispose();
}
