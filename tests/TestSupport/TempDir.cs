namespace TestSupport;

/// <summary>A directory that exists for one test and is removed afterwards.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "appmodule-test")
    {
        Path = Directory.CreateTempSubdirectory(prefix + "-").FullName;
    }

    public string Path { get; }

    public string File(string relative) => System.IO.Path.Combine(Path, relative);

    public string Dir(string relative)
    {
        var d = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(d);
        return d;
    }

    public string Write(string relative, string content)
    {
        var f = File(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(f)!);
        System.IO.File.WriteAllText(f, content);
        return f;
    }

    public override string ToString() => Path;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>Names unique across concurrently running test processes (compose projects, containers, apps).</summary>
public static class Unique
{
    private static int _counter;

    public static string Name(string prefix) =>
        $"{prefix}{Environment.ProcessId % 10000:D4}{Interlocked.Increment(ref _counter):D3}{Random.Shared.Next(100, 999)}";
}
