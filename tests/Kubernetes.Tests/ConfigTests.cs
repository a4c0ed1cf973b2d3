using System.Text.Json.Nodes;

namespace Kubernetes.Tests;

[Collection("kube")]
public sealed class ConfigTests(KubeFixture fx)
{
    private static string Cm(string name, string? ns = null) =>
        $"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{(ns is null ? string.Empty : $"  namespace: {ns}\n")}data:\n  a: b\n";

    [Fact]
    public void Objects_without_a_namespace_go_to_k8s_namespace_from_the_artifact_over_the_config_file()
    {
        using var k = new K8sRun(fx, "nsenv");
        var configured = k.App + "-conf";
        File.AppendAllText(k.ConfigPath, $"namespace = \"{configured}\"\n");
        var dir = k.Manifests("m", ("cm.yaml", Cm("plain")));

        k.Ok("ROLLOUT", k.App, dir);
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", configured, "plain"));

        k.Env["K8S_NAMESPACE"] = k.Ns;
        k.Ok("ROLLOUT", k.App, dir);
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", k.Ns, "plain"));
        Assert.Null(fx.Api.Get("v1", "ConfigMap", configured, "plain")); // pruned: moved namespaces
        fx.Api.DeleteNamespace(configured);
    }

    [Fact]
    public void The_kubeconfig_context_namespace_is_used_when_nothing_else_names_one()
    {
        using var k = new K8sRun(fx, "ctxns");
        var kubeconfig = fx.Api.WriteKubeConfig(k.Dir.File("kubeconfig"), contextNamespace: k.Ns);
        File.WriteAllText(k.ConfigPath, File.ReadAllText(k.ConfigPath).Replace(fx.KubeConfig, kubeconfig, StringComparison.Ordinal));
        k.Ok("ROLLOUT", k.App, k.Manifests("m", ("cm.yaml", Cm("ctx"))));
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", k.Ns, "ctx"));
    }

    [Fact]
    public void The_reference_shell_style_config_and_kubeconfig_from_the_environment_work()
    {
        using var k = new K8sRun(fx, "shell");
        // The reference's KEY=VALUE lines (CTR_COMMAND is a reference key), no kubeconfig line: KUBECONFIG is used.
        File.WriteAllText(k.ConfigPath, $"""
            # shell style, as the reference wrote it
            KUBECTL_COMMAND=kubectl
            CTR_COMMAND=/usr/bin/ctr
            export NAMESPACE={k.Ns}
            STATE_DIR={k.Dir.Dir("state2")}
            ROLLOUT_TIMEOUT_SECONDS=3
            """);
        k.Env["KUBECONFIG"] = fx.KubeConfig;
        k.Ok("ROLLOUT", k.App, k.Manifests("m", ("cm.yaml", Cm("shell"))));
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", k.Ns, "shell"));
        Assert.True(Directory.Exists(Path.Combine(k.Dir.Path, "state2", k.App, "current")));
    }

    [Fact]
    public void Config_errors_exit_3_naming_the_file_and_the_fix()
    {
        using var k = new K8sRun(fx, "badconf");
        var dir = k.Manifests("m", ("cm.yaml", Cm("x")));
        k.Env["K8S_NAMESPACE"] = "Not_A_Namespace";
        var r = k.Fails(3, "ROLLOUT", k.App, dir);
        Assert.Contains("K8S_NAMESPACE", r.Stderr, StringComparison.Ordinal);
        k.Env["K8S_NAMESPACE"] = null;

        File.AppendAllText(k.ConfigPath, "rollout_timeout_seconds = \"soon\"\n");
        r = k.Fails(3, "ROLLOUT", k.App, dir);
        Assert.Contains(k.ConfigPath, r.Stderr, StringComparison.Ordinal);

        File.WriteAllText(k.ConfigPath, $"kubeconfig = \"{k.Dir.File("missing-kubeconfig")}\"\n");
        r = k.Fails(3, "ALIVE", k.App);
        Assert.Contains("missing-kubeconfig\" does not exist", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_refused_token_and_an_unreachable_api_server_are_reported_with_what_to_check()
    {
        using var k = new K8sRun(fx, "auth");
        var bad = fx.Api.WriteKubeConfig(k.Dir.File("bad-kubeconfig"), token: "wrong");
        File.WriteAllText(k.ConfigPath, File.ReadAllText(k.ConfigPath).Replace(fx.KubeConfig, bad, StringComparison.Ordinal));
        var r = k.Fails(1, "ROLLOUT", k.App, k.Manifests("m", ("cm.yaml", Cm("x", k.Ns))));
        Assert.Contains("credentials were refused", r.Stderr, StringComparison.Ordinal);

        // REQS: the API server check fails (exit 4), containerd too (no socket configured here).
        var down = k.Dir.Write("down-kubeconfig", File.ReadAllText(fx.KubeConfig).Replace(fx.Api.Url, "http://127.0.0.1:9", StringComparison.Ordinal));
        File.WriteAllText(k.ConfigPath, File.ReadAllText(k.ConfigPath).Replace(bad, down, StringComparison.Ordinal));
        r = k.Fails(4, "REQS");
        Assert.Contains("api-server:error cannot reach the Kubernetes API server http://127.0.0.1:9", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("containerd:error", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void An_exec_credential_plugin_of_the_kubeconfig_gives_the_token_and_a_failing_one_is_named()
    {
        using var k = new K8sRun(fx, "exec");
        // The plugin, relative to the kubeconfig as kubectl resolves it, answers only when asked the kubectl way.
        var credential = new JsonObject { ["apiVersion"] = "client.authentication.k8s.io/v1", ["kind"] = "ExecCredential", ["status"] = new JsonObject { ["token"] = fx.Api.Token } }.ToJsonString();
        var plugin = k.Dir.Write("bin/credential", $"""
            #!/bin/sh
            case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) echo "not called as a credential plugin" >&2; exit 5;; esac
            if [ "$1" != "--cluster" ] || [ "$PLUGIN_MODE" != "device" ]; then echo "bad arguments: $* ($PLUGIN_MODE)" >&2; exit 6; fi
            echo '{credential}'
            """);
        File.SetUnixFileMode(plugin, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var kubeconfig = k.Dir.Write("kubeconfig", $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {fx.Api.Url}
            users:
            - name: plugin
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: bin/credential
                  args: ["--cluster"]
                  env:
                  - name: PLUGIN_MODE
                    value: device
            contexts:
            - name: fake
              context:
                cluster: fake
                user: plugin
            current-context: fake

            """);
        File.WriteAllText(k.ConfigPath, File.ReadAllText(k.ConfigPath).Replace(fx.KubeConfig, kubeconfig, StringComparison.Ordinal));
        k.Ok("ROLLOUT", k.App, k.Manifests("m", ("cm.yaml", Cm("exec", k.Ns))));
        Assert.NotNull(fx.Api.Get("v1", "ConfigMap", k.Ns, "exec"));

        File.WriteAllText(kubeconfig, File.ReadAllText(kubeconfig).Replace("value: device", "value: other", StringComparison.Ordinal));
        var r = k.Fails(1, "ALIVE", k.App);
        Assert.Contains("exec credential plugin", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("bad arguments: --cluster", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_documented_example_config_is_valid()
    {
        using var k = new K8sRun(fx, "example");
        var example = File.ReadAllText(Path.Combine(Repo.Root, "submodules", "Kubernetes", "mender-app-k8s.conf"));
        File.WriteAllText(k.ConfigPath, example + $"kubeconfig = \"{fx.KubeConfig}\"\n");
        var r = k.Fails(1, "ALIVE", k.App);
        Assert.Contains("no Deployments, StatefulSets or DaemonSets are labelled", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Application_names_that_cannot_be_label_values_are_refused()
    {
        using var k = new K8sRun(fx, "name");
        var r = k.Fails(1, "ALIVE", "my app/with slash");
        Assert.Contains("cannot be used as a Kubernetes label value", r.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>Real clusters serve https with their own CA: the kubeconfig's certificate-authority-data must be honoured.</summary>
public sealed class HttpsTests
{
    [Fact]
    public async Task Rollout_and_reqs_work_over_https_with_the_cluster_ca_from_the_kubeconfig()
    {
        await using var api = await FakeKubeApi.FakeKubeApiServer.StartAsync(https: true);
        using var dir = new TempDir("k8s-https");
        var kubeconfig = api.WriteKubeConfig(dir.File("kubeconfig"));
        Assert.StartsWith("https://127.0.0.1:", api.Url, StringComparison.Ordinal);
        var config = dir.Write("k8s.conf", $"kubeconfig = \"{kubeconfig}\"\nstate_dir = \"{dir.Dir("state")}\"\nrollout_timeout_seconds = 3\npoll_interval_ms = 50\n");
        var manifests = dir.Write("m/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tls\n  namespace: tls-test\ndata:\n  a: b\n");
        var env = new Dictionary<string, string?> { ["MENDER_APP_K8S_CONFIG"] = config, ["KUBECONFIG"] = null, ["K8S_NAMESPACE"] = null };

        var r = Cmd.Run(Repo.Binary("k8s"), ["ROLLOUT", "tlsapp", Path.GetDirectoryName(manifests)!], env);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.NotNull(api.Get("v1", "ConfigMap", "tls-test", "tls"));

        // Without the CA the server is not trusted.
        File.WriteAllText(kubeconfig, File.ReadAllText(kubeconfig).Split("\n").Where(l => !l.Contains("certificate-authority-data", StringComparison.Ordinal)).Aggregate((a, b) => a + "\n" + b));
        r = Cmd.Run(Repo.Binary("k8s"), ["ALIVE", "tlsapp"], env);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot reach the Kubernetes API server https://127.0.0.1:", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_certificate_in_the_kubeconfig_authenticates_as_k3s_writes_it_inline_or_as_files_and_one_from_another_ca_is_refused()
    {
        await using var api = await FakeKubeApi.FakeKubeApiServer.StartAsync(https: true);
        using var dir = new TempDir("k8s-cert");
        var kubeconfig = api.WriteKubeConfig(dir.File("kubeconfig"), clientCertificate: api.IssueClientCertificate("device"));
        Assert.DoesNotContain("token:", File.ReadAllText(kubeconfig), StringComparison.Ordinal);
        var config = dir.Write("k8s.conf", $"kubeconfig = \"{kubeconfig}\"\nstate_dir = \"{dir.Dir("state")}\"\nrollout_timeout_seconds = 3\npoll_interval_ms = 50\n");
        var manifests = dir.Write("m/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cert\n  namespace: cert-test\ndata:\n  a: b\n");
        var env = new Dictionary<string, string?> { ["MENDER_APP_K8S_CONFIG"] = config, ["KUBECONFIG"] = null, ["K8S_NAMESPACE"] = null };

        var r = Cmd.Run(Repo.Binary("k8s"), ["ROLLOUT", "certapp", Path.GetDirectoryName(manifests)!], env);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.NotNull(api.Get("v1", "ConfigMap", "cert-test", "cert"));

        // The same as files next to the kubeconfig, named relative to it (kubectl's rule), with the server's CA as a file too.
        var (certificate, key) = api.IssueClientCertificate("device");
        dir.Write("pki/client.crt", certificate);
        dir.Write("pki/client.key", key);
        dir.Write("pki/ca.crt", api.CertificatePem!);
        File.WriteAllText(kubeconfig, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {api.Url}
                certificate-authority: pki/ca.crt
            users:
            - name: device
              user:
                client-certificate: pki/client.crt
                client-key: pki/client.key
            contexts:
            - name: fake
              context:
                cluster: fake
                user: device
            current-context: fake

            """);
        r = Cmd.Run(Repo.Binary("k8s"), ["ALIVE", "certapp"], env);
        Assert.True(r.ExitCode == 1 && r.Stderr.Contains("no Deployments, StatefulSets or DaemonSets are labelled", StringComparison.Ordinal), r.ToString());

        // A certificate the cluster's client CA did not issue is refused like a wrong token.
        var (stranger, strangerKey) = api.IssueClientCertificate("device", trusted: false);
        dir.Write("pki/client.crt", stranger);
        dir.Write("pki/client.key", strangerKey);
        r = Cmd.Run(Repo.Binary("k8s"), ["ALIVE", "certapp"], env);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("credentials were refused", r.Stderr, StringComparison.Ordinal);
    }
}
