using System.Diagnostics;
using System.Text;

namespace ArtifactGen.Tests;

public sealed record RunResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

public static class Tools
{
    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "AppModule.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("cannot find the repository root (AppModule.sln) above " + AppContext.BaseDirectory);
        }
    }

    public static string BinDir => Environment.GetEnvironmentVariable("APPMODULE_BIN_DIR") is { Length: > 0 } b ? b : Path.Combine(RepoRoot, "out", "linux-x64");

    public static string AppGen
    {
        get
        {
            var p = Path.Combine(BinDir, "app-gen");
            if (!File.Exists(p))
                throw new InvalidOperationException($"{p} does not exist: publish it first (build/publish.sh linux-x64, or dotnet publish artifact-gen/ArtifactGen -c Release -r linux-x64 -o out/linux-x64)");
            return p;
        }
    }

    public const string Docker = "/usr/bin/docker";

    public static RunResult Run(string file, IEnumerable<string> args, string? cwd = null, IDictionary<string, string>? env = null, int timeoutSeconds = 300)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = cwd ?? Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeoutSeconds} s");
        }
        p.WaitForExit();
        return new RunResult(p.ExitCode, so.Result, se.Result);
    }

    public static RunResult MustRun(string file, params string[] args)
    {
        var r = Run(file, args);
        if (r.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {r}");
        return r;
    }

    public static string Sha256File(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(fs));
    }
}

/// <summary>A temp directory removed at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("artifacts-test-").FullName;
    public string this[string rel] => System.IO.Path.Combine(Path, rel);
    public string Write(string rel, string content)
    {
        var p = this[rel];
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        File.WriteAllText(p, content, new UTF8Encoding(false));
        return p;
    }
    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}

/// <summary>
/// Test images built once for the collection, with unique tags: multi-layer variants FROM
/// appmodule/busybox:base (built by build/test-images.sh). v1 = base + a.bin + b.bin; v2 = base +
/// c.txt + b.bin + a.bin changed in ~5% of its bytes (an inserted layer, a reordered unchanged one and
/// a changed one). Files have mtime 0 so identical COPY layers have identical content.
/// </summary>
public sealed class ImagesFixture : IDisposable
{
    public string Tag { get; } = "artifacts-test-" + Guid.NewGuid().ToString("N")[..10];
    public string V1 => Tag + ":1";
    public string V2 => Tag + ":2";
    public string Web => "appmodule/web:1.0";
    private readonly TempDir _ctx = new();

    public ImagesFixture()
    {
        var r = Tools.Run(Tools.Docker, ["image", "inspect", "appmodule/busybox:base", "appmodule/web:1.0"]);
        if (r.ExitCode != 0)
            Tools.MustRun("/bin/bash", Path.Combine(Tools.RepoRoot, "build", "test-images.sh"));
        var rnd = new Random(42);
        var a = new byte[400_000];
        rnd.NextBytes(a);
        var b = new byte[200_000];
        rnd.NextBytes(b);
        var a2 = (byte[])a.Clone();
        for (int i = 0; i < a2.Length; i += 20) a2[i] ^= 0x5a; // ~5% changed
        File.WriteAllBytes(_ctx["a.bin"], a);
        File.WriteAllBytes(_ctx["a2.bin"], a2);
        File.WriteAllBytes(_ctx["b.bin"], b);
        File.WriteAllText(_ctx["c.txt"], "inserted layer\n");
        foreach (var f in new[] { "a.bin", "a2.bin", "b.bin", "c.txt" }) File.SetLastWriteTimeUtc(_ctx[f], DateTime.UnixEpoch);
        File.WriteAllText(_ctx["Dockerfile.1"], "FROM appmodule/busybox:base\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\n");
        File.WriteAllText(_ctx["Dockerfile.2"], "FROM appmodule/busybox:base\nCOPY c.txt /c.txt\nCOPY b.bin /b.bin\nCOPY a2.bin /a.bin\n");
        Build("Dockerfile.1", V1);
        Build("Dockerfile.2", V2);
    }

    private void Build(string dockerfile, string tag)
    {
        var r = Tools.Run(Tools.Docker, ["build", "-q", "-f", _ctx[dockerfile], "-t", tag, _ctx.Path], env: new Dictionary<string, string> { ["DOCKER_BUILDKIT"] = "0" });
        if (r.ExitCode != 0) throw new InvalidOperationException("docker build failed: " + r);
    }

    public string ImageId(string reference) =>
        Tools.MustRun(Tools.Docker, "image", "inspect", "--format", "{{.ID}}", reference).Stdout.Trim().Replace("sha256:", "");

    public void Save(string reference, string path) => Tools.MustRun(Tools.Docker, "save", "-o", path, reference);

    public void Dispose()
    {
        Tools.Run(Tools.Docker, ["rmi", "-f", V1, V2]);
        _ctx.Dispose();
    }
}

[CollectionDefinition("images")]
public sealed class ImagesCollection : ICollectionFixture<ImagesFixture>;
