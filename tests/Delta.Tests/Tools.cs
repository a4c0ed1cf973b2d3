using System.Diagnostics;

namespace Delta.Tests;

/// <summary>Runs real external tools (xdelta3, docker, skopeo) for the tests.</summary>
internal static class Tools
{
    public const string Xdelta3 = "/usr/bin/xdelta3";
    public const string Docker = "/usr/bin/docker";

    public static bool Has(string path) => File.Exists(path);

    /// <summary>xdelta3 must be on PATH (<see cref="Requires"/>: skips locally, fails on CI).</summary>
    public static void RequireXdelta3() => _ = Tool.Xdelta3;

    /// <summary>The engine with the test images, and xdelta3.</summary>
    public static void RequireEngine()
    {
        RequireXdelta3();
        DockerEngine.RequireImages();
    }

    public static string Run(string exe, params string[] args) => RunIn(null, exe, args);

    public static string RunIn(string? cwd, string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cwd is not null)
        {
            psi.WorkingDirectory = cwd;
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        }
        return stdout.Result;
    }

    /// <summary>xdelta3 -e [-S secondary] -s base target delta.</summary>
    public static void XdeltaEncode(string basePath, string targetPath, string deltaPath, string? secondary = null, params string[] extra)
    {
        var args = new List<string> { "-e", "-f" };
        if (secondary is not null)
        {
            args.Add("-S");
            args.Add(secondary);
        }
        args.AddRange(extra);
        if (basePath.Length > 0)
        {
            args.Add("-s");
            args.Add(basePath);
        }
        args.Add(targetPath);
        args.Add(deltaPath);
        Run(Xdelta3, [.. args]);
    }
}

/// <summary>A temp directory removed at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir(string tag)
    {
        Path = Directory.CreateTempSubdirectory($"delta-{tag}-").FullName;
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, true);
        }
        catch (IOException)
        {
        }
    }
}
