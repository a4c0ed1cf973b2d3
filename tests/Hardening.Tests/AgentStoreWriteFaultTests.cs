using Fleet.Core.Wire;
using Xunit.Abstractions;

namespace Hardening.Tests;

/// <summary>
/// Power cuts between the fleet agent's store writes: every store transition of an update (the composition's
/// directory, state.json, the directory's compose file written back) is a rename, so the rename shim preloaded
/// into the published agent (tests/TestSupport/native/kill-at-rename.c) SIGKILLs it just before its Nth rename, for every N an
/// update makes. A first run with the shim only logging counts them. After each kill the agent starts again
/// (without the shim) and recovers; then the version the store had committed at the kill runs and answers, the
/// store is settled and consistent (nothing pending, nothing left to collect, no leftover of a write), `app status
/// --json` and the compose file agree. The next cell's update starts from that device, and after the last cell
/// one more update installs and commits (a full update after every cell would double the matrix's time for
/// little: each cell's update runs every step before its kill from the previous cell's recovered device).
/// The same matrix as StoreWriteFaultTests, on the agent's path. Part of `make test-faults`.
/// </summary>
[Trait("Category", "Faults")]
public sealed class AgentStoreWriteFaultTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task A_SIGKILL_before_each_store_rename_of_an_agent_update_leaves_a_device_that_answers_and_updates()
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the store-write faults run in `make test-faults` (HARDENING_FAULTS=1)");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(45));
        var ct = cts.Token;
        await using var rig = await AgentRig.StartAsync(ct);
        using var tmp = new TempDir("agent-renames");
        var log = tmp.File("renames.log");
        await rig.StartAgent(ct);
        var current = "2.0";
        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.0"), await rig.UpdateAsync(current, ct));
        await rig.StopAgent(ct);

        // The census: one update with the shim logging only.
        await File.WriteAllTextAsync(log, "", ct);
        await rig.StartAgent(ct, killAtRename: 0, renameLog: log);
        var atStart = (await File.ReadAllLinesAsync(log, ct)).Length;
        var target = AgentRig.Next(current);
        Assert.True((await rig.UpdateAsync(target, ct)).Success);
        await rig.AssertSettledAsync(target, "the census update", ct);
        current = target;
        var renames = (await File.ReadAllLinesAsync(log, ct))[atStart..];
        output.WriteLine($"an update makes {renames.Length} renames ({atStart} at start):\n{string.Join('\n', renames)}");
        Assert.True(renames.Length >= 5, "an update made fewer renames than its store transitions: the shim is not preloaded into the agent");
        await rig.StopAgent(ct);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var n = 1; n <= renames.Length; n++)
        {
            await File.WriteAllTextAsync(log, "", ct);
            await rig.StartAgent(ct, killAtRename: atStart + n, renameLog: log);
            target = AgentRig.Next(current);
            using var callCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _ = rig.Send(new DockerCommandRequest("update_version", rig.Dir, target), callCts.Token);
            var exit = await rig.WaitForAgentExit(ct);
            await callCts.CancelAsync();
            var made = (await File.ReadAllLinesAsync(log, ct))[atStart..];
            Assert.True(made.Length == n && made[^1].EndsWith(" KILLED", StringComparison.Ordinal),
                $"the agent was to be killed before rename {n} ({renames[n - 1]}) but exited {exit} after these renames:\n{string.Join('\n', made)}\n{rig.AgentLog}");

            // What the store had committed when the power went is what must run.
            var state = rig.Store.Load(rig.App);
            var expected = rig.VersionOf(state.Committed)!;
            await rig.StartAgent(ct);
            await rig.AssertSettledAsync(expected, $"after a SIGKILL before rename {n} ({renames[n - 1]}) of the update {current} -> {target}", ct);
            output.WriteLine($"killed before rename {n} ({made[^1]}): recovered on {expected} ({watch.Elapsed.TotalSeconds:F0} s)");
            current = expected;
            if (n < renames.Length)
            {
                await rig.StopAgent(ct);
            }
        }

        var follow = AgentRig.Next(current);
        var answer = await rig.UpdateAsync(follow, ct);
        Assert.True(answer.Success, $"the update after the matrix ({current} -> {follow}): {answer.Message}\n{rig.AgentLog}");
        await rig.AssertSettledAsync(follow, "the update after the matrix", ct);
    }
}
