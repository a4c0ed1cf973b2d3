using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// Fault injection through the real Mender client 3.4: a wrapper in front of the docker-compose
/// sub-module SIGKILLs the `app` process (before or after the sub-module's work) or the sub-module
/// itself, at each sub-module call of ArtifactInstall (REQS, LOAD, STOP, ROLLOUT, HEALTHY),
/// ArtifactCommit (HEALTHY), ArtifactRollback (ROLLBACK) and Cleanup (DELETE). The client then does
/// what it does after a failed state (ArtifactRollback, ArtifactFailure, Cleanup); afterwards the
/// application runs at the old or the new version and answers, the store is settled and consistent,
/// no image a kept composition needs is gone, and the next update installs and commits.
/// The matrix is slow (a few real updates per cell), so it runs in `make test-faults` (CI runs it),
/// enabled by HARDENING_FAULTS=1.
/// </summary>
[Trait("Category", "Faults")]
public sealed class FaultInjectionTests : IClassFixture<FaultInjectionTests.Device>
{
    private readonly Device _device;

    public FaultInjectionTests(Device device) => _device = device;

    /// <summary>One device for the whole matrix; it alternates between v1 and v2 as the committed version.</summary>
    public sealed class Device : IDisposable
    {
        private readonly Lazy<DeviceRig> _rig = new(() =>
        {
            var rig = new DeviceRig();
            rig.InstallV1();
            return rig;
        });

        private int _serial;

        public DeviceRig Rig => _rig.Value;

        /// <summary>The committed artifact name and its image.</summary>
        public (string Name, CorpusImage Image) Current { get; set; } = ("v1", default!);

        public string NextName(string cell) => $"f{Interlocked.Increment(ref _serial):D2}-{cell}";

        public void Dispose()
        {
            if (_rig.IsValueCreated)
            {
                _rig.Value.Dispose();
            }
        }
    }

    public static TheoryData<string, string, string> Cells() => new()
    {
        { "install", "REQS", "kill-app-before" },
        { "install", "LOAD", "kill-app-before" },
        { "install", "LOAD", "kill-app-after" },
        { "install", "LOAD", "kill-self-during" },
        { "install", "STOP", "kill-app-before" },
        { "install", "STOP", "kill-app-after" },
        { "install", "ROLLOUT", "kill-app-before" },
        { "install", "ROLLOUT", "kill-app-after" },
        { "install", "ROLLOUT", "kill-self-during" },
        { "install", "HEALTHY", "kill-app-before" },
        { "commit", "HEALTHY", "kill-app-before" },
        { "commit", "HEALTHY", "kill-app-after" },
        { "rollback", "ROLLBACK", "kill-app-before" },
        { "rollback", "ROLLBACK", "kill-app-after" },
        { "rollback", "ROLLBACK", "kill-self-during" },
        { "cleanup", "DELETE", "kill-app-before" },
        { "cleanup", "DELETE", "kill-self" },
    };

    private static void RequireEnabled()
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the fault-injection matrix runs in `make test-faults` (HARDENING_FAULTS=1)");
        MenderClient.Require();
        DockerEngine.RequireImages();
    }

    [SkippableTheory]
    [MemberData(nameof(Cells))]
    public void After_a_SIGKILL_at_each_step_the_app_answers_at_the_old_or_new_version_and_the_next_update_works(string state, string call, string mode)
    {
        RequireEnabled();
        var rig = _device.Rig;
        if (_device.Current.Image is null)
        {
            _device.Current = ("v1", rig.V1);
        }

        var old = _device.Current;
        // Cleanup only DELETEs images no kept composition uses: the cleanup cells install the third reference.
        var next = state == "cleanup" ? rig.V3 : old.Image.Url == rig.V1.Url ? rig.V2 : rig.V1;
        var name = _device.NextName($"{state}-{call}-{mode}".ToLowerInvariant());
        CmdResult faulted;
        rig.Disarm();
        if (state == "install")
        {
            rig.ArmFault(call, mode);
            faulted = rig.Client.Install(rig.ArtifactFor(name, next));
        }
        else
        {
            var install = rig.Client.Install(rig.ArtifactFor(name, next));
            Assert.True(install.ExitCode == 0, $"installing {name}: {install}");
            Assert.Equal(rig.AnswerOf(next), rig.Answer());
            rig.ArmFault(call, mode);
            faulted = state == "commit" ? rig.Client.Commit() : rig.Client.Rollback();
        }

        rig.Disarm();
        Assert.True(rig.FaultsFired().LastOrDefault() == $"{call} {mode}", $"the fault {call} {mode} did not fire: {string.Join(", ", rig.FaultsFired())}\n{faulted}");

        _device.Current = rig.AssertRecoveredAndUpdatable($"{state} {call} {mode}", old, (name, next), faulted, _device.NextName("next"));
    }
}
