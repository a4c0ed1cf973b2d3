using System.Net.Http;
using System.Net.Sockets;

namespace Packaging.Tests;

/// <summary>
/// The x64 packages, unpacked into a throwaway root, do the product's job: the packaged `app-gen`
/// writes an artifact, and the real Mender client, pointed at the packaged `app` module, sub-modules and
/// configs, installs and commits it on the real engine.
/// </summary>
public sealed class PackagedInstallTests : IClassFixture<DebianPackageTests.Packages>
{
    private readonly DebianPackageTests.Packages _packages;

    public PackagedInstallTests(DebianPackageTests.Packages packages) => _packages = packages;

    [SkippableFact]
    public async Task The_real_Mender_client_installs_an_app_artifact_with_the_packaged_modules()
    {
        MenderClient.Require();
        DockerEngine.RequireImages();
        using var root = new TempDir("pkg-root");
        foreach (var p in new[] { "mender-app-modules", "mender-app-gen" })
        {
            Cmd.Ok("dpkg-deb", "-x", _packages.Deb(p), root.Path);
        }

        // Configs as packaged, with only the locations moved into the test's directories.
        using var work = new TempDir("pkg-work");
        var app = Unique.Name("pkg");
        var image = $"appmodule-pkg/{app}:1.0";
        DockerEngine.DockerOk("tag", "appmodule/web:1.0", image);
        try
        {
            using var client = new MenderClient();
            client.AddModule("app", Path.Combine(root.Path, "usr/share/mender/modules/v3/app"));
            var appConf = File.ReadAllText(Path.Combine(root.Path, "etc/mender/mender-app.conf"))
                .Replace("\"/data/mender-app\"", $"\"{work.Dir("store")}\"", StringComparison.Ordinal)
                .Replace("\"/usr/share/mender/app-modules/v1\"", $"\"{Path.Combine(root.Path, "usr/share/mender/app-modules/v1")}\"", StringComparison.Ordinal);
            Assert.Contains(work.Path, appConf, StringComparison.Ordinal);
            client.WriteEtc("mender-app.conf", appConf);
            var composeConf = File.ReadAllText(Path.Combine(root.Path, "etc/mender/mender-app-docker-compose.conf"))
                .Replace("\"/var/lib/mender-app/docker-compose\"", $"\"{work.Dir("compose-state")}\"", StringComparison.Ordinal);
            Assert.Contains(work.Path, composeConf, StringComparison.Ordinal);
            client.WriteEtc("mender-app-docker-compose.conf", composeConf + "\nsoak_seconds = 1\n");

            var port = FreePort();
            work.Write("manifests/docker-compose.yml", $"services:\n  web:\n    image: {image}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
            var artifact = work.File("web-1.mender");
            var gen = Cmd.Run(Path.Combine(root.Path, "usr/bin/app-gen"), ["--artifact-name", "pkg-web-1", "--device-type", "test-device",
                "--platform", "linux/amd64", "--application-name", app, "--orchestrator", "docker-compose",
                "--manifests-dir", work.File("manifests"), "--output-path", artifact]);
            Assert.True(gen.ExitCode == 0, gen.ToString());

            var install = client.Install(artifact);
            Assert.True(install.ExitCode == 0, install.ToString());
            var commit = client.Commit();
            Assert.True(commit.ExitCode == 0, commit.ToString());
            Assert.Equal("pkg-web-1", client.ShowArtifact());
            Assert.Equal("web 1.0", await AnswerAsync(port));
        }
        finally
        {
            Cmd.Run(DockerEngine.Cli, ["compose", "-p", app, "down", "--rmi", "all"]);
            foreach (var c in DockerEngine.Docker("ps", "-aq", "--filter", $"label=com.docker.compose.project={app}").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                DockerEngine.Docker("rm", "-f", c);
            }

            DockerEngine.Docker("rmi", image);
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    private static async Task<string> AnswerAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return (await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"))).Trim();
    }
}
