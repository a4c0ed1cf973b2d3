namespace Kubernetes.Tests;

[Collection("kube")]
public sealed class ImageTests(KubeFixture fx)
{
    private K8sRun WithContainerd(string prefix, string ns = ContainerdServer.DefaultNamespace)
    {
        fx.Containerd.Require();
        var k = new K8sRun(fx, prefix);
        File.WriteAllText(k.ConfigPath, File.ReadAllText(k.ConfigPath).Replace(k.Dir.File("no-containerd.sock"), fx.Containerd.Address, StringComparison.Ordinal)
                                       + $"containerd_namespace = \"{ns}\"\n");
        return k;
    }

    [SkippableFact]
    public void Load_save_delete_round_trip_an_image_through_containerd_for_the_artifact_platform()
    {
        using var k = WithContainerd("img");
        var docker = ImageArchives.Of("appmodule/web:2.0");
        var id = DockerEngine.ImageId("appmodule/web:2.0");
        k.Env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = "linux/amd64";
        var url = "appmodule/web:2.0";

        k.Ok("LOAD", k.App, url, docker, url);
        Assert.Equal(id, fx.Containerd.ImageId(url));

        var saved = k.Dir.File("saved/web.tar");
        k.Ok("SAVE", k.App, url, saved);
        Assert.True(new FileInfo(saved).Length > 100_000);

        k.Ok("DELETE", url);
        Assert.False(fx.Containerd.HasImage(url));
        k.Ok("DELETE", url); // already gone: still fine

        k.Ok("LOAD", k.App, url, saved, url);
        Assert.Equal(id, fx.Containerd.ImageId(url));
        k.Ok("DELETE", url);
    }

    [SkippableFact]
    public void Storage_names_containerd_s_root_its_free_space_and_the_layers_and_id_of_a_loaded_image()
    {
        using var k = WithContainerd("storage");
        k.Env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = "linux/amd64";
        var url = "appmodule/web:2.0";
        k.Ok("LOAD", k.App, url, ImageArchives.Of(url), url);

        using var doc = System.Text.Json.JsonDocument.Parse(k.Ok("STORAGE").Stdout);
        var s = doc.RootElement;
        Assert.Equal(fx.Containerd.Root, s.GetProperty("data_root").GetString());
        Assert.True(s.GetProperty("free_bytes").GetInt64() > 0);
        Assert.False(s.GetProperty("stages_archive").GetBoolean());
        Assert.Equal(2, s.GetProperty("copies_per_layer").GetInt32());
        Assert.Contains(DockerEngine.ImageId(url), s.GetProperty("images").EnumerateArray().Select(i => i.GetString()));

        // Every layer of the image, by chain ID (OCI image spec: sha256 of "<parent chain ID> <diff ID>"), as the engine keeps it.
        var diffs = DockerEngine.DockerOk("image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", url).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var chain = diffs[0];
        var chains = new List<string> { chain };
        foreach (var diff in diffs.Skip(1))
        {
            chain = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes($"{chain} {diff}")));
            chains.Add(chain);
        }

        var layers = s.GetProperty("layers").EnumerateArray().Select(l => l.GetString()).ToHashSet();
        Assert.All(chains, c => Assert.Contains(c, layers));
        k.Ok("DELETE", url);
    }

    [SkippableFact]
    public void Load_of_an_archive_for_another_platform_fails_naming_the_platform()
    {
        using var k = WithContainerd("plat", "plat-test");
        k.Env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = "linux/arm/v7";
        var r = k.Fails(1, "LOAD", k.App, "appmodule/web:1.0", ImageArchives.Of("appmodule/web:1.0"), "appmodule/web:1.0");
        Assert.Contains("linux/arm/v7", r.Stderr, StringComparison.Ordinal);
        Assert.False(fx.Containerd.HasImage("appmodule/web:1.0", "plat-test"));
    }

    [SkippableFact]
    public void Load_fails_when_the_archive_does_not_hold_the_url()
    {
        using var k = WithContainerd("wrongurl", "wrongurl-test");
        var r = k.Fails(1, "LOAD", k.App, "example.com/other:3", ImageArchives.Of("appmodule/web:1.0"), "example.com/other:3");
        Assert.Contains("holds no image named example.com/other:3", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("docker.io/appmodule/web:1.0", r.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Delete_refuses_an_image_a_workload_of_the_cluster_still_names_and_purge_removes_the_app_images()
    {
        using var k = WithContainerd("inuse");
        var url = $"docker.io/inuse/{k.App}:1";
        fx.Containerd.Import(ImageArchives.Of("appmodule/web:1.0"));
        fx.Containerd.Tag("appmodule/web:1.0", url);
        var dir = k.Manifests("m", ("web.yaml", k.Deployment("web", image: $"inuse/{k.App}:1")));
        k.Ok("ROLLOUT", k.App, dir);

        var r = k.Fails(1, "DELETE", url);
        Assert.Contains($"in use by deployment {k.Ns}/web", r.Stderr, StringComparison.Ordinal);
        Assert.True(fx.Containerd.HasImage(url));

        k.Ok("PURGE", k.App);
        Assert.False(fx.Containerd.HasImage(url));
        Assert.True(fx.Containerd.HasImage("appmodule/web:1.0"));
    }

    [SkippableFact]
    public void Reqs_reports_the_api_server_and_containerd_whose_address_k8s_ctr_address_from_the_artifact_sets()
    {
        fx.Containerd.Require();
        using var k = new K8sRun(fx, "reqs");
        k.Fails(4, "REQS"); // the config names a socket that does not exist
        k.Env["K8S_CTR_ADDRESS"] = fx.Containerd.Address;
        var r = k.Ok("REQS");
        Assert.Contains($"api-server:ok {fx.Api.Url}", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("v1.31.0-fake", r.Stdout, StringComparison.Ordinal);
        Assert.Contains($"containerd:ok {fx.Containerd.Address}", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("manifests:", r.Stdout, StringComparison.Ordinal);

        // The new version's manifests (app sets MENDER_APP_MANIFESTS_DIR on the pre-check REQS).
        using var dir = new TempDir("k8s-reqs");
        k.Env["MENDER_APP_MANIFESTS_DIR"] = dir.Path;
        dir.Write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n");
        Assert.Contains("manifests:ok 1 object(s)", k.Ok("REQS").Stdout, StringComparison.Ordinal);
        dir.Write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [broken\n");
        Assert.Matches("(?m)^manifests:error .*app.yaml", k.Fails(4, "REQS").Stdout);
    }
}
