using AppModule.Artifacts;
using TestSupport;

namespace ArtifactGen.Tests;

/// <summary>
/// FileApiTree must write exactly what the real Mender client 3.4 hands to an Update Module. A tiny
/// shell module copies the client's tree in ArtifactInstall; the two trees are compared file by file.
/// </summary>
[Collection("images")]
public sealed class ClientTreeTests(ImagesFixture images) : IDisposable
{
    private readonly ArtifactGen.Tests.TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private const string CaptureModule = """
        #!/bin/sh
        # Copies the File API tree as the client wrote it, in ArtifactInstall; answers every query with nothing.
        case "$1" in
          ArtifactInstall) cp -a "$2/." "$CAPTURE/" ;;
        esac
        exit 0
        """;

    private async Task CompareWithClient(string artifact, string deviceType)
    {
        MenderClient.Require();
        using var client = new MenderClient(deviceType: deviceType, initialArtifact: "initial");
        var module = _dir.Write("capture-module", CaptureModule);
        File.SetUnixFileMode(module, (UnixFileMode)0b111_101_101);
        client.AddModule("app", module);
        var capture = _dir["client-tree"];
        Directory.CreateDirectory(capture);
        client.Environment["CAPTURE"] = capture;
        var r = client.Install(artifact);
        Assert.True(r.ExitCode == 0, r.ToString());

        var ours = _dir["our-tree"];
        await FileApiTree.WriteAsync(artifact, ours, new DeviceState("initial", "", deviceType), new ArtifactReadOptions(), CancellationToken.None);
        var clientFiles = Files(capture);
        var ourFiles = Files(ours);
        Assert.Equal(clientFiles.Keys.Order(StringComparer.Ordinal), ourFiles.Keys.Order(StringComparer.Ordinal));
        foreach (var (rel, bytes) in clientFiles)
            Assert.True(bytes.SequenceEqual(ourFiles[rel]), $"{rel} differs:\nclient: {System.Text.Encoding.UTF8.GetString(bytes)}\nours:   {System.Text.Encoding.UTF8.GetString(ourFiles[rel])}");
        Assert.True(Directory.Exists(Path.Combine(ours, "tmp")));
    }

    private static Dictionary<string, byte[]> Files(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(p => Path.GetRelativePath(root, p), File.ReadAllBytes);

    [SkippableFact]
    public async Task The_tree_of_an_app_gen_artifact_matches_what_the_mender_client_writes()
    {
        _dir.Write("m/docker-compose.yml", $"services:\n  web:\n    image: {images.Web}\n");
        var artifact = _dir["a.mender"];
        // (no --depends: the client checks them against its stored provides and would refuse the install)
        var r = Tools.Run(Tools.AppGen, ["-n", "tree-1", "-t", "test-device", "-a", "treeapp", "-r", "docker-compose", "-p", "linux/amd64", "-m", _dir["m"],
            "-o", artifact, "-g", "grp-a", "--provides", "x.y:1", "--k8s-namespace", "n<s>&", "-q"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        await CompareWithClient(artifact, "test-device");
    }

    [SkippableFact]
    public async Task The_tree_of_a_mender_artifact_module_image_with_numbers_and_nested_meta_data_matches_the_client()
    {
        var f = _dir.Write("in/a.txt", "payload\n");
        var meta = _dir.Write("in/meta.json", "{\"version\":\"1.0\",\"application_name\":\"demo\",\"big\":12345678901234567890,\"small\":0.0000001,\"orchestrator\":\"docker-compose\",\"platform\":\"linux/amd64\",\"images\":[],\"env\":{\"Z\":\"<z>&\",\"A\":\"a\\nb\"}}");
        var artifact = _dir["m.mender"];
        Tools.MustRun(Tool.MenderArtifact, "write", "module-image", "-T", "app", "-t", "test-device", "-n", "tree-3", "-o", artifact, "-f", f,
            "--meta-data", meta, "--software-name", "demo", "--software-version", "1.2.3", "--compression", "lzma");
        await CompareWithClient(artifact, "test-device");
    }
}
