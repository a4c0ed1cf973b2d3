using System.Text.RegularExpressions;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Settings of the k8s sub-module, from <c>/etc/mender/mender-app-k8s.conf</c> (TOML, or the
/// reference's shell-style <c>KEY=VALUE</c> lines; path overridable with <c>MENDER_APP_K8S_CONFIG</c>)
/// and the context the <c>app</c> module passes from the artifact's meta-data (<c>K8S_NAMESPACE</c>,
/// <c>K8S_CTR_ADDRESS</c>, the platform).
/// </summary>
public sealed partial record K8sSettings
{
    public const string DefaultConfigPath = "/etc/mender/mender-app-k8s.conf";
    public static readonly string ConfigPathVariable = SubModuleContext.ConfigPathVariable("k8s");

    /// <summary>The artifact's env key for the namespace of its objects.</summary>
    public const string NamespaceVariable = "K8S_NAMESPACE";

    /// <summary>The artifact's env key for containerd's socket.</summary>
    public const string ContainerdAddressVariable = "K8S_CTR_ADDRESS";

    /// <summary>Namespace for namespaced objects that name none.</summary>
    public required string Namespace { get; init; }

    /// <summary>True when the namespace came from the config, the environment or the kubeconfig context, false for the built-in "default".</summary>
    public bool NamespaceExplicit { get; init; }

    /// <summary>A kubeconfig path from the config file; null means the usual places.</summary>
    public string? KubeConfig { get; init; }

    public string? Context { get; init; }

    public required string FieldManager { get; init; }

    public bool ForceConflicts { get; init; } = true;

    public TimeSpan RolloutTimeout { get; init; } = TimeSpan.FromMinutes(5);

    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public bool PurgePvcs { get; init; }

    /// <summary>Where the applied manifests of each application are kept (for EXPORT_MANIFEST, ROLLBACK, prune).</summary>
    public required string StateDirectory { get; init; }

    public required string CtrCommand { get; init; }

    public required string ContainerdAddress { get; init; }

    public required string ContainerdNamespace { get; init; }

    public TimeSpan CtrTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>MENDER_APP_UPDATE_MODULE_PLATFORM, e.g. linux/arm/v7; null imports the host platform.</summary>
    public string? Platform { get; init; }

    public string ConfigSource { get; init; } = DefaultConfigPath;

    /// <summary>What host access the manifests may ask for (<c>allow_host_access</c>; default: none).</summary>
    public HostAccessPolicy HostAccess { get; init; } = HostAccessPolicy.Strict(DefaultConfigPath);

    public static K8sSettings From(ConfigFile file, SubModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(context);
        var ns = context.Get(NamespaceVariable) ?? NonEmpty(file.GetString("namespace"));
        if (ns is not null && !DnsLabel().IsMatch(ns))
        {
            var where = context.Get(NamespaceVariable) is not null ? $"{NamespaceVariable} (from the artifact's env meta-data)" : $"{file.Source}: namespace";
            throw new ConfigException($"{where} = \"{ns}\" is not a valid namespace name (lower-case letters, digits and '-', at most 63); fix it");
        }

        var fieldManager = file.GetString("field_manager", "mender-app");
        if (fieldManager.Length is 0 or > 128)
        {
            throw new ConfigException($"{file.Source}: field_manager must be 1 to 128 characters");
        }

        var stateDir = file.GetString("state_dir", "/data/mender-app-k8s");
        if (!Path.IsPathRooted(stateDir))
        {
            throw new ConfigException($"{file.Source}: state_dir = \"{stateDir}\" must be an absolute path");
        }

        var address = context.Get(ContainerdAddressVariable) ?? NonEmpty(file.GetString("containerd_address")) ?? DefaultContainerdAddress();
        return new K8sSettings
        {
            Namespace = ns ?? "default",
            NamespaceExplicit = ns is not null,
            KubeConfig = NonEmpty(file.GetString("kubeconfig")),
            Context = NonEmpty(file.GetString("context")),
            FieldManager = fieldManager,
            ForceConflicts = file.GetBool("force_conflicts", true),
            RolloutTimeout = file.GetSeconds("rollout_timeout_seconds", TimeSpan.FromMinutes(5)),
            RequestTimeout = file.GetSeconds("request_timeout_seconds", TimeSpan.FromSeconds(30)),
            PollInterval = TimeSpan.FromMilliseconds(file.GetInt("poll_interval_ms", 1000, 10, 60_000)),
            PurgePvcs = file.GetBool("purge_pvcs", false),
            StateDirectory = stateDir,
            // CTR_COMMAND is the reference's key; ctr_command ours. Both may name a path or a command on PATH.
            CtrCommand = NonEmpty(file.GetString("ctr_command")) ?? "ctr",
            ContainerdAddress = address,
            ContainerdNamespace = NonEmpty(file.GetString("containerd_namespace")) ?? "k8s.io",
            CtrTimeout = file.GetSeconds("ctr_timeout_seconds", TimeSpan.FromMinutes(10)),
            Platform = context.Platform,
            ConfigSource = file.Source,
            HostAccess = HostAccessSettings.From(file),
        };
    }

    /// <summary>containerd's standard socket, or k3s's embedded containerd when only that one exists.</summary>
    private static string DefaultContainerdAddress()
    {
        const string standard = "/run/containerd/containerd.sock";
        const string k3s = "/run/k3s/containerd/containerd.sock";
        return !File.Exists(standard) && File.Exists(k3s) ? k3s : standard;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();
}
