using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// The attack corpus through the real Mender client 3.4, `app` and the docker-compose sub-module
/// (with its default configuration: no host access allowed): with application v1 installed, committed and
/// serving, every hostile artifact fails with its clear message before v1 is stopped (its container
/// is the same one afterwards), v1 keeps serving, the client still
/// reports v1, and the store is settled and consistent (`app status`).
/// </summary>
public sealed class ClientCorpusTests : IClassFixture<ClientCorpusTests.Device>
{
    private readonly Device _device;

    public ClientCorpusTests(Device device) => _device = device;

    public sealed class Device : IDisposable
    {
        private readonly Lazy<DeviceRig> _rig = new(() =>
        {
            var rig = new DeviceRig();
            rig.InstallV1();
            return rig;
        });

        public DeviceRig Rig => _rig.Value;

        public void Dispose()
        {
            if (_rig.IsValueCreated)
            {
                _rig.Value.Dispose();
            }
        }
    }

    public static TheoryData<string> Cases() => LibraryCorpusTests.Cases();

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Each_hostile_artifact_fails_with_its_message_and_v1_keeps_serving(string name)
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        var c = HostileArtifacts.All.Single(x => x.Name == name);
        var rig = _device.Rig;
        var before = rig.State();
        var container = rig.WebContainer();

        var install = rig.Client.Install(rig.Artifact(c.Build(rig.Base)));
        try
        {
            AssertRefused(c, rig, install, before, container);
        }
        finally
        {
            // A case that got through leaves another version installed: put v1 back so the next case is judged on its own.
            if (install.ExitCode == 0)
            {
                rig.Client.Commit();
            }

            if (rig.Client.ShowArtifact() != "v1")
            {
                rig.InstallV1();
            }
        }
    }

    private static void AssertRefused(CorpusCase c, DeviceRig rig, CmdResult install, StoreState before, string container)
    {
        Assert.True(install.ExitCode != 0, $"{c.Name} was installed: {install}");
        // The client logs the module's stderr as logfmt: quotes and backslashes come escaped.
        var output = (install.Stdout + install.Stderr).Replace("\\\\", "\u0001", StringComparison.Ordinal)
            .Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\u0001", "\\", StringComparison.Ordinal);
        var expected = c.ClientFragment ?? c.DeviceFragment ?? c.FragmentFor(rig.Base);
        if (Environment.GetEnvironmentVariable("HARDENING_DUMP") is { Length: > 0 } dump)
        {
            Directory.CreateDirectory(dump);
            File.WriteAllLines(Path.Combine(dump, c.Name), output.Split('\n').Where(l => l.Contains("level=error", StringComparison.Ordinal) || l.Contains("app: error", StringComparison.Ordinal)));
        }

        Assert.True(output.Contains(expected, StringComparison.Ordinal), $"{c.Name} (rejected by {c.RejectedBy}): expected \"{expected}\" in the client's output: {install}");
        MessageScanner.AssertClean(c.Name, output);
        if (c.ClientFragment is not null)
        {
            Assert.DoesNotContain("ArtifactInstall", output, StringComparison.Ordinal); // the client refused it before the module saw it
        }
        else
        {
            Assert.Contains("app: error: ", output, StringComparison.Ordinal); // our module (or its sub-module) refused it
        }
        Assert.Equal("v1", rig.Client.ShowArtifact());
        rig.AssertV1Untouched(c.Name, before, container, install);
    }
}
