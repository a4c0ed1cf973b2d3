using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace AppModule.Runtime;

/// <summary>What to run. Immutable; build variants with <c>with</c>.</summary>
public sealed record ProcessSpec(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>Variables to set (a null value removes the variable) on top of this process's environment.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    public string? WorkingDirectory { get; init; }

    /// <summary>Longest the process may run; then it is stopped (SIGTERM to its group, SIGKILL after <see cref="KillGrace"/>).</summary>
    public TimeSpan Timeout { get; init; } = System.Threading.Timeout.InfiniteTimeSpan;

    /// <summary>How long a stopped process gets between SIGTERM and SIGKILL.</summary>
    public TimeSpan KillGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Called for each stdout line as it arrives (e.g. to forward it to the deployment log).</summary>
    public Action<string>? OnStdout { get; init; }

    /// <summary>Called for each stderr line as it arrives.</summary>
    public Action<string>? OnStderr { get; init; }

    /// <summary>Keep the whole stdout (up to <see cref="MaxCapture"/>) in the result, e.g. for query answers.</summary>
    public bool CaptureStdout { get; init; } = true;

    public int MaxCapture { get; init; } = 4 * 1024 * 1024;

    /// <summary>Data to write to the process's stdin; stdin is closed after it (or at once when null).</summary>
    public Stream? StandardInput { get; init; }

    public override string ToString() => Display(FileName, Arguments);

    public static string Display(string fileName, IEnumerable<string> arguments) =>
        string.Join(' ', new[] { fileName }.Concat(arguments).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a));
}

/// <summary>How a child process ended.</summary>
public sealed record ProcessResult(int ExitCode, string Stdout, string StderrTail, bool TimedOut, TimeSpan Elapsed)
{
    public bool Succeeded => ExitCode == 0 && !TimedOut;
}

/// <summary>
/// Runs child processes in their own process group (via <c>setsid</c>), so that a stop reaches
/// everything they started: politely first (SIGTERM to the group), then firmly (SIGKILL) after a
/// bounded grace period. Used for sub-modules, the Compose CLI, <c>ctr</c>, <c>xdelta3</c>.
/// </summary>
public static partial class ChildProcess
{
    private const int SigTerm = 15;
    private const int SigKill = 9;
    private const int StderrTailLines = 40;
    private static readonly string? SetSid = new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);

    /// <summary>
    /// Runs the process to its end. Timeout and cancellation stop it (group SIGTERM, then SIGKILL);
    /// a timeout is reported in the result, a cancellation throws <see cref="OperationCanceledException"/>
    /// after the process group is gone. A program that cannot be started throws <see cref="ChildProcessException"/>.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(ProcessSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (SetSid is not null)
        {
            psi.FileName = SetSid;
            psi.ArgumentList.Add(spec.FileName);
        }
        else
        {
            psi.FileName = spec.FileName;
        }

        foreach (var a in spec.Arguments)
        {
            psi.ArgumentList.Add(a);
        }

        if (spec.WorkingDirectory is not null)
        {
            psi.WorkingDirectory = spec.WorkingDirectory;
        }

        foreach (var (k, v) in spec.Environment)
        {
            if (v is null)
            {
                psi.Environment.Remove(k);
            }
            else
            {
                psi.Environment[k] = v;
            }
        }

        if (SetSid is not null && !IsRunnable(spec.FileName))
        {
            throw new ChildProcessException($"cannot run {spec.FileName}: not found or not executable");
        }

        var stdout = new StringBuilder();
        var stderrTail = new Queue<string>();
        var outputGate = new Lock();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            spec.OnStdout?.Invoke(e.Data);
            if (spec.CaptureStdout)
            {
                lock (outputGate)
                {
                    if (stdout.Length < spec.MaxCapture)
                    {
                        stdout.Append(e.Data).Append('\n');
                    }
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            spec.OnStderr?.Invoke(e.Data);
            lock (outputGate)
            {
                stderrTail.Enqueue(e.Data);
                if (stderrTail.Count > StderrTailLines)
                {
                    stderrTail.Dequeue();
                }
            }
        };

        var started = Stopwatch.StartNew();
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new ChildProcessException($"cannot run {spec.FileName}: {e.Message}");
        }

        var pid = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var feed = FeedStdinAsync(process, spec.StandardInput);

        using var timeout = new CancellationTokenSource(spec.Timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            timedOut = timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested;
            await StopGroupAsync(process, pid, spec.KillGrace).ConfigureAwait(false);
            if (!timedOut)
            {
                throw;
            }
        }

        // Drain the asynchronous readers (WaitForExit without timeout waits for EOF on both pipes).
        process.WaitForExit();
        try
        {
            await feed.ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The child closed stdin early (e.g. it failed); its exit code tells the story.
        }

        string[] tail;
        lock (outputGate)
        {
            tail = [.. stderrTail];
        }

        return new ProcessResult(timedOut ? -1 : process.ExitCode, stdout.ToString(), string.Join('\n', tail), timedOut, started.Elapsed);
    }

    /// <summary>Stops a process group: SIGTERM, wait up to <paramref name="grace"/>, then SIGKILL.</summary>
    private static async Task StopGroupAsync(Process process, int pid, TimeSpan grace)
    {
        Signal(pid, SigTerm);
        using var graceCts = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(graceCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // fall through to SIGKILL
        }

        // Children of the group may outlive the leader; make sure nothing is left.
        Signal(pid, SigKill);
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    private static void Signal(int pid, int signal)
    {
        if (SetSid is not null)
        {
            _ = kill(-pid, signal); // the whole group; ESRCH when already gone is fine
        }
        else
        {
            _ = kill(pid, signal);
        }
    }

    private static async Task FeedStdinAsync(Process process, Stream? input)
    {
        var stdin = process.StandardInput.BaseStream;
        try
        {
            if (input is not null)
            {
                await input.CopyToAsync(stdin).ConfigureAwait(false);
            }
        }
        finally
        {
            stdin.Close();
        }
    }

    /// <summary>True when <paramref name="path"/> names an executable file, or a bare command found on PATH.</summary>
    public static bool IsRunnable(string path)
    {
        if (path.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        }

        return FindOnPath(path) is not null;
    }

    /// <summary>The full path of a command on PATH, or null.</summary>
    public static string? FindOnPath(string command)
    {
        var path = System.Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, command);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & UnixFileMode.UserExecute) != 0)
            {
                return candidate;
            }
        }

        return null;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}

/// <summary>A program could not be started at all (missing, not executable).</summary>
public sealed class ChildProcessException(string message) : Exception(message);
