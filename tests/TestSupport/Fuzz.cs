using System.Runtime.CompilerServices;
using CsCheck;

namespace TestSupport;

/// <summary>
/// Property tests that make a green run reproducible. <see cref="Check"/> runs, in <c>make test</c>:
/// <list type="number">
/// <item>every regression seed given (a CsCheck seed that once failed: each reproduces its input exactly),</item>
/// <item>a fixed set of <c>cases</c> inputs from a seed derived from the test's name, the same on every run
/// and machine; a failure names the seed of the failing input, to be added to the regressions.</item>
/// </list>
/// Open-ended exploration (new random inputs each run) happens only in <c>make fuzz</c>: with
/// <c>FUZZ_SECONDS</c> set, CsCheck then samples for that many seconds per property, shrinks what fails and
/// prints its seed. So a CI run never turns red on an input no earlier run saw.
/// </summary>
public static class Fuzz
{
    /// <summary>Seconds of open-ended exploration per property (make fuzz); unset: none.</summary>
    public const string SecondsVariable = "FUZZ_SECONDS";

    /// <summary>The exploration budget from <see cref="SecondsVariable"/>, or null.</summary>
    public static int? ExploreSeconds { get; } =
        int.TryParse(Environment.GetEnvironmentVariable(SecondsVariable), out var s) && s > 0 ? s : null;

    /// <param name="gen">the inputs</param>
    /// <param name="property">throws when the property does not hold for an input</param>
    /// <param name="cases">how many fixed inputs every run checks</param>
    /// <param name="regressions">CsCheck seeds that once failed (each with the reason in a comment at the call)</param>
    /// <param name="threads">threads for the exploration (1 when the property is not thread-safe)</param>
    /// <param name="name">the test (derives the fixed seed)</param>
    public static void Check<T>(Gen<T> gen, Action<T> property, int cases, IReadOnlyList<string>? regressions = null, int threads = 1, [CallerMemberName] string name = "")
    {
        foreach (var seed in regressions ?? [])
        {
            Run(gen, property, PCG.Parse(seed), name, $"regression seed {seed} fails again");
        }

        var pcg = new PCG(14, FixedSeed(name));
        for (var i = 0; i < cases; i++)
        {
            var state = pcg.State;
            Run(gen, property, pcg, name, $"fixed case {i + 1} of {cases} (seed {pcg.ToString(state)}: add it to the test's regressions once fixed) fails");
        }

        if (ExploreSeconds is { } seconds)
        {
            Console.Error.WriteLine($"fuzz: {name}: exploring new inputs for {seconds} s ({SecondsVariable}); a failure prints the seed to reproduce");
            gen.Sample(property, time: seconds, threads: threads);
        }
    }

    private static void Run<T>(Gen<T> gen, Action<T> property, PCG pcg, string name, string what)
    {
        var input = gen.Generate(pcg, null!, out _);
        try
        {
            property(input);
        }
        catch (Exception e) when (e is not SkipException)
        {
            throw new FuzzFailureException($"{name}: {what}: {e.GetType().Name}: {e.Message}", e);
        }
    }

    /// <summary>FNV-1a of the name: a seed that is the same on every run and machine (string.GetHashCode is not).</summary>
    private static ulong FixedSeed(string name)
    {
        var h = 14695981039346656037UL;
        foreach (var c in name)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        return h;
    }
}

/// <summary>A property failed for an input the message names by its seed.</summary>
public sealed class FuzzFailureException(string message, Exception inner) : Exception(message, inner);
