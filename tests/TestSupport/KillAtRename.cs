namespace TestSupport;

/// <summary>
/// The rename shim (native/kill-at-rename.c), compiled once per test process with the machine's gcc. Preloaded
/// (LD_PRELOAD) with KILL_AT_RENAME=N it SIGKILLs the process just before its Nth rename, a power cut between two
/// store writes; RENAME_LOG names a file that gets one line per rename ("N from -> to", " KILLED" on the fatal one).
/// </summary>
public static class KillAtRename
{
    private static readonly Lazy<string> Compiled = new(() =>
    {
        var source = Path.Combine(AppContext.BaseDirectory, "native", "kill-at-rename.c");
        var output = Path.Combine(Path.GetTempPath(), $"kill-at-rename-{System.Environment.ProcessId}.so");
        var r = Cmd.Run(Tool.Gcc, ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", output, source, "-ldl"]);
        return r.ExitCode == 0 ? output : throw new InvalidOperationException("cannot compile the rename shim: " + r);
    });

    public static string Library => Compiled.Value;

    /// <summary>The environment that arms the shim for one process: kill before rename <paramref name="killAt"/> (0: log only), log to <paramref name="log"/>.</summary>
    public static Dictionary<string, string?> Environment(int killAt, string log) => new()
    {
        ["LD_PRELOAD"] = Library,
        ["KILL_AT_RENAME"] = killAt.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RENAME_LOG"] = log,
    };
}
