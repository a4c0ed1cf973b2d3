namespace Hardening.Tests;

/// <summary>The private engines the fault tests start leave the host's Docker networking as they found it.</summary>
public sealed class PrivateEngineTests
{
    [SkippableFact]
    public void A_private_engine_runs_a_container_on_a_bridge_of_its_own_and_leaves_docker0_in_place()
    {
        DockerEngine.RequireImages();
        // docker0 belongs to the shared engine (CI's has one); where none exists, a stand-in shows whether it would be deleted.
        var standIn = !LinkExists("docker0");
        if (standIn)
        {
            Cmd.Ok("ip", "link", "add", "docker0", "type", "bridge");
        }

        try
        {
            string bridge;
            using (var engine = new PrivateDockerd())
            {
                bridge = engine.Bridge;
                engine.CopyImages("appmodule/busybox:base");
                var run = engine.Docker("run", "--rm", "appmodule/busybox:base", "sh", "-c", "ip -4 -o addr show eth0");
                Assert.True(run.ExitCode == 0, run.ToString());
                Assert.True(LinkExists("docker0"), "starting a private engine deleted docker0");
                Assert.True(LinkExists(bridge), $"the private engine's bridge {bridge} is missing");
            }

            Assert.True(LinkExists("docker0"), "stopping a private engine deleted docker0");
            Assert.False(LinkExists(bridge), $"the private engine's bridge {bridge} was left behind");
        }
        finally
        {
            if (standIn)
            {
                Cmd.Run("ip", ["link", "del", "docker0"]);
            }
        }
    }

    [SkippableFact]
    public void A_private_podman_runs_a_pod_under_its_own_root_and_leaves_nothing_mounted_after_dispose()
    {
        string root;
        using (var podman = new PrivatePodman())
        {
            root = podman.Root;
            podman.CopyImages("appmodule/busybox:base");
            Assert.NotNull(podman.ImageId("appmodule/busybox:base"));
            podman.PodmanOk("pod", "create", "--name", "private-pod");
            var run = podman.Podman("run", "--rm", "--pod", "private-pod", "appmodule/busybox:base", "sh", "-c", "ulimit -n");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Equal("1024", run.Stdout.Trim());
            Assert.Contains(podman.Containers(), c => c["Name"]?.GetValue<string>()?.EndsWith("-infra", StringComparison.Ordinal) == true);
            Assert.Contains(root, podman.PodmanOk("info", "--format", "{{.Store.GraphRoot}}"), StringComparison.Ordinal);
        }

        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mounts"), l => l.Contains(root, StringComparison.Ordinal));
        Assert.False(Directory.Exists(root), $"{root} was left behind");
    }

    private static bool LinkExists(string name) => Cmd.Run("ip", ["link", "show", name]).ExitCode == 0;
}
