using AppModule.Core;
using AppModule.Core.Install;
using AppModule.Core.Store;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace AppModule.Engine;

/// <summary>
/// Runs orchestrator sub-modules (<c>&lt;submodules_dir&gt;/&lt;orchestrator&gt; CALL args...</c>) as child
/// processes in their own process group, with the configured timeout (SIGTERM, then SIGKILL), the
/// composition's environment (validated names only, never through a shell), and their stdout and
/// stderr forwarded line by line to our stderr, which the Mender client keeps in the deployment log.
/// <paramref name="environment"/>: variables every call gets besides the composition's (the fleet agent
/// passes the sub-module's config file this way; <c>app</c> passes none, its children inherit its environment).
/// </summary>
public sealed class SubModuleRunner(AppConfig config, IReadOnlyDictionary<string, string?>? environment = null)
{
    // The variables a sub-module reads (platform, image pins, pre-check manifests, log level) and their
    // formats are SubModuleContext's (Core/SubModules); the runner only fills one in.

    /// <summary>The sub-module executable for <paramref name="orchestrator"/>; throws naming the directory and the fix.</summary>
    public string Resolve(string orchestrator)
    {
        if (orchestrator.Length == 0 || orchestrator.Contains('/') || orchestrator.StartsWith('.'))
        {
            throw new InstallException("pre-check", $"orchestrator \"{orchestrator}\"", "not a plain sub-module name: regenerate the artifact with a valid --orchestrator");
        }

        var path = Path.Combine(config.SubModulesDir, orchestrator);
        if (!ChildProcess.IsRunnable(path))
        {
            throw new InstallException("pre-check", $"orchestrator \"{orchestrator}\"",
                $"no executable sub-module {path}: install the {orchestrator} sub-module there, or set submodules_dir in {AppConfig.DefaultPath}");
        }

        return path;
    }

    /// <summary>The context a sub-module gets for an artifact: the platform and the artifact's env keys.</summary>
    public static SubModuleContext ContextFor(string platform, IReadOnlyDictionary<string, string> env) =>
        new() { Platform = platform, Variables = env.ToDictionary(p => p.Key, p => (string?)p.Value, StringComparer.Ordinal) };

    /// <summary>The context for calls about a stored composition: also the images it was installed with.</summary>
    public static SubModuleContext ContextFor(Composition c) =>
        ContextFor(c.Platform, c.Env) with { Images = c.Images.Select(i => new ImagePin(i.Id, i.Url)).ToList() };

    public static IReadOnlyDictionary<string, string?> EnvironmentFor(string platform, IReadOnlyDictionary<string, string> env) => ContextFor(platform, env).ToEnvironment();

    public static IReadOnlyDictionary<string, string?> EnvironmentFor(Composition c) => ContextFor(c).ToEnvironment();

    /// <summary>Runs one call and returns its result (never throws for a non-zero exit).</summary>
    public async Task<ProcessResult> CallAsync(string executable, SubModuleCall call, IReadOnlyDictionary<string, string?> env, CancellationToken ct, TimeSpan? timeout = null, bool quiet = false, bool logStdout = true)
    {
        var name = Path.GetFileName(executable);
        if (!quiet)
        {
            Log.Info($"calling {name} {call}");
        }

        // Every call carries app's log level (the sub-modules log as much as app), unless the caller set one.
        var merged = new Dictionary<string, string?>(environment ?? new Dictionary<string, string?>(), StringComparer.Ordinal)
        {
            [SubModuleContext.LogLevelVariable] = config.LogLevel,
        };
        foreach (var (k, v) in env)
        {
            merged[k] = v;
        }

        env = merged;

        var spec = new ProcessSpec(executable, call.ToArgs())
        {
            Environment = env,
            Timeout = timeout ?? config.SubModuleTimeout,
            OnStdout = logStdout ? line => Log.Info($"{name}: {line}") : null,
            OnStderr = line => Log.Info($"{name}: {line}"),
        };
        try
        {
            var r = await ChildProcess.RunAsync(spec, ct).ConfigureAwait(false);
            if (r.TimedOut)
            {
                Log.Warning($"{name} {call.Name} did not finish within {spec.Timeout.TotalSeconds:0} s and was stopped (SIGTERM, then SIGKILL)");
            }

            return r;
        }
        catch (ChildProcessException e)
        {
            return new ProcessResult(127, string.Empty, e.Message, false, TimeSpan.Zero);
        }
    }

    /// <summary>Runs one call and throws <see cref="InstallException"/> (step, subject, output) when it fails.</summary>
    public async Task RequireAsync(string executable, SubModuleCall call, IReadOnlyDictionary<string, string?> env, string step, string subject, CancellationToken ct, TimeSpan? timeout = null)
    {
        var r = await CallAsync(executable, call, env, ct, timeout).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            throw Failure(executable, call, r, step, subject);
        }
    }

    public static InstallException Failure(string executable, SubModuleCall call, ProcessResult r, string step, string subject)
    {
        var how = r.TimedOut ? "timed out and was stopped" : $"exited with status {r.ExitCode}";
        return new InstallException(step, subject, $"{Path.GetFileName(executable)} {call.Name} {how}", Output(r));
    }

    public static string Output(ProcessResult r) => string.Join('\n', new[] { r.Stdout.Trim(), r.StderrTail.Trim() }.Where(s => s.Length > 0));
}
