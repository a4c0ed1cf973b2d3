namespace Packaging.Tests;

/// <summary>
/// The linux-arm64 Native AOT binaries (cross-compiled on this x64 host by `build/publish.sh linux-arm64`)
/// run under qemu-aarch64-static with a minimal arm64 root holding libc and libssl.
/// </summary>
public sealed class Arm64Tests : IClassFixture<Arm64Tests.Arm64Root>
{
    private readonly Arm64Root _root;

    public Arm64Tests(Arm64Root root) => _root = root;

    public sealed class Arm64Root
    {
        public Arm64Root()
        {
            BinDir = Path.Combine(Repo.Root, "out", "linux-arm64");
            Sysroot = Path.Combine(Repo.Root, "out", "arm64-root");
            var r = Cmd.Run(Repo.Script("build/arm64-sysroot.sh"), [Sysroot], timeout: TimeSpan.FromMinutes(5));
            Problem = r.ExitCode != 0 ? "cannot make the arm64 root: " + r : null;
        }

        public string BinDir { get; }

        public string Sysroot { get; }

        public string? Problem { get; }

        public CmdResult Run(string binary, IEnumerable<string> args, IDictionary<string, string?>? env = null, string? cwd = null)
        {
            var exe = Path.Combine(BinDir, binary);
            Assert.True(File.Exists(exe), $"{exe} missing: run `build/publish.sh linux-arm64` (make test does)");
            return Cmd.Run(Tool.QemuAarch64, new[] { "-L", Sysroot, exe }.Concat(args), env, cwd, TimeSpan.FromMinutes(3));
        }
    }

    internal void Require()
    {
        Requires.Program("qemu-user-static", "qemu-aarch64-static", "`apt-get install qemu-user-static` (build/deps.sh does it)");
        Assert.Null(_root.Problem);
    }

    [SkippableFact]
    public void The_binaries_are_arm64_executables()
    {
        Require();
        foreach (var b in new[] { "app", "docker-compose", "k8s", "podman", "app-gen", "fleet-updater", "fleet-agent" })
        {
            Assert.StartsWith("ELF 64-bit LSB pie executable, ARM aarch64", Cmd.Ok(Tool.File, "-b", Path.Combine(_root.BinDir, b)), StringComparison.Ordinal);
        }
    }

    [SkippableFact]
    public void The_app_module_answers_its_queries_under_qemu()
    {
        Require();
        using var tree = new TempDir("tree");
        var yes = _root.Run("app", ["SupportsRollback", tree.Path]);
        Assert.True(yes.ExitCode == 0, yes.ToString());
        Assert.Equal("Yes\n", yes.Stdout);
        var reboot = _root.Run("app", ["NeedsArtifactReboot", tree.Path]);
        Assert.Equal("No\n", reboot.Stdout);
    }

    [SkippableFact]
    public void App_gen_writes_an_artifact_that_mender_artifact_validates()
    {
        Require();
        DockerEngine.RequireImages();
        using var dir = new TempDir("arm64-gen");
        var image = dir.File("web.tar");
        DockerEngine.DockerOk("image", "save", "-o", image, "appmodule/web:1.0");
        dir.Write("manifests/docker-compose.yml", "services:\n  web:\n    image: appmodule/web:1.0\n");
        var output = dir.File("web.mender");
        var r = _root.Run("app-gen", ["--artifact-name", "arm64-web-1", "--device-type", "test-device", "--platform", "linux/amd64",
            "--application-name", "web", "--orchestrator", "docker-compose", "--manifests-dir", dir.File("manifests"),
            "--image-file", image, "--image", "appmodule/web:1.0", "--output-path", output]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var validate = Cmd.Run(Tool.MenderArtifact, "validate", output);
        Assert.True(validate.ExitCode == 0, validate.ToString());
    }

    [SkippableFact]
    public void The_docker_compose_sub_module_checks_its_requirements_against_the_engine()
    {
        Require();
        DockerEngine.Require();
        var r = _root.Run("docker-compose", ["REQS"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches("(?m)^docker-engine:ok", r.Stdout);
    }
}
