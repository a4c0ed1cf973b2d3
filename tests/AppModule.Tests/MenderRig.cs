namespace AppModule.Tests;

/// <summary>
/// The real Mender client 3.4 (isolated in a mount namespace) with our `app` installed as the Update
/// Module for payload type "app", configured through /etc/mender/mender-app.conf (the client's
/// <see cref="MenderClient.EtcDir"/>) with a per-test store and sub-module directory. No soak unless a test asks
/// for one (<c>soakSeconds</c>; null: the device default).
/// </summary>
public sealed class MenderRig : IDisposable
{
    private readonly TempDir _root = new("app-mender");

    public MenderRig(string extraConfig = "", int healthTimeoutSeconds = 5, int? soakSeconds = 0)
    {
        MenderClient.Require();
        Client = new MenderClient();
        Store = _root.Dir("store");
        SubModules = _root.Dir("submodules");
        FakeDir = _root.Dir("fake");
        Artifacts = _root.Dir("artifacts");
        Config = Client.WriteEtc("mender-app.conf",
            $"persistent_store = \"{Store}\"\nsubmodules_dir = \"{SubModules}\"\nhealth_timeout_seconds = {healthTimeoutSeconds}\nhealth_poll_seconds = 1\n{(soakSeconds is { } soak ? $"soak_seconds = {soak}\n" : string.Empty)}{extraConfig}");
        Client.AddModule("app", Repo.Binary("app"));
        Client.Environment["FAKE_SUBMODULE_DIR"] = FakeDir;
        var fake = Path.Combine(SubModules, "fake");
        File.WriteAllText(fake, $"#!/bin/sh\nexec '{ModuleRig.FakeSubModuleExe}' \"$@\"\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
    }

    public MenderClient Client { get; }

    public string Store { get; }

    public string SubModules { get; }

    public string FakeDir { get; }

    public string Artifacts { get; }

    public string Config { get; }

    /// <summary>Installs an executable as sub-module <paramref name="name"/>.</summary>
    public void InstallSubModule(string name, string executable)
    {
        var path = Path.Combine(SubModules, name);
        File.Delete(path);
        File.CreateSymbolicLink(path, executable);
    }

    public string Artifact(AppArtifactSpec spec) => AppArtifacts.WriteMender(spec, Artifacts);

    public CmdResult Install(AppArtifactSpec spec) => Client.Install(Artifact(spec));

    public string Status(string app) =>
        Cmd.Run(Repo.Binary("app"), ["status", app], new Dictionary<string, string?> { ["MENDER_APP_CONFIG"] = Config }).Stdout;

    public string? Running(string app)
    {
        var p = Path.Combine(FakeDir, "running", app);
        return File.Exists(p) ? File.ReadAllText(p) : null;
    }

    public string[] Calls() => File.Exists(Path.Combine(FakeDir, "calls.log")) ? File.ReadAllLines(Path.Combine(FakeDir, "calls.log")) : [];

    public void Dispose()
    {
        Client.Dispose();
        _root.Dispose();
    }
}
