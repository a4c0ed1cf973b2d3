namespace Kubernetes.Tests;

/// <summary>
/// The device's host-access policy on k8s manifests: hostPath of / or of an engine socket, privileged
/// containers, hostPID and hostNetwork, in any workload's pod template, are refused at REQS (before the
/// running version stops) and again at ROLLOUT (before anything is applied), unless allow_host_access
/// names them; REQS also refuses an artifact for another platform than this machine's.
/// </summary>
[Collection("kube")]
public sealed class HostAccessTests(KubeFixture fx)
{
    private static string Pod(string ns, string spec) => $"""
        apiVersion: v1
        kind: Pod
        metadata:
          name: p
          namespace: {ns}
        spec:
        {spec}
        """;

    private static readonly (string Kind, string Spec, string Refusal)[] Cases =
    [
        ("root-mount", "  containers:\n  - name: main\n    image: appmodule/web:1.0\n  volumes:\n  - name: host\n    hostPath:\n      path: /\n",
            "mounts the host's root directory (spec.volumes: hostPath /)"),
        ("engine-socket", "  containers:\n  - name: main\n    image: appmodule/web:1.0\n  volumes:\n  - name: sock\n    hostPath:\n      path: /run/containerd/containerd.sock\n",
            "mounts the engine socket or its directory /run/containerd/containerd.sock"),
        ("privileged", "  containers:\n  - name: main\n    image: appmodule/web:1.0\n    securityContext:\n      privileged: true\n",
            "runs container main privileged (spec.containers[].securityContext.privileged: true)"),
        ("host-pid", "  hostPID: true\n  containers:\n  - name: main\n    image: appmodule/web:1.0\n",
            "shares the host's PID namespace (spec.hostPID: true)"),
        ("host-network", "  hostNetwork: true\n  containers:\n  - name: main\n    image: appmodule/web:1.0\n",
            "shares the host's network namespace (spec.hostNetwork: true)"),
    ];

    [Fact]
    public void Reqs_refuses_each_kind_of_host_access_unless_the_config_names_it()
    {
        foreach (var (kind, spec, refusal) in Cases)
        {
            using var strict = new K8sRun(fx, "hostreqs");
            using var dir = new TempDir("k8s-host");
            dir.Write("app.yaml", Pod(strict.Ns, spec));
            strict.Env["MENDER_APP_MANIFESTS_DIR"] = dir.Path;
            var r = strict.Run("REQS");
            Assert.True(r.ExitCode == 4, $"{kind}: {r}");
            Assert.Matches($"(?m)^manifests:error Pod p \\(.*app.yaml:1\\) ", r.Stdout);
            Assert.Contains(refusal, r.Stdout, StringComparison.Ordinal);
            Assert.Contains($"host access \"{kind}\" is refused unless allow_host_access in ", r.Stdout, StringComparison.Ordinal);

            using var allowing = new K8sRun(fx, "hostok", $"allow_host_access = [\"{kind}\"]\n");
            allowing.Env["MENDER_APP_MANIFESTS_DIR"] = dir.Path;
            Assert.Contains("manifests:ok 1 object(s)", allowing.Run("REQS").Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Rollout_refuses_host_access_in_a_workload_template_before_anything_is_applied()
    {
        using var k = new K8sRun(fx, "hostroll");
        var deployment = k.Deployment("web").Replace("      containers:\n", "      hostNetwork: true\n      containers:\n", StringComparison.Ordinal);
        Assert.Contains("hostNetwork: true", deployment, StringComparison.Ordinal);
        var dir = k.Manifests("m", ("web.yaml", deployment));
        var before = fx.Api.Requests.Count;

        var r = k.Fails(1, "ROLLOUT", k.App, dir);

        Assert.Contains("Deployment web (", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("shares the host's network namespace (spec.template.spec.hostNetwork: true)", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Api.Requests.Skip(before), q => q.StartsWith("PATCH", StringComparison.Ordinal));
        Assert.False(fx.Api.NamespaceExists(k.Ns));
    }

    [Fact]
    public void Reqs_refuses_an_artifact_for_another_platform_than_this_machine()
    {
        using var k = new K8sRun(fx, "platform");
        var machine = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64 ? "linux/amd64" : "linux/arm64";
        k.Env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = machine;
        Assert.Contains($"platform:ok {machine} on a {machine} machine", k.Run("REQS").Stdout, StringComparison.Ordinal);
        var other = machine == "linux/amd64" ? "linux/arm64" : "linux/amd64";
        k.Env["MENDER_APP_UPDATE_MODULE_PLATFORM"] = other;
        var r = k.Run("REQS");
        Assert.Equal(4, r.ExitCode);
        Assert.Contains($"platform:error the artifact is for {other}, but this machine is {machine}", r.Stdout, StringComparison.Ordinal);
    }
}
