using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace DockerCompose;

/// <summary>
/// The sub-module's configuration, from <c>/etc/mender/mender-app-docker-compose.conf</c> (or the file
/// named by <c>MENDER_APP_DOCKER_COMPOSE_CONF</c>, used by tests). TOML or the reference's shell-style
/// lines; keys are case-insensitive, so the reference's <c>DOCKER_COMPOSE_COMMAND</c> and
/// <c>DOCKER_COMMAND</c> work as they are.
/// <list type="table">
/// <item><term>docker_compose_command</term><description>the Compose CLI, e.g. <c>docker compose</c> or <c>/usr/bin/docker-compose</c>; default: discover <c>docker compose</c> (v2), else <c>docker-compose</c> (v1)</description></item>
/// <item><term>docker_command</term><description>the docker CLI used for <c>docker compose</c> discovery; default <c>docker</c> on PATH</description></item>
/// <item><term>docker_host</term><description>the engine endpoint; default <c>$DOCKER_HOST</c>, else <c>unix:///var/run/docker.sock</c></description></item>
/// <item><term>rollout_timeout</term><description>seconds ROLLOUT/START/ROLLBACK wait for the services to be healthy (300)</description></item>
/// <item><term>soak_seconds</term><description>seconds a service without healthcheck must run without restarting (10)</description></item>
/// <item><term>compose_timeout</term><description>seconds one Compose CLI call may take (600)</description></item>
/// <item><term>engine_timeout</term><description>seconds one engine API request may take, image load/save excluded (120)</description></item>
/// <item><term>purge_volumes</term><description>PURGE also removes the application's volumes (false: data loss must be explicit)</description></item>
/// <item><term>state_dir</term><description>where copies of the rolled-out manifests are kept (<c>/var/lib/mender-app/docker-compose</c>)</description></item>
/// <item><term>allow_host_access</term><description>the host access a composition may have (<see cref="HostAccessPolicy"/>: root-mount, engine-socket, privileged, host-pid, host-network); REQS, ROLLOUT and START refuse any other (default: none)</description></item>
/// <item><term>forbid_host_root_mounts</term><description>legacy: <c>false</c> (set explicitly) allows root-mount</description></item>
/// <item><term>log_tail_lines</term><description>lines of a failing container's log printed by ROLLOUT (20)</description></item>
/// </list>
/// </summary>
public sealed record Settings
{
    public const string DefaultPath = "/etc/mender/mender-app-docker-compose.conf";
    public static readonly string PathVariable = SubModuleContext.ConfigPathVariable("docker-compose");

    public string Source { get; init; } = DefaultPath;

    public IReadOnlyList<string>? ComposeCommand { get; init; }

    public string DockerCommand { get; init; } = "docker";

    public string DockerHost { get; init; } = "unix:///var/run/docker.sock";

    public TimeSpan RolloutTimeout { get; init; } = TimeSpan.FromSeconds(300);

    public TimeSpan Soak { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan ComposeTimeout { get; init; } = TimeSpan.FromSeconds(600);

    public TimeSpan EngineTimeout { get; init; } = TimeSpan.FromSeconds(120);

    public bool PurgeVolumes { get; init; }

    public string StateDir { get; init; } = "/var/lib/mender-app/docker-compose";

    public int LogTailLines { get; init; } = 20;

    /// <summary>What host access a composition may have (default: none).</summary>
    public HostAccessPolicy HostAccess { get; init; } = HostAccessPolicy.Strict(DefaultPath);

    public static Settings From(ConfigFile config, string? dockerHostVariable)
    {
        ArgumentNullException.ThrowIfNull(config);
        var compose = config.GetString("docker_compose_command")?.Trim();
        var docker = config.GetString("docker_command")?.Trim();
        var host = config.GetString("docker_host")?.Trim();
        if (compose is { Length: 0 })
        {
            compose = null;
        }

        return new Settings
        {
            Source = config.Source,
            ComposeCommand = compose?.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            DockerCommand = docker is { Length: > 0 } ? docker : "docker",
            DockerHost = host is { Length: > 0 } ? host : dockerHostVariable is { Length: > 0 } ? dockerHostVariable : "unix:///var/run/docker.sock",
            RolloutTimeout = config.GetSeconds("rollout_timeout", TimeSpan.FromSeconds(300)),
            Soak = config.GetSeconds("soak_seconds", TimeSpan.FromSeconds(10), 3600),
            ComposeTimeout = config.GetSeconds("compose_timeout", TimeSpan.FromSeconds(600)),
            EngineTimeout = config.GetSeconds("engine_timeout", TimeSpan.FromSeconds(120)),
            PurgeVolumes = config.GetBool("purge_volumes", false),
            StateDir = config.GetString("state_dir") is { Length: > 0 } s ? s : "/var/lib/mender-app/docker-compose",
            LogTailLines = config.GetInt("log_tail_lines", 20, 0, 10000),
            HostAccess = HostAccessSettings.From(config),
        };
    }
}
