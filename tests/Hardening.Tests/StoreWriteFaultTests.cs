using Hardening.Tests.Corpus;
using Xunit.Abstractions;

namespace Hardening.Tests;

/// <summary>
/// Power cuts between store writes, through the real Mender client 3.4: every store transition of
/// `app` is a rename (write-then-rename files, renamed composition directories), so a shim preloaded
/// into one `app` call (tests/TestSupport/native/kill-at-rename.c) SIGKILLs it just before its Nth rename, for every N
/// the call makes. A first run of the same call with the shim only logging counts the renames.
/// After each kill the client goes on as it does after a failed state, and the same assertions as
/// the sub-module matrix hold: the version the client records runs and answers, the store is settled
/// and consistent, and the next update installs and commits. Part of `make test-faults`.
/// </summary>
[Trait("Category", "Faults")]
public sealed class StoreWriteFaultTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("ArtifactInstall")]
    [InlineData("ArtifactCommit")]
    [InlineData("ArtifactRollback")]
    [InlineData("Cleanup")]
    public void A_SIGKILL_before_each_store_rename_of_a_state_leaves_a_device_that_answers_and_updates(string state)
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the store-write faults run in `make test-faults` (HARDENING_FAULTS=1)");
        using var rig = new DeviceRig();
        rig.InstallV1();
        var current = ("v1", rig.V1);
        var serial = 0;
        string Next(string what) => $"s{++serial:D2}-{what}";

        // The census: the same call, logging its renames without killing.
        current = Cell(rig, state, 0, current, Next("census"), Next("next"));
        var renames = rig.Renames();
        output.WriteLine($"{state} renames:\n{string.Join('\n', renames)}");
        Assert.True(renames.Length > 0, $"{state} made no rename: the shim is not preloaded into `app`, or the state writes nothing");

        for (var n = 1; n <= renames.Length; n++)
        {
            current = Cell(rig, state, n, current, Next($"kill{n}"), Next("next"));
            var log = rig.Renames();
            Assert.True(log.Length == n && log[^1].EndsWith(" KILLED", StringComparison.Ordinal),
                $"{state} was to be killed before rename {n} ({renames[n - 1]}), but made these renames:\n{string.Join('\n', log)}");
            output.WriteLine($"killed before rename {n}: {log[^1]}: recovered");
        }
    }

    /// <summary>One update with the fault armed for <paramref name="state"/>, then the recovery checks; returns the committed version.</summary>
    private static (string, CorpusImage) Cell(DeviceRig rig, string state, int killAt, (string Name, CorpusImage Image) old, string name, string followName)
    {
        var next = old.Image.Url == rig.V1.Url ? rig.V2 : rig.V1;
        CmdResult faulted;
        if (state == "ArtifactInstall")
        {
            rig.ArmRenameFault(state, killAt);
            faulted = rig.Client.Install(rig.ArtifactFor(name, next));
            if (faulted.ExitCode == 0)
            {
                // The install survived (the census, or a kill the client did not notice): the client would commit next.
                faulted = rig.Client.Commit();
            }
        }
        else
        {
            var install = rig.Client.Install(rig.ArtifactFor(name, next));
            Assert.True(install.ExitCode == 0, $"installing {name}: {install}");
            rig.ArmRenameFault(state, killAt);
            faulted = state == "ArtifactRollback" ? rig.Client.Rollback() : rig.Client.Commit();
        }

        return rig.AssertRecoveredAndUpdatable($"a SIGKILL before rename {killAt} of {state}", old, (name, next), faulted, followName);
    }
}
