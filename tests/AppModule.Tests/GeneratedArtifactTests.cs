namespace AppModule.Tests;

/// <summary>
/// Artifacts written by our own `app-gen` (full image, whole-image delta, deep delta), installed through
/// the real Mender client with our `app` and docker-compose modules on the real engine.
/// </summary>
public class GeneratedArtifactTests
{
    private static void Ok(CmdResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    private static string RunningImage(string app) =>
        DockerEngine.DockerOk("inspect", "--format", "{{.Image}}", ComposeRig.Container(app));

    [SkippableFact]
    public void Full_whole_image_delta_and_deep_delta_artifacts_from_app_gen_install_and_run_the_new_image_ids()
    {
        using var rig = new ComposeRig();
        var app = Unique.Name("gen");
        var port = WebApps.FreePort();
        string Tag(string source, string version)
        {
            var t = $"{app}/web:{version}";
            DockerEngine.DockerOk("tag", source, t);
            return t;
        }

        var v1 = Tag("appmodule/web:1.0", "1.0");
        var v2 = Tag("appmodule/web:2.0", "2.0");
        var v3 = Tag("appmodule/web:nohealth", "3.0");
        rig.Web.Own(app, v1, v2, v3);
        string Generate(string name, string image, string? current, bool deep)
        {
            var manifests = Path.Combine(rig.Mender.Artifacts, name + "-manifests");
            Directory.CreateDirectory(manifests);
            File.WriteAllText(Path.Combine(manifests, "docker-compose.yml"),
                $"services:\n  web:\n    image: {image}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n");
            var output = Path.Combine(rig.Mender.Artifacts, name + ".mender");
            var args = new List<string> { "--artifact-name", name, "--device-type", "test-device", "--platform", "linux/amd64",
                "--application-name", app, "--orchestrator", "docker-compose", "--manifests-dir", manifests,
                "--image", current is null ? image : $"{current},{image}", "--output-path", output, "--quiet" };
            if (deep)
            {
                args.Add("--deep-delta");
            }

            Ok(Cmd.Run(Repo.Binary("app-gen"), args, timeout: TimeSpan.FromMinutes(5)));
            return output;
        }

        var full = Generate("gen-v1", v1, null, false);
        var delta = Generate("gen-v2", v2, v1, false);
        var deep = Generate("gen-v3", v3, v2, true);
        Assert.True(new FileInfo(deep).Length < new FileInfo(full).Length, "a deep delta sharing the base layer is smaller than the full artifact");

        // Only LOAD may bring the new images back: the generator's tags go away.
        DockerEngine.DockerOk("image", "rm", v2, v3);

        Ok(rig.Client.Install(full));
        Ok(rig.Client.Commit());
        Assert.Equal("web 1.0", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:1.0"), RunningImage(app));

        Ok(rig.Client.Install(delta));
        Ok(rig.Client.Commit());
        Assert.Equal("web 2.0", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:2.0"), RunningImage(app));

        Ok(rig.Client.Install(deep));
        Ok(rig.Client.Commit());
        Assert.Equal("web nohealth", WebApps.Answer(port));
        Assert.Equal(DockerEngine.ImageId("appmodule/web:nohealth"), RunningImage(app));
        Assert.Equal("gen-v3", rig.Client.ShowArtifact());
    }
}
