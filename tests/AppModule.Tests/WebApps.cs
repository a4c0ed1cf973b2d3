using System.Net.Sockets;

namespace AppModule.Tests;

/// <summary>
/// Real applications on the shared engine: the test images (appmodule/web:*) saved under unique tags,
/// compose manifests publishing a unique port, and a cleanup that removes what a test created.
/// </summary>
public sealed class WebApps : IDisposable
{
    private readonly List<string> _tags = [];
    private readonly List<string> _projects = [];

    public WebApps(string dir)
    {
        DockerEngine.RequireImages();
        Dir = dir;
    }

    public string Dir { get; }

    public static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Saves appmodule/web:<paramref name="variant"/> as &lt;app&gt;/web:&lt;variant&gt;, then removes that tag, so only LOAD can bring it back.</summary>
    public AppImage Image(string app, string variant)
    {
        var tag = $"{app.ToLowerInvariant()}/web:{variant}";
        var image = AppArtifacts.SaveDockerImage($"appmodule/web:{variant}", tag, Dir);
        DockerEngine.DockerOk("image", "rm", tag);
        _tags.Add(tag);
        return image;
    }

    /// <summary>
    /// A new image of its own (appmodule/web:<paramref name="variant"/> plus a label), saved under
    /// <paramref name="reference"/> (e.g. two versions both as &lt;app&gt;/web:latest); then the
    /// reference and with it the image are removed, so only LOAD brings it back. Whatever LOAD
    /// brought back is removed by its ID at dispose.
    /// </summary>
    public AppImage UniqueImageAs(string variant, string reference)
    {
        var build = Cmd.Run(DockerEngine.Cli, ["build", "-q", "-t", reference, "-"], stdin: $"FROM appmodule/web:{variant}\nLABEL appmodule.test.reference=\"{reference}\" appmodule.test.variant=\"{variant}\"\n", timeout: TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"building {reference}: {build}");
        var image = AppArtifacts.SaveDockerImage(reference, reference, Path.Combine(Dir, "images", variant));
        DockerEngine.DockerOk("image", "rm", reference);
        _tags.Add(reference);
        _tags.Add("sha256:" + image.Id);
        return image;
    }

    public static string Compose(AppImage image, int port, string extra = "") =>
        $"version: '2.1'\nservices:\n  web:\n    image: {image.UrlNew}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n{extra}";

    public AppArtifactSpec Spec(string artifact, string app, AppImage image, int port, string orchestrator = "docker-compose")
    {
        _projects.Add(app);
        return new AppArtifactSpec(artifact, app, [image], new Dictionary<string, string> { ["docker-compose.yml"] = Compose(image, port) }, Orchestrator: orchestrator);
    }

    /// <summary>What the app answers on <paramref name="port"/> (waits up to 20 s for an answer), or null.</summary>
    public static string? Answer(int port, int seconds = 20)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < seconds * 2; i++)
        {
            try
            {
                return http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/")).GetAwaiter().GetResult().Trim();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                Thread.Sleep(500);
            }
        }

        return null;
    }

    /// <summary>Makes this object clean up a compose project and image tags a test created by other means.</summary>
    public void Own(string project, params string[] tags)
    {
        _projects.Add(project);
        _tags.AddRange(tags);
    }

    public static bool TagExists(string tag) => DockerEngine.ImageId(tag) is not null;

    public void Dispose()
    {
        foreach (var p in _projects.Distinct())
        {
            var ids = DockerEngine.Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={p}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0)
            {
                DockerEngine.Docker(["rm", "-f", .. ids]);
            }

            foreach (var n in DockerEngine.Docker("network", "ls", "-q", "--filter", $"label=com.docker.compose.project={p}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                DockerEngine.Docker("network", "rm", n);
            }

            foreach (var v in DockerEngine.Docker("volume", "ls", "-q", "--filter", $"label=com.docker.compose.project={p}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                DockerEngine.Docker("volume", "rm", "-f", v);
            }
        }

        foreach (var t in _tags)
        {
            DockerEngine.Docker("image", "rm", t);
        }
    }
}
