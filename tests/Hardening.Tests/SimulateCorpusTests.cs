using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// The attack corpus through `app simulate`, as a person testing an update by hand drives it: with v1
/// installed and committed (through the real client) and serving, every hostile artifact is refused on
/// stderr with its message as one sentence (no resource key, no stack trace), `app simulate` exits non-zero,
/// v1's container is the same one afterwards and serves, and `app status` still names v1 with nothing pending.
/// Here `app` reads the `.mender` itself, so the cases the Mender client's reader refuses first must be refused
/// by ours, with the library's message. A case that gets through is reported and v1 is put back, so the cases
/// after it are judged on their own.
/// </summary>
public sealed class SimulateCorpusTests : IClassFixture<ClientCorpusTests.Device>
{
    private readonly ClientCorpusTests.Device _device;

    public SimulateCorpusTests(ClientCorpusTests.Device device) => _device = device;

    public static TheoryData<string> Cases() => LibraryCorpusTests.Cases();

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Each_hostile_artifact_is_refused_by_app_simulate_on_stderr_and_v1_keeps_serving(string name)
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        var c = HostileArtifacts.All.Single(x => x.Name == name);
        var rig = _device.Rig;
        var before = rig.State();
        var container = rig.WebContainer();
        var artifact = rig.Artifact(c.Build(rig.Base));

        var r = rig.Simulate(artifact);
        try
        {
            Assert.True(r.ExitCode != 0, $"{c.Name} was accepted by app simulate: {r}");
            var expected = c.FragmentFor(rig.Base); // app reads the artifact as it was written: the library's message, not what the client made of it
            Assert.True(r.Stderr.Contains(expected, StringComparison.Ordinal), $"{c.Name} (rejected by {c.RejectedBy}): expected \"{expected}\" on stderr: {r}");
            Assert.Contains("app: error: ", r.Stderr, StringComparison.Ordinal);
            MessageScanner.AssertClean(c.Name, r.Stdout + r.Stderr);
            rig.AssertV1Untouched(c.Name, before, container, r);
        }
        finally
        {
            if (r.ExitCode == 0 || rig.WebContainer() != container)
            {
                rig.PutV1BackBySimulate();
            }
        }
    }
}
