using System.Collections;
using AppModule.Core;
using AppModule.Engine;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Security;
using Fleet.Core.Wire;

namespace Fleet.Core.Agent;

/// <summary>One app on this device: its compose directory, and which service's image carries its version.</summary>
public sealed record AgentApp(string Name, string Directory, string? Service);

public sealed record AgentConfig
{
    public RedisOptions Redis { get; init; } = new();
    public string RpcName { get; init; } = "docker_compose_service_machine1";
    public string Channel { get; init; } = "version_channel";
    /// <summary>Where each step of a command is published (<see cref="FleetEvent"/>); empty: nowhere.</summary>
    public string EventsChannel { get; init; } = "fleet_events";
    public IReadOnlyList<AgentApp> Apps { get; init; } = [];
    public byte[]? HmacKey { get; init; }
    public TimeSpan MaxCommandTtl { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Re-publish every app's version this often (pub/sub keeps nothing for late subscribers); zero: never.</summary>
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Config file for the docker-compose sub-module (passed as SubModuleContext.ConfigPathVariable, MENDER_APP_DOCKER_COMPOSE_CONF); null: its default.</summary>
    public string? SubModuleConfig { get; init; }
    /// <summary>The install engine's config (store, sub-module directory, health timeout, soak): the same file as <c>app</c>'s.</summary>
    public AppConfig Engine { get; init; } = new();
    /// <summary>The Docker CLI the agent pulls images with.</summary>
    public string DockerCli { get; init; } = "/usr/bin/docker";
    public WireStyle WireStyle { get; init; } = WireStyle.Ujson;
    /// <summary>Also add each version report to the updaters' report stream (<c>&lt;state_prefix&gt;:reports</c>), so a
    /// report made while no updater runs is not lost; pub/sub alone keeps nothing. The updaters' bridge and this add
    /// are deduplicated (same payload within the bridge window): one stream entry per report.</summary>
    public bool ReportStream { get; init; } = true;
    /// <summary>The updaters' <c>state_prefix</c> (their Redis keys).</summary>
    public string StatePrefix { get; init; } = "fleet";
    /// <summary>Log lines as text or JSON (FLEET_LOG_FORMAT, else <c>[agent] log_format</c>).</summary>
    public LogFormat LogFormat { get; init; } = LogFormat.Text;

    /// <summary>
    /// TOML file then environment:
    /// <code>
    /// [redis] host, port, db, user, password, tls, tls_ca_file, tls_server_name, channel, events_channel
    /// [agent] rpc_name, hmac_key_file, max_command_ttl_seconds, report_interval_seconds, submodule_config,
    ///         app_config (the engine's config, default $MENDER_APP_CONFIG or /etc/mender/mender-app.conf), docker, wire_style,
    ///         report_stream (default true), state_prefix (the updaters' one, default "fleet"), log_format (text|json)
    /// [apps.NAME] directory, service
    /// </code>
    /// Environment: REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD, FLEET_RPC_NAME, FLEET_HMAC_KEY,
    /// APP_TO_DIRECTORY (JSON), FLEET_LOG_FORMAT.
    /// </summary>
    public static AgentConfig Load(string? path, IDictionary env)
    {
        var f = path is null ? ConfigFile.Empty("(no file)") : ConfigFile.Load(path);
        string? E(string k) => env[k] is string s && s.Length > 0 ? s : null;
        var redis = new RedisOptions
        {
            Host = E("REDIS_HOST") ?? f.GetString("redis.host", "redis"),
            Port = int.TryParse(E("REDIS_PORT") ?? f.GetString("redis.port", "6379"), out var port) ? port : throw new ConfigException("REDIS_PORT / redis.port is not a number"),
            Db = int.TryParse(E("REDIS_DB") ?? f.GetString("redis.db", "0"), out var db) ? db : throw new ConfigException("REDIS_DB / redis.db is not a number"),
            User = E("REDIS_USERNAME") ?? Null(f.GetString("redis.user")),
            Password = E("REDIS_PASSWORD") ?? Null(f.GetString("redis.password")),
            Tls = f.GetBool("redis.tls", false),
            TlsCaFile = Null(f.GetString("redis.tls_ca_file")),
            TlsServerName = Null(f.GetString("redis.tls_server_name")),
        };
        var apps = f.Tables("apps", "directory", "service");
        var dirs = apps["directory"];
        var services = apps["service"];
        if (E("APP_TO_DIRECTORY") is { } json)
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(json);
                foreach (var p in doc.RootElement.EnumerateObject()) dirs[p.Name] = p.Value.GetString() ?? throw new ConfigException($"APP_TO_DIRECTORY: '{p.Name}' is null");
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
            {
                throw new ConfigException($"APP_TO_DIRECTORY is not a JSON object of strings ({e.Message}); example: {{\"app1\":\"/opt/app1\"}}");
            }
        }
        foreach (var s in services.Keys.Where(s => !dirs.ContainsKey(s)))
            throw new ConfigException($"app '{s}' has a service but no directory");
        byte[]? key = null;
        if (E("FLEET_HMAC_KEY") is { } k2) key = CommandSigner.KeyFromText(k2, "FLEET_HMAC_KEY");
        else if (Null(f.GetString("agent.hmac_key_file")) is { } kf)
        {
            try { key = CommandSigner.KeyFromText(File.ReadAllText(kf), kf); }
            catch (IOException e) { throw new ConfigException($"agent.hmac_key_file: cannot read {kf}: {e.Message}"); }
        }
        var logFormatText = E("FLEET_LOG_FORMAT") ?? f.GetString("agent.log_format", "text");
        if (!Log.TryParseFormat(logFormatText, out var logFormat)) throw new ConfigException($"FLEET_LOG_FORMAT / agent.log_format = '{logFormatText}': use text or json");
        return new AgentConfig
        {
            LogFormat = logFormat,
            Redis = redis,
            Channel = f.GetString("redis.channel", "version_channel"),
            EventsChannel = f.GetString("redis.events_channel", "fleet_events"),
            RpcName = E("FLEET_RPC_NAME") ?? f.GetString("agent.rpc_name") ?? throw new ConfigException("no RPC name: set [agent] rpc_name (e.g. docker_compose_service_machine1) or FLEET_RPC_NAME; it must be unique per device"),
            Apps = dirs.Select(d => new AgentApp(d.Key, Path.GetFullPath(d.Value), services.GetValueOrDefault(d.Key))).ToList(),
            HmacKey = key,
            MaxCommandTtl = f.GetSeconds("agent.max_command_ttl_seconds", TimeSpan.FromMinutes(5)),
            ReportInterval = f.GetSeconds("agent.report_interval_seconds", TimeSpan.FromSeconds(60)),
            SubModuleConfig = Null(f.GetString("agent.submodule_config")),
            Engine = LoadEngine(Null(f.GetString("agent.app_config"))),
            DockerCli = f.GetString("agent.docker", "/usr/bin/docker"),
            WireStyle = f.GetString("agent.wire_style", "ujson") == "plain" ? WireStyle.Plain : WireStyle.Ujson,
            ReportStream = f.GetBool("agent.report_stream", true),
            StatePrefix = f.GetString("agent.state_prefix", "fleet"),
        };
    }

    /// <summary>The engine's config: the named file (which must exist), else <c>app</c>'s own when it exists, else the defaults.</summary>
    private static AppConfig LoadEngine(string? path)
    {
        if (path is not null)
        {
            return File.Exists(path) ? ConfigLoader.Load(path) : throw new ConfigException($"agent.app_config: {path} does not exist; point it at the install engine's config (mender-app.conf)");
        }

        return File.Exists(ConfigLoader.DefaultPath) ? ConfigLoader.Load(ConfigLoader.DefaultPath) : new AppConfig();
    }

    private static string? Null(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
