using System.Diagnostics;
using System.Net.Http;

namespace TestSupport;

/// <summary>A private Debian <c>docker-registry</c> (distribution 2.8) on a random loopback port with storage in a
/// temp dir, for one test class. Images are pushed into it from the engine with skopeo. The engine pulls from it
/// over plain HTTP (127.0.0.0/8 is an insecure registry by default). Images the tests pulled into the engine under
/// this registry's name are removed on dispose.</summary>
public sealed class RegistryServer : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    public int Port { get; }
    /// <summary>"127.0.0.1:&lt;port&gt;", as written in image references.</summary>
    public string Address => $"127.0.0.1:{Port}";

    public RegistryServer() : this(null, 0) { }

    /// <summary>A registry with extra top-level config (e.g. an <c>auth:</c> section), appended verbatim.</summary>
    public static RegistryServer Start(string extraYaml) => new(extraYaml, 0);

    private RegistryServer(string? extraYaml, int _)
    {
        var registry = Requires.Program("docker-registry", "docker-registry", "`apt-get install docker-registry` (build/deps.sh does it)");
        Port = RedisServer.FreePort();
        _dir = Directory.CreateTempSubdirectory("registry-test-").FullName;
        var config = Path.Combine(_dir, "config.yml");
        File.WriteAllText(config, $"""
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: {Path.Combine(_dir, "data")}
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{Port}
            {extraYaml ?? ""}
            """);
        var psi = new ProcessStartInfo(registry) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add(config);
        _process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {registry}");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"docker-registry exited with {_process.ExitCode} at start (port {Port})");
            try
            {
                using var r = http.GetAsync($"http://{Address}/v2/").GetAwaiter().GetResult();
                break; // 200 or 401: it is serving
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline) { Thread.Sleep(50); }
        }
    }

    /// <summary>Copies an engine image (e.g. "appmodule/web:1.0") into this registry as <paramref name="repoAndTag"/>
    /// ("fleet/web:2.0"); returns the full reference "127.0.0.1:port/fleet/web:2.0".</summary>
    public string Push(string engineImage, string repoAndTag, string? destCreds = null)
    {
        var dest = $"{Address}/{repoAndTag}";
        var args = new List<string> { "copy", "--quiet", "--dest-tls-verify=false" };
        if (destCreds is not null) { args.Add("--dest-creds"); args.Add(destCreds); }
        args.AddRange(DockerEngine.SkopeoSource(engineImage));
        args.Add($"docker://{dest}");
        Run(Tool.Skopeo, args);
        return dest;
    }

    /// <summary>The digest the registry names the manifest of <paramref name="repoAndTag"/> ("fleet/web:2.0") by, as a
    /// client that accepts image manifests and indexes reads it (HEAD, Docker-Content-Digest).</summary>
    public string ManifestDigest(string repoAndTag)
    {
        var colon = repoAndTag.LastIndexOf(':');
        using var http = new HttpClient();
        using var head = new HttpRequestMessage(HttpMethod.Head, $"http://{Address}/v2/{repoAndTag[..colon]}/manifests/{repoAndTag[(colon + 1)..]}");
        foreach (var t in new[] { "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json" })
            head.Headers.Accept.ParseAdd(t);
        using var r = http.Send(head);
        r.EnsureSuccessStatusCode();
        return r.Headers.GetValues("Docker-Content-Digest").Single();
    }

    private static void Run(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', psi.ArgumentList)} failed ({p.ExitCode}): {err.Result}");
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } }
        catch (InvalidOperationException) { }
        _process.Dispose();
        // Images pulled into the shared engine under this registry's unique address.
        try
        {
            var psi = new ProcessStartInfo("/usr/bin/docker") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "image", "ls", "--format", "{{.Repository}}:{{.Tag}}" }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var images = p.StandardOutput.ReadToEnd().Split('\n').Where(l => l.StartsWith(Address + "/", StringComparison.Ordinal)).ToList();
            p.WaitForExit();
            if (images.Count > 0) Run("/usr/bin/docker", new[] { "image", "rm", "-f" }.Concat(images));
        }
        catch (Exception) { /* best effort: the engine may be gone */ }
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
