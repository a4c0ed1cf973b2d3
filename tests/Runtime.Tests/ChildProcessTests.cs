using AppModule.Runtime;

namespace Runtime.Tests;

public class ChildProcessTests
{
    [Fact]
    public async Task Output_and_exit_code_are_captured()
    {
        var r = await ChildProcess.RunAsync(new ProcessSpec("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"]), CancellationToken.None);
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("out\n", r.Stdout);
        Assert.Equal("err", r.StderrTail);
        Assert.False(r.TimedOut);
    }

    [Fact]
    public async Task Environment_variables_reach_the_child_without_a_shell()
    {
        var spec = new ProcessSpec("/usr/bin/env", []) { Environment = new Dictionary<string, string?> { ["APPMODULE_X"] = "a;$(touch /tmp/pwned) b" } };
        var r = await ChildProcess.RunAsync(spec, CancellationToken.None);
        Assert.Contains("APPMODULE_X=a;$(touch /tmp/pwned) b", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_timeout_stops_the_whole_process_group_including_grandchildren()
    {
        using var dir = new TempDir();
        var marker = dir.File("grandchild.pid");
        // The child starts a grandchild that would outlive it, then both ignore nothing: SIGTERM must reach both.
        var spec = new ProcessSpec("/bin/sh", ["-c", $"sleep 300 & echo $! > {marker}; wait"]) { Timeout = TimeSpan.FromSeconds(1), KillGrace = TimeSpan.FromSeconds(2) };
        var r = await ChildProcess.RunAsync(spec, CancellationToken.None);
        Assert.True(r.TimedOut);
        var pid = int.Parse(File.ReadAllText(marker).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(" Z ", StringComparison.Ordinal), "grandchild still running");
    }

    [Fact]
    public async Task A_child_that_ignores_sigterm_is_killed_after_the_grace_period()
    {
        var spec = new ProcessSpec("/bin/sh", ["-c", "trap '' TERM; while true; do sleep 0.1; done"]) { Timeout = TimeSpan.FromMilliseconds(500), KillGrace = TimeSpan.FromSeconds(1) };
        var r = await ChildProcess.RunAsync(spec, CancellationToken.None);
        Assert.True(r.TimedOut);
    }

    [Fact]
    public async Task Cancellation_stops_the_child_and_throws()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ChildProcess.RunAsync(new ProcessSpec("/bin/sleep", ["300"]), cts.Token));
    }

    [Fact]
    public async Task A_missing_program_is_reported_by_name()
    {
        var e = await Assert.ThrowsAsync<ChildProcessException>(() => ChildProcess.RunAsync(new ProcessSpec("/nonexistent/tool", []), CancellationToken.None));
        Assert.Contains("/nonexistent/tool", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stdin_is_fed_from_a_stream()
    {
        using var input = new MemoryStream("hello\n"u8.ToArray());
        var r = await ChildProcess.RunAsync(new ProcessSpec("/bin/cat", []) { StandardInput = input }, CancellationToken.None);
        Assert.Equal("hello\n", r.Stdout);
    }
}
