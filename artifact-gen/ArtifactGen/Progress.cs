using System.Diagnostics;

namespace ArtifactGen;

/// <summary>Progress lines on stderr for long steps: bytes done and rate, at most about once a second, plus a final line.</summary>
public sealed class StepProgress : IProgress<long>
{
    private readonly string _what;
    private readonly bool _quiet;
    private readonly Stopwatch _sw = Stopwatch.StartNew();
    private long _bytes;
    private long _lastReportMs = -1;

    public StepProgress(string what, bool quiet)
    {
        _what = what;
        _quiet = quiet;
    }

    public long Bytes => Interlocked.Read(ref _bytes);

    public void Report(long value)
    {
        var total = Interlocked.Add(ref _bytes, value);
        if (_quiet) return;
        var ms = _sw.ElapsedMilliseconds;
        if (ms - Interlocked.Read(ref _lastReportMs) < 1000) return;
        Interlocked.Exchange(ref _lastReportMs, ms);
        Console.Error.WriteLine($"app-gen: {_what}: {Human(total)} ({Human(Rate(total))}/s)");
    }

    public void Done()
    {
        if (_quiet) return;
        Console.Error.WriteLine($"app-gen: {_what}: {Human(Bytes)} done in {_sw.Elapsed.TotalSeconds:0.0} s ({Human(Rate(Bytes))}/s)");
    }

    private double Rate(long total) => total / Math.Max(_sw.Elapsed.TotalSeconds, 0.001);

    public static string Human(double b) =>
        b >= 1 << 30 ? $"{b / (1 << 30):0.00} GiB" : b >= 1 << 20 ? $"{b / (1 << 20):0.0} MiB" : b >= 1 << 10 ? $"{b / 1024:0.0} KiB" : $"{b:0} B";
}
