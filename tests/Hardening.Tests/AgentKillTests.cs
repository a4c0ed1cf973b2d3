using Fleet.Core.Wire;
using Xunit.Abstractions;

namespace Hardening.Tests;

/// <summary>
/// The fleet agent SIGKILLed (with everything it started, as systemd kills the unit's control group) at each step
/// of an update: the pull, STOP, ROLLOUT, the health gate, the commit and the cleanup. Each kill is timed on what
/// the agent itself publishes: the step's event on its events channel freezes it (SIGSTOP) at once, the store's
/// journal then shows the kill really lands in that step (else the update is tried again), and the frozen tree
/// is killed. The agent is started again; it recovers as the journal says (an install not committed is rolled
/// back, a committed one is finished), and then: the store is settled on that version, `app status --json` and
/// the directory's compose file agree, the container answers as that version, and the next update works.
/// Part of `make test-faults` (about twelve real updates).
/// </summary>
[Trait("Category", "Faults")]
public sealed class AgentKillTests(ITestOutputHelper output)
{
    /// <summary>A step of an update: the event that starts it, and the journal's last event while it runs (null: nothing journaled yet for this update).</summary>
    public sealed record Step(string Name, string Event, string? Journaled);

    public static readonly Step[] Steps =
    [
        new("pull", "started", null),
        new("STOP", "stopping", "stopping"),
        new("ROLLOUT", "rolling-out", "rolling-out"),
        new("health gate", "rolled-out", "rolled-out"),
        new("commit", "committed", "committed"),
        new("cleanup", "commit-finalized", "commit-finalized"),
    ];

    [SkippableFact]
    public async Task A_SIGKILL_of_the_agent_at_each_step_of_an_update_recovers_as_the_journal_says_and_the_next_update_works()
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the agent kill matrix runs in `make test-faults` (HARDENING_FAULTS=1)");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(30));
        var ct = cts.Token;
        await using var rig = await AgentRig.StartAsync(ct);
        await rig.StartAgent(ct);
        // 1.0 (brought up by hand) is adopted, 2.0 installed: from here every update has a rollback version and demotes one to clean up.
        var current = "2.0";
        Assert.Equal(new DockerCommandResponse(true, "Successfully updated to version 2.0"), await rig.UpdateAsync("2.0", ct));
        await rig.AssertSettledAsync(current, "after the first update", ct);

        foreach (var step in Steps)
        {
            for (var attempt = 1; ; attempt++)
            {
                var (landed, next) = await KillDuring(rig, step, current, ct);
                current = next;
                if (landed)
                {
                    break;
                }

                Assert.True(attempt < 3, $"the kill missed the {step.Name} step {attempt} times (the agent was past it when frozen)");
            }
        }
    }

    /// <summary>
    /// The agent SIGKILLed (with its tree) during a `restart` command, in its STOP and in its ROLLOUT: the app was
    /// meant to run, so the agent's next start brings the last-known-good up again (the store names the composition
    /// being restarted until it is rolled out), and the device is settled on it: a container runs it, answers, and
    /// `app status --json` says it runs. (Before, a kill between STOP and ROLLOUT left the app down until the next command.)
    /// Then, on the same rig, a `down` killed in its STOP: the app was meant to be down, so the agent's start STOPs it
    /// again; no container of the app is left and the store (and `app status`) says nothing runs. (Before, the store
    /// said the app ran while its STOP had been cut short.)
    /// </summary>
    [SkippableFact]
    public async Task A_SIGKILL_of_the_agent_during_a_restart_or_a_down_is_finished_when_the_agent_starts()
    {
        Requires.Applicable(Environment.GetEnvironmentVariable("HARDENING_FAULTS") == "1", "the agent kill matrix runs in `make test-faults` (HARDENING_FAULTS=1)");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var ct = cts.Token;
        await using var rig = await AgentRig.StartAsync(ct);
        await rig.StartAgent(ct);
        var adopt = await rig.Send(new DockerCommandRequest("restart", rig.Dir), ct);
        Assert.True(adopt.Response?.Success == true, $"the first restart (which adopts 1.0, brought up by hand, into the store): {adopt.Outcome} {adopt.Response}\n{rig.AgentLog}");
        foreach (var (step, @event) in new[] { ("STOP", "stopping"), ("ROLLOUT", "rolling-out") })
        {
            var frozen = new TaskCompletionSource<FleetEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
            var armed = 1;
            rig.OnEvent = e =>
            {
                if (e.Event == @event && Interlocked.Exchange(ref armed, 0) == 1)
                {
                    rig.Freeze();
                    frozen.TrySetResult(e);
                }
            };
            using var callCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var call = rig.Send(new DockerCommandRequest("restart", rig.Dir), callCts.Token);
            await Task.WhenAny(frozen.Task, call, Task.Delay(TimeSpan.FromMinutes(4), ct));
            Assert.True(frozen.Task.IsCompleted, $"no {@event} event during the restart:\n{(call.IsCompleted ? call.Result.Response : null)}\n{rig.AgentLog}");
            // While it is frozen, `app status` says a restart of 1.0 is in progress, asked by this command.
            Assert.Equal(("restart", "1.0", "fleet", (await frozen.Task).CommandId), rig.InProgress());
            var killed = rig.KillAgentTree();
            await callCts.CancelAsync();
            var journalAtKill = rig.JournalEvents().Length;
            var running = rig.Store.Load(rig.App).Running;
            output.WriteLine($"restart killed in its {step} (journal ends {rig.JournalEvents()[^1]}, the store runs {running ?? "nothing"}){(killed.Count == 0 ? "" : " with " + string.Join("; ", killed))}");

            await rig.StartAgent(ct);
            await rig.AssertSettledAsync("1.0", $"after a SIGKILL during the restart's {step}", ct);
            Assert.Null(rig.Store.Load(rig.App).Restarting);
            Assert.Null(rig.InProgress());
            var recovery = rig.JournalEvents()[journalAtKill..];
            output.WriteLine($"  recovery journaled [{string.Join(' ', recovery)}]");
            Assert.Equal("restored", recovery[^1]);
            rig.OnEvent = null;
        }

        // A down killed in its STOP.
        var stopping = new TaskCompletionSource<FleetEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.OnEvent = e =>
        {
            if (e.Event == "stopping")
            {
                rig.Freeze();
                stopping.TrySetResult(e);
            }
        };
        using (var downCts = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            var down = rig.Send(new DockerCommandRequest("down", rig.Dir), downCts.Token);
            await Task.WhenAny(stopping.Task, down, Task.Delay(TimeSpan.FromMinutes(4), ct));
            Assert.True(stopping.Task.IsCompleted, $"no stopping event during the down:\n{(down.IsCompleted ? down.Result.Response : null)}\n{rig.AgentLog}");
            Assert.Equal(("stop", "1.0", "fleet", (await stopping.Task).CommandId), rig.InProgress());
            Assert.Contains($"in progress:    stop of 1.0 ({rig.Store.Load(rig.App).Stopping}), asked by fleet command {(await stopping.Task).CommandId}", rig.StatusText());
            var killed = rig.KillAgentTree();
            await downCts.CancelAsync();
            var atKill = rig.Store.Load(rig.App);
            output.WriteLine($"down killed in its STOP (journal ends {rig.JournalEvents()[^1]}, the store stops {atKill.Stopping}, runs {atKill.Running ?? "nothing"}){(killed.Count == 0 ? "" : " with " + string.Join("; ", killed))}");
            Assert.Equal(("stopping", atKill.Committed, (string?)null), (rig.JournalEvents()[^1], atKill.Stopping, atKill.Running));
        }

        var journalAtDownKill = rig.JournalEvents().Length;
        rig.OnEvent = null;
        await rig.StartAgent(ct);
        var after = rig.Store.Load(rig.App);
        var why = $"journal: {string.Join(' ', rig.JournalEvents())}\n{rig.AgentLog}";
        Assert.True(after.Stopping is null && after.Running is null && after.Pending is null, $"after the down's recovery the store stops {after.Stopping}, runs {after.Running}\n{why}");
        Assert.Equal("1.0", rig.VersionOf(after.Committed));
        Assert.Equal(["stopped"], rig.JournalEvents()[journalAtDownKill..]);
        Assert.Equal(((string?)null, "1.0", false), rig.Status());
        Assert.Null(rig.InProgress());
        var left = DockerEngine.DockerOk("ps", "-aq", "--filter", $"label=com.docker.compose.project={rig.App}").Trim();
        Assert.True(left.Length == 0, $"containers of the app are left after the down's recovery: {left}\n{why}");
    }

    /// <summary>
    /// One update from <paramref name="current"/> killed during <paramref name="step"/>, the recovery checks and
    /// the next update; returns whether the kill landed in the step, and the version that runs afterwards.
    /// </summary>
    private async Task<(bool Landed, string Current)> KillDuring(AgentRig rig, Step step, string current, CancellationToken ct)
    {
        var target = AgentRig.Next(current);
        var journalBefore = rig.JournalEvents().Length;
        var frozen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The subscriber's thread freezes the agent the moment the step's event arrives.
        var armed = 1;
        void OnEvent(FleetEvent e)
        {
            if (e.Event == step.Event && (step.Event != "started" || e.Detail == target) && Interlocked.Exchange(ref armed, 0) == 1)
            {
                rig.Freeze();
                frozen.TrySetResult();
            }
        }

        rig.OnEvent = OnEvent;
        using var callCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var call = rig.Send(new DockerCommandRequest("update_version", rig.Dir, target), callCts.Token);
        await Task.WhenAny(frozen.Task, call, Task.Delay(TimeSpan.FromMinutes(4), ct));
        if (!frozen.Task.IsCompleted && call.IsCompleted)
        {
            // The reply and the events travel on different connections: the event of the last step before the reply
            // (commit-finalized) can reach this subscriber after the reply. The freeze then comes after the step, which
            // the journal shows: the kill missed it and the loop tries again.
            await Task.WhenAny(frozen.Task, Task.Delay(TimeSpan.FromSeconds(30), ct));
        }

        Assert.True(frozen.Task.IsCompleted, $"no {step.Event} event during the update to {target}:\n{(call.IsCompleted ? call.Result.Response : null)}\n{rig.AgentLog}");

        // Where the frozen agent is: the journal of this update so far.
        var journal = rig.JournalEvents()[journalBefore..];
        var landed = step.Journaled is null ? journal.Length == 0 : journal.Length > 0 && journal[^1] == step.Journaled;
        var killed = rig.KillAgentTree();
        await callCts.CancelAsync();
        var committed = journal.Contains("committed");
        var expected = committed ? target : current;
        output.WriteLine($"{step.Name}: update {current} -> {target} killed after [{string.Join(' ', journal)}]{(killed.Count == 0 ? "" : " with " + string.Join("; ", killed))}: "
            + (landed ? "in the step" : "MISSED the step") + $"; expecting {expected}");

        // The agent starts again and recovers before it reports its version.
        await rig.StartAgent(ct);
        await rig.AssertSettledAsync(expected, $"after a SIGKILL during {step.Name} of the update {current} -> {target}", ct);
        var recovery = rig.JournalEvents()[(journalBefore + journal.Length)..];
        output.WriteLine($"  recovery journaled [{string.Join(' ', recovery)}]");
        if (!committed && journal.Contains("prepared"))
        {
            Assert.Contains("rolled-back", recovery);
        }

        // The next update works.
        var follow = AgentRig.Next(expected);
        var answer = await rig.UpdateAsync(follow, ct);
        Assert.True(answer.Success, $"the next update ({expected} -> {follow}) after a SIGKILL during {step.Name}: {answer.Message}\n{rig.AgentLog}");
        await rig.AssertSettledAsync(follow, $"the next update after a SIGKILL during {step.Name}", ct);
        return (landed, follow);
    }
}
