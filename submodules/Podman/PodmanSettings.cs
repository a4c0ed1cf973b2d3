using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Podman;

/// <summary>
/// Settings of the podman sub-module, from <c>/etc/mender/mender-app-podman.conf</c> (TOML, or shell-style
/// <c>KEY=VALUE</c> lines; another file with <c>MENDER_APP_PODMAN_CONF</c>). Every key is optional:
/// <list type="table">
/// <item><term>podman_command</term><description>the podman CLI, a path or a name on PATH (default <c>podman</c>)</description></item>
/// <item><term>podman_args</term><description>global options before every command, e.g. <c>["--root", "/data/podman"]</c> for a store of its own (default none)</description></item>
/// <item><term>containers_conf</term><description>the containers.conf podman reads (<c>CONTAINERS_CONF</c> of every podman command), e.g. one that goes with a store of its own (default: podman's own search)</description></item>
/// <item><term>state_dir</term><description>where each application's manifests are kept (default <c>/data/mender-app-podman</c>)</description></item>
/// <item><term>rollout_timeout_seconds</term><description>how long ROLLOUT and START wait for every container to run and be healthy (default 300)</description></item>
/// <item><term>poll_interval_ms</term><description>how often they look (default 1000)</description></item>
/// <item><term>stop_timeout_seconds</term><description>the grace period of STOP before podman kills (default 10)</description></item>
/// <item><term>command_timeout_seconds</term><description>the longest one podman command may take (default 600)</description></item>
/// <item><term>log_tail_lines</term><description>lines of a failing container's log in a ROLLOUT failure (default 20)</description></item>
/// <item><term>purge_volumes</term><description>PURGE also removes the application's volumes (default false)</description></item>
/// <item><term>allow_host_access</term><description>the host access manifests may ask for (see the README)</description></item>
/// </list>
/// </summary>
public sealed record PodmanSettings
{
    public const string DefaultPath = "/etc/mender/mender-app-podman.conf";
    public static readonly string PathVariable = SubModuleContext.ConfigPathVariable("podman");

    public required string Command { get; init; }

    public IReadOnlyList<string> GlobalArgs { get; init; } = [];

    /// <summary>The containers.conf every podman command reads (its <c>CONTAINERS_CONF</c>); null: what the sub-module's environment says, else podman's own search.</summary>
    public string? ContainersConf { get; init; }

    public required string StateDirectory { get; init; }

    public TimeSpan RolloutTimeout { get; init; } = TimeSpan.FromMinutes(5);

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(10);

    public int LogTailLines { get; init; } = 20;

    public bool PurgeVolumes { get; init; }

    /// <summary>MENDER_APP_UPDATE_MODULE_PLATFORM, e.g. linux/arm64; null when the artifact names none.</summary>
    public string? Platform { get; init; }

    public HostAccessPolicy HostAccess { get; init; } = HostAccessPolicy.Strict(DefaultPath);

    public string Source { get; init; } = DefaultPath;

    public static PodmanSettings From(ConfigFile file, SubModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(context);
        var stateDir = file.GetString("state_dir", "/data/mender-app-podman");
        if (!Path.IsPathRooted(stateDir))
        {
            throw new ConfigException($"{file.Source}: state_dir = \"{stateDir}\" must be an absolute path; fix it");
        }

        var command = file.GetString("podman_command", "podman").Trim();
        if (command.Length == 0)
        {
            throw new ConfigException($"{file.Source}: podman_command is empty; name the podman CLI (a path or a name on PATH) or remove the key");
        }

        // A TOML array reads as its items joined by commas.
        var args = (file.GetString("podman_args") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (args.Length > 0 && !args[0].StartsWith('-'))
        {
            throw new ConfigException($"{file.Source}: podman_args must hold global options of podman (starting with '-', e.g. [\"--root\", \"/data/podman\"]), found \"{args[0]}\"");
        }

        var containersConf = file.GetString("containers_conf")?.Trim();
        if (containersConf is { Length: > 0 } && !(Path.IsPathRooted(containersConf) && File.Exists(containersConf)))
        {
            throw new ConfigException($"{file.Source}: containers_conf = \"{containersConf}\" {(Path.IsPathRooted(containersConf) ? "does not exist" : "must be an absolute path")}; name the containers.conf podman should read, or remove the key");
        }

        return new PodmanSettings
        {
            Command = command,
            GlobalArgs = args,
            ContainersConf = containersConf is { Length: > 0 } ? containersConf : null,
            StateDirectory = stateDir,
            RolloutTimeout = file.GetSeconds("rollout_timeout_seconds", TimeSpan.FromMinutes(5)),
            PollInterval = TimeSpan.FromMilliseconds(file.GetInt("poll_interval_ms", 1000, 10, 60_000)),
            StopTimeout = file.GetSeconds("stop_timeout_seconds", TimeSpan.FromSeconds(10)),
            CommandTimeout = file.GetSeconds("command_timeout_seconds", TimeSpan.FromMinutes(10)),
            LogTailLines = file.GetInt("log_tail_lines", 20, 0, 1000),
            PurgeVolumes = file.GetBool("purge_volumes", false),
            Platform = context.Platform,
            HostAccess = HostAccessSettings.From(file),
            Source = file.Source,
        };
    }
}
