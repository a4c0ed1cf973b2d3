using System.Collections;
using System.Globalization;
using System.Text.Json;
using AppModule.Runtime;
using Fleet.Core.Bus;
using Fleet.Core.Registry;
using Fleet.Core.Security;
using Fleet.Core.State;
using Fleet.Core.Versioning;
using Fleet.Core.Wire;

namespace Fleet.Core.Config;

/// <summary>One application the updater knows: where it lives, which device RPC serves it, its image, and the
/// user's target (null: the app is known but not to be updated).</summary>
public sealed record AppEntry(string Name, string? Directory, string Rpc, ImageReference Image, VersionTarget? Target)
{
    /// <summary>The devices' platform (os/arch[/variant]): a target is sent only when its manifest offers it, and the
    /// command carries that platform's manifest digest. Null: not checked; the command carries the tag's digest.</summary>
    public string? Platform { get; init; }
}

/// <summary>Updater settings: a TOML file (see docs in <see cref="Load"/>) overlaid with seed 000's environment
/// variables, which win.</summary>
public sealed record UpdaterConfig
{
    public RedisOptions Redis { get; init; } = new();
    public string Channel { get; init; } = "version_channel";
    public RegistryOptions Registry { get; init; } = new();
    public IReadOnlyDictionary<string, AppEntry> Apps { get; init; } = new Dictionary<string, AppEntry>();
    public TimeSpan RpcTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>After an attempt at a target (success or failure), the same target is not retried for this long.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>A send that failed on the updater's side (<c>error</c>: e.g. Redis restarted under the call, so the
    /// request may never have reached the device) is retried with the same idempotency key after this long, doubling
    /// with each further error up to <see cref="RetryAfter"/>.</summary>
    public TimeSpan ErrorRetry { get; init; } = TimeSpan.FromSeconds(5);
    public byte[]? HmacKey { get; init; }
    public TimeSpan CommandTtl { get; init; } = TimeSpan.FromSeconds(60);
    public string? MetricsListen { get; init; }
    public WireStyle WireStyle { get; init; } = WireStyle.Ujson;
    /// <summary>Where the desired/observed state, command status and report stream live in Redis.</summary>
    public FleetStateOptions State { get; init; } = new();
    /// <summary>Device groups: name → member apps, in the order their rollouts go out. <c>all</c> (every configured app,
    /// by name) unless the configuration defines it.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Groups { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
    /// <summary>Defaults of a rollout (each can be given at its start): waves, a wave's deadline, failures tolerated.</summary>
    public string RolloutWaves { get; init; } = "1,10%,50%";
    public TimeSpan RolloutWaveTimeout { get; init; } = TimeSpan.FromMinutes(10);
    public int RolloutMaxFailed { get; init; }
    /// <summary>Log lines as text or JSON (FLEET_LOG_FORMAT, else <c>[updater] log_format</c>).</summary>
    public LogFormat LogFormat { get; init; } = LogFormat.Text;
    /// <summary><c>/healthz</c> answers 503 when the consumer group's lag (reports not yet read by any updater) is above
    /// this; 0: the lag is reported, not judged.</summary>
    public long HealthMaxLag { get; init; }

    /// <summary>
    /// Reads the TOML file (optional) then the environment:
    /// <code>
    /// [redis]    host, port, db, user, password, tls, tls_ca_file, tls_server_name, channel
    /// [registry] namespace (default image prefix: namespace/app), plain_http = ["host:port"],
    ///            cache_ttl_seconds, negative_ttl_seconds, max_attempts, docker_hub_api
    /// [registry.credentials."host:port"] username, password
    /// [updater]  rpc_timeout_seconds, retry_after_seconds, error_retry_seconds, hmac_key_file, command_ttl_seconds, metrics_listen, wire_style (ujson|plain),
    ///            state_prefix, bridge_dedupe_ms, batch_size, read_window, claim_idle_seconds, log_format (text|json), health_max_lag
    /// [apps.NAME] directory, target ("2.1.0", "~2.1", ">=1.5,&lt;2"), rpc, image, platform ("linux/arm64", "linux/arm/v7")
    /// [groups.NAME] members = ["app1", "app2"], platform   (a device group; "all" is every app unless defined; its
    ///            platform applies to members without their own)
    /// [rollout]  waves = "1,10%,50%", wave_timeout_seconds = 600, max_failed = 0
    /// </code>
    /// Environment (seed 000): REDIS_HOST, REDIS_PORT, REDIS_DB, DOCKER_HUB_USERNAME, DOCKER_HUB_TOKEN,
    /// APP_TO_DIRECTORY and APPS_TO_UPDATE (JSON objects); ours: APP_TO_RPC, APP_TO_IMAGE, APP_TO_PLATFORM (JSON), REDIS_USERNAME,
    /// REDIS_PASSWORD, FLEET_HMAC_KEY, FLEET_LOG_FORMAT.
    /// </summary>
    public static UpdaterConfig Load(string? path, IDictionary env)
    {
        var f = path is null ? ConfigFile.Empty("(no file)") : ConfigFile.Load(path);
        string? E(string k) => env[k] is string s && s.Length > 0 ? s : null;
        int Int(string? text, string what, int fallback) => text is null ? fallback
            : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v
            : throw new ConfigException($"{what} = '{text}' is not a non-negative integer");

        var redis = new RedisOptions
        {
            Host = E("REDIS_HOST") ?? f.GetString("redis.host", "redis"),
            Port = Int(E("REDIS_PORT") ?? f.GetString("redis.port"), "REDIS_PORT / redis.port", 6379),
            Db = Int(E("REDIS_DB") ?? f.GetString("redis.db"), "REDIS_DB / redis.db", 0),
            User = E("REDIS_USERNAME") ?? NullIfEmpty(f.GetString("redis.user")),
            Password = E("REDIS_PASSWORD") ?? NullIfEmpty(f.GetString("redis.password")),
            Tls = f.GetBool("redis.tls", false),
            TlsCaFile = NullIfEmpty(f.GetString("redis.tls_ca_file")),
            TlsServerName = NullIfEmpty(f.GetString("redis.tls_server_name")),
        };

        var creds = new Dictionary<string, RegistryCredentials>();
        foreach (var (k, _) in f.Values)
        {
            const string p = "registry.credentials.";
            if (k.StartsWith(p, StringComparison.OrdinalIgnoreCase) && k.EndsWith(".username", StringComparison.OrdinalIgnoreCase))
            {
                var host = k[p.Length..^".username".Length];
                creds[host] = new RegistryCredentials(f.GetString(k)!, f.GetString(p + host + ".password") ?? "");
            }
        }
        var hubUser = E("DOCKER_HUB_USERNAME");
        if (hubUser is not null && E("DOCKER_HUB_TOKEN") is { } hubToken) creds[ImageReference.DockerHub] = new RegistryCredentials(hubUser, hubToken);
        var ns = f.GetString("registry.namespace") ?? hubUser;

        var registry = new RegistryOptions
        {
            Credentials = creds,
            PlainHttp = (f.GetString("registry.plain_http") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(),
            PositiveTtl = f.GetSeconds("registry.cache_ttl_seconds", TimeSpan.FromMinutes(5)),
            NegativeTtl = f.GetSeconds("registry.negative_ttl_seconds", TimeSpan.FromSeconds(30)),
            TagListTtl = f.GetSeconds("registry.cache_ttl_seconds", TimeSpan.FromMinutes(1)),
            MaxAttempts = f.GetInt("registry.max_attempts", 4, 1, 20),
            DockerHubApi = new Uri(f.GetString("registry.docker_hub_api", "https://hub.docker.com")),
        };

        // apps: TOML tables, then the JSON env maps
        var tables = f.Tables("apps", "directory", "target", "rpc", "image", "platform");
        var (dirs, targets, rpcs, images, platforms) = (tables["directory"], tables["target"], tables["rpc"], tables["image"], tables["platform"]);
        Overlay(dirs, E("APP_TO_DIRECTORY"), "APP_TO_DIRECTORY");
        Overlay(targets, E("APPS_TO_UPDATE"), "APPS_TO_UPDATE");
        Overlay(rpcs, E("APP_TO_RPC"), "APP_TO_RPC");
        Overlay(images, E("APP_TO_IMAGE"), "APP_TO_IMAGE");
        Overlay(platforms, E("APP_TO_PLATFORM"), "APP_TO_PLATFORM");

        var apps = new Dictionary<string, AppEntry>();
        foreach (var name in dirs.Keys.Concat(targets.Keys).Concat(rpcs.Keys).Concat(images.Keys).Distinct())
        {
            VersionTarget? target = null;
            if (targets.TryGetValue(name, out var t))
            {
                try { target = VersionTarget.Parse(t); }
                catch (FormatException e) { throw new ConfigException($"target of app '{name}': {e.Message}"); }
            }
            var rpc = rpcs.GetValueOrDefault(name) ?? DefaultRpc(name)
                ?? throw new ConfigException($"app '{name}': no RPC service configured; set [apps.{name}] rpc = \"docker_compose_service_<machine>\" or APP_TO_RPC");
            var imageText = images.GetValueOrDefault(name) ?? (ns is null ? name : ns + "/" + name);
            ImageReference image;
            try { image = ImageReference.Parse(imageText.Trim()).WithoutTagOrDigest(); }
            catch (FormatException e) { throw new ConfigException($"image of app '{name}': {e.Message}"); }
            apps[name] = new AppEntry(name, dirs.GetValueOrDefault(name), rpc, image, target)
            {
                Platform = platforms.TryGetValue(name, out var pf) ? CheckPlatform(pf, $"[apps.{name}] platform / APP_TO_PLATFORM") : null,
            };
        }

        foreach (var name in platforms.Keys.Where(n => !apps.ContainsKey(n)))
            throw new ConfigException($"platform of app '{name}' (APP_TO_PLATFORM or [apps.{name}] platform): no such app is configured; give it a directory, target, rpc or image, or remove the platform");

        var groups = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var groupTables = f.Tables("groups", "members", "platform");
        var fromGroup = new Dictionary<string, (string Platform, string Group)>(StringComparer.Ordinal);
        foreach (var (name, members) in groupTables["members"])
        {
            var list = members.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
            if (list.Count == 0) throw new ConfigException($"group '{name}' has no members; set [groups.{name}] members = [\"app1\", ...]");
            foreach (var m in list.Where(m => !apps.ContainsKey(m)))
                throw new ConfigException($"group '{name}': member '{m}' is not a configured app; add [apps.{m}] or remove it from the group");
            groups[name] = list;
            if (!groupTables["platform"].TryGetValue(name, out var gp)) continue;
            gp = CheckPlatform(gp, $"[groups.{name}] platform");
            foreach (var m in list.Where(m => apps[m].Platform is null))
            {
                if (fromGroup.TryGetValue(m, out var other) && other.Platform != gp)
                    throw new ConfigException($"app '{m}' is in group '{other.Group}' (platform {other.Platform}) and in group '{name}' (platform {gp}); set [apps.{m}] platform to say which");
                fromGroup[m] = (gp, name);
            }
        }
        foreach (var (m, (gp, _)) in fromGroup) apps[m] = apps[m] with { Platform = gp };
        foreach (var (name, _) in groupTables["platform"].Where(g => !groups.ContainsKey(g.Key)))
            throw new ConfigException($"[groups.{name}] platform is set but the group has no members; set [groups.{name}] members = [\"app1\", ...]");
        groups.TryAdd("all", apps.Keys.Order(StringComparer.Ordinal).ToList());
        var waves = f.GetString("rollout.waves", "1,10%,50%");
        try { _ = Fleet.Core.State.Rollout.ParseWaves(waves, 100); }
        catch (FormatException e) { throw new ConfigException($"rollout.waves: {e.Message}"); }

        byte[]? key = null;
        if (E("FLEET_HMAC_KEY") is { } envKey) key = CommandSigner.KeyFromText(envKey, "FLEET_HMAC_KEY");
        else if (NullIfEmpty(f.GetString("updater.hmac_key_file")) is { } kf)
        {
            try { key = CommandSigner.KeyFromText(File.ReadAllText(kf), kf); }
            catch (IOException e) { throw new ConfigException($"updater.hmac_key_file: cannot read {kf}: {e.Message}"); }
        }

        var style = f.GetString("updater.wire_style", "ujson").ToLowerInvariant() switch
        {
            "ujson" => WireStyle.Ujson,
            "plain" => WireStyle.Plain,
            var s => throw new ConfigException($"updater.wire_style = '{s}': use ujson (commlib 0.13.1 bytes) or plain"),
        };

        var logFormatText = E("FLEET_LOG_FORMAT") ?? f.GetString("updater.log_format", "text");
        if (!Log.TryParseFormat(logFormatText, out var logFormat)) throw new ConfigException($"FLEET_LOG_FORMAT / updater.log_format = '{logFormatText}': use text or json");

        return new UpdaterConfig
        {
            LogFormat = logFormat,
            HealthMaxLag = f.GetInt("updater.health_max_lag", 0, 0, int.MaxValue),
            Redis = redis,
            Channel = f.GetString("redis.channel", "version_channel"),
            Registry = registry,
            Apps = apps,
            RpcTimeout = f.GetSeconds("updater.rpc_timeout_seconds", TimeSpan.FromSeconds(10)),
            RetryAfter = f.GetSeconds("updater.retry_after_seconds", TimeSpan.FromMinutes(5)),
            ErrorRetry = f.GetSeconds("updater.error_retry_seconds", TimeSpan.FromSeconds(5)),
            HmacKey = key,
            CommandTtl = f.GetSeconds("updater.command_ttl_seconds", TimeSpan.FromSeconds(60)),
            MetricsListen = NullIfEmpty(f.GetString("updater.metrics_listen")),
            WireStyle = style,
            Groups = groups,
            RolloutWaves = waves,
            RolloutWaveTimeout = f.GetSeconds("rollout.wave_timeout_seconds", TimeSpan.FromMinutes(10)),
            RolloutMaxFailed = f.GetInt("rollout.max_failed", 0, 0, 1_000_000),
            State = new FleetStateOptions
            {
                Prefix = f.GetString("updater.state_prefix", "fleet"),
                BridgeDedupe = TimeSpan.FromMilliseconds(f.GetInt("updater.bridge_dedupe_ms", 1000, 0, 60_000)),
                BatchSize = f.GetInt("updater.batch_size", 1000, 1, 4000),
                ReadWindow = f.GetInt("updater.read_window", 64, 64, 4000),
                ClaimIdle = f.GetSeconds("updater.claim_idle_seconds", TimeSpan.FromSeconds(15)),
            },
        };
    }

    /// <summary>A platform as OCI writes it: os/architecture[/variant] (architecture aliases normalized: x86_64 → amd64).</summary>
    private static string CheckPlatform(string text, string what)
    {
        var parts = text.Trim().ToLowerInvariant().Split('/');
        if (parts.Length is < 2 or > 3 || parts.Any(p => p.Length == 0 || !p.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')))
            throw new ConfigException($"{what} = '{text}' is not a platform; write os/architecture[/variant], e.g. linux/arm64, linux/amd64, linux/arm/v7");
        parts[1] = AppModule.Core.Policy.Platforms.NormalizeArch(parts[1]);
        return string.Join('/', parts);
    }

    /// <summary>The seed's fixed mapping: app1 → docker_compose_service_machine1, and so on.</summary>
    private static string? DefaultRpc(string app) =>
        app.StartsWith("app", StringComparison.Ordinal) && app.Length > 3 && app[3..].All(char.IsAsciiDigit) ? "docker_compose_service_machine" + app[3..] : null;

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static void Overlay(Dictionary<string, string> into, string? json, string variable)
    {
        if (json is null) return;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ConfigException($"{variable} must be a JSON object like {{\"app1\":\"...\"}}");
            foreach (var p in doc.RootElement.EnumerateObject())
                into[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()!
                    : throw new ConfigException($"{variable}: the value for '{p.Name}' must be a string, not {p.Value.ValueKind}");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{variable} is not valid JSON ({e.Message}); example: {{\"app1\":\"2.1.0\"}}");
        }
    }
}
