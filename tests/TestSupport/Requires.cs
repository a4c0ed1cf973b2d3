namespace TestSupport;

/// <summary>
/// The one way a test says it cannot run here. A component the test drives (the Mender client, Compose v2,
/// containerd, skopeo, qemu, redis, a registry, kubectl, xdelta3, the Docker engine...) that is missing
/// skips the test with a line naming the component and how to install it; under <c>CI=true</c> the same
/// line fails the test instead, because CI installs every component (build/deps.sh) and a skip there
/// would be a green run that tested nothing. A case that does not apply (a feature an orchestrator does
/// not have, a matrix that runs in another target) is not a missing component: <see cref="Applicable"/>
/// skips it everywhere.
/// </summary>
public static class Requires
{
    /// <summary>True when the environment says this is CI (<c>CI=true</c> or <c>CI=1</c>, as CI services set it).</summary>
    public static bool OnCi { get; } = Environment.GetEnvironmentVariable("CI") is { } ci
        && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    /// <summary>
    /// <paramref name="component"/> must be usable: <paramref name="problem"/> is null when it is, else why not
    /// and what to do (e.g. "not on PATH: `apt-get install mender-client` (build/deps.sh does it)").
    /// </summary>
    public static void Component(string component, string? problem)
    {
        if (problem is null)
        {
            return;
        }

        var line = $"missing component {component}: {problem}";
        if (OnCi)
        {
            throw new MissingComponentException($"{line} [CI=true: every component is installed on CI, so this is an environment failure, not a skip]");
        }

        throw new SkipException(line);
    }

    /// <summary><paramref name="component"/> must be usable when <paramref name="available"/>; <paramref name="fix"/> says how to get it.</summary>
    public static void Component(string component, bool available, string fix) => Component(component, available ? null : fix);

    /// <summary>
    /// An executable on PATH (so that taking it off PATH is what makes it missing); returns its full path.
    /// <paramref name="component"/> names it in the message, <paramref name="install"/> is how to get it.
    /// </summary>
    public static string Program(string component, string executable, string install)
    {
        var path = Which(executable);
        Component(component, path is null ? $"`{executable}` is not on PATH: {install}" : null);
        return path!;
    }

    /// <summary>The test does not apply here (not a missing component): skips, also on CI.</summary>
    public static void Applicable(bool applies, string reason)
    {
        if (!applies)
        {
            throw new SkipException(reason);
        }
    }

    /// <summary>The full path of <paramref name="executable"/> on PATH, or null.</summary>
    public static string? Which(string executable)
    {
        if (executable.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(executable) ? executable : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}

/// <summary>A component a test needs is missing on CI (see <see cref="Requires"/>).</summary>
public sealed class MissingComponentException(string message) : Exception(message);

/// <summary>
/// A class fixture set up on first use, inside a test: when its setup needs a component that is missing,
/// <see cref="Requires"/> then skips (or, on CI, fails) each test with the component's name, where an
/// exception in a fixture's constructor would fail the whole class with xunit's "threw in its constructor".
/// The setup runs once; its exception, if any, is rethrown to every test.
/// </summary>
public sealed class Deferred<T> : IDisposable
    where T : IDisposable, new()
{
    private readonly Lazy<T> _value = new(() => new T());

    public T Value => _value.Value;

    public void Dispose()
    {
        if (_value.IsValueCreated)
        {
            _value.Value.Dispose();
        }
    }
}
