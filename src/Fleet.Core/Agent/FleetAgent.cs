using System.Collections;
using System.Collections.Concurrent;
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
    public IReadOnlyList<AgentApp> Apps { get; init; } = [];
    public byte[]? HmacKey { get; init; }
    public TimeSpan MaxCommandTtl { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Re-publish every app's version this often (pub/sub keeps nothing for late subscribers); zero: never.</summary>
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Path of the docker-compose sub-module; null: use the Compose CLI directly.</summary>
    public string? SubModule { get; init; }
    /// <summary>Config file for the sub-module (passed as MENDER_APP_DOCKER_COMPOSE_CONF); null: its default.</summary>
    public string? SubModuleConfig { get; init; }
    public IReadOnlyList<string>? ComposeCommand { get; init; }
    public string DockerCli { get; init; } = "/usr/bin/docker";
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public WireStyle WireStyle { get; init; } = WireStyle.Ujson;

    /// <summary>
    /// TOML file then environment:
    /// <code>
    /// [redis] host, port, db, user, password, tls, tls_ca_file, tls_server_name, channel
    /// [agent] rpc_name, hmac_key_file, max_command_ttl_seconds, report_interval_seconds, submodule, submodule_config,
    ///         compose_command ("docker compose" | "docker-compose"), docker, health_timeout_seconds, wire_style
    /// [apps.NAME] directory, service
    /// </code>
    /// Environment: REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD, FLEET_RPC_NAME, FLEET_HMAC_KEY,
    /// APP_TO_DIRECTORY (JSON).
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
        return new AgentConfig
        {
            Redis = redis,
            Channel = f.GetString("redis.channel", "version_channel"),
            RpcName = E("FLEET_RPC_NAME") ?? f.GetString("agent.rpc_name") ?? throw new ConfigException("no RPC name: set [agent] rpc_name (e.g. docker_compose_service_machine1) or FLEET_RPC_NAME; it must be unique per device"),
            Apps = dirs.Select(d => new AgentApp(d.Key, Path.GetFullPath(d.Value), services.GetValueOrDefault(d.Key))).ToList(),
            HmacKey = key,
            MaxCommandTtl = f.GetSeconds("agent.max_command_ttl_seconds", TimeSpan.FromMinutes(5)),
            ReportInterval = f.GetSeconds("agent.report_interval_seconds", TimeSpan.FromSeconds(60)),
            SubModule = Null(f.GetString("agent.submodule")),
            SubModuleConfig = Null(f.GetString("agent.submodule_config")),
            ComposeCommand = Null(f.GetString("agent.compose_command"))?.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            DockerCli = f.GetString("agent.docker", "/usr/bin/docker"),
            HealthTimeout = f.GetSeconds("agent.health_timeout_seconds", TimeSpan.FromSeconds(120)),
            WireStyle = f.GetString("agent.wire_style", "ujson") == "plain" ? WireStyle.Plain : WireStyle.Ujson,
        };
    }

    private static string? Null(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>The sub-module when configured (or installed at its standard path), else the Compose CLI.</summary>
    public IComposeRuntime CreateRuntime()
    {
        var cli = new ComposeCliRuntime(ComposeCommand ?? ComposeCliRuntime.DetectCompose(DockerCli), DockerCli, HealthTimeout);
        var sub = SubModule ?? (File.Exists(DefaultSubModule) ? DefaultSubModule : null);
        if (sub is null) return cli;
        if (!ChildProcess.IsRunnable(sub)) throw new ConfigException($"agent.submodule {sub} is not an executable file");
        var env = SubModuleConfig is null ? null : new Dictionary<string, string?> { ["MENDER_APP_DOCKER_COMPOSE_CONF"] = SubModuleConfig };
        return new SubModuleRuntime(sub, cli, HealthTimeout + TimeSpan.FromMinutes(2), env);
    }

    public const string DefaultSubModule = "/usr/share/mender/app-modules/v1/docker-compose";
}

/// <summary>Seed 001's "docker compose RPC service" with seed 002's operations: serves <c>update_version</c>,
/// <c>down</c>, <c>restart</c> and <c>update</c> on its RPC name, and publishes each app's version (the image tag
/// in its compose file) at start, after every change and periodically.</summary>
public sealed class FleetAgent
{
    public const string BackupSuffix = ".fleet-backup";
    private readonly AgentConfig _cfg;
    private readonly IFleetBus _bus;
    private readonly IComposeRuntime _runtime;
    private readonly CommandVerifier? _verifier;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new();

    public FleetAgent(AgentConfig cfg, IFleetBus bus, IComposeRuntime runtime)
    {
        _cfg = cfg;
        _bus = bus;
        _runtime = runtime;
        _verifier = cfg.HmacKey is null ? null : new CommandVerifier(cfg.HmacKey, cfg.RpcName, cfg.MaxCommandTtl);
    }

    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var app in _cfg.Apps) await PublishVersionAsync(app, ct);
        var server = new CommlibRpcServer(_bus, _cfg.RpcName, HandleAsync, Log.Warning, _cfg.WireStyle);
        Log.Info($"serving RPC {_cfg.RpcName} for {string.Join(", ", _cfg.Apps.Select(a => $"{a.Name} ({a.Directory})"))}{(_verifier is null ? "" : "; signed commands only")}");
        var serve = server.RunAsync(ct);
        if (_cfg.ReportInterval > TimeSpan.Zero)
        {
            try
            {
                using var timer = new PeriodicTimer(_cfg.ReportInterval);
                while (await timer.WaitForNextTickAsync(ct))
                    foreach (var app in _cfg.Apps) await PublishVersionAsync(app, ct);
            }
            catch (OperationCanceledException) { }
        }
        await serve;
    }

    /// <summary>Publishes the app's VersionMessage; the version is its image tag. Failures are logged, not thrown.</summary>
    public async Task PublishVersionAsync(AgentApp app, CancellationToken ct)
    {
        try
        {
            var file = ComposeFile.Find(app.Directory);
            var img = ComposeFile.FindImage(await File.ReadAllTextAsync(file, ct), app.Service, file);
            await _bus.PublishAsync(_cfg.Channel, WireCodec.EncodeVersion(new VersionMessage(app.Name, img.Tag, []), _cfg.WireStyle), ct);
        }
        catch (Exception e) when (e is ComposeFileException or IOException)
        {
            Log.Warning($"cannot report the version of {app.Name}: {e.Message}");
        }
    }

    public async Task<DockerCommandResponse> HandleAsync(DockerCommandRequest req, CancellationToken ct)
    {
        if (_verifier?.Check(req) is { } refusal)
        {
            Log.Warning($"command {req.Command} for {req.Directory}: {refusal}");
            return new DockerCommandResponse(false, refusal);
        }
        var dir = req.Directory.Length > 0 ? Path.GetFullPath(req.Directory) : "";
        var app = _cfg.Apps.FirstOrDefault(a => a.Directory == dir);
        if (app is null)
            return new DockerCommandResponse(false, $"directory '{req.Directory}' is not managed by {_cfg.RpcName} (managed: {string.Join(", ", _cfg.Apps.Select(a => a.Directory))})");
        var gate = _locks.GetOrAdd(app.Name, _ => new SemaphoreSlim(1));
        await gate.WaitAsync(ct);
        try
        {
            Log.Info($"command {req.Command} {app.Name}{(req.NewVersion is null ? "" : " " + req.NewVersion)}{(req.Service is null ? "" : " service " + req.Service)}");
            var resp = req.Command switch
            {
                "update_version" => await UpdateVersionAsync(app, req.NewVersion, ct),
                "down" => await StepAsync(() => _runtime.StopAsync(app.Name, app.Directory, ct), $"Stopped services in {app.Directory}"),
                "restart" => await StepAsync(() => _runtime.RestartAsync(app.Name, app.Directory, req.Service, req.Wait ?? true, ct),
                    $"Restarted {req.Service ?? "all services"} in {app.Directory}"),
                "update" => await StepAsync(async () =>
                {
                    await _runtime.PullAsync(app.Name, app.Directory, req.Service, ct);
                    await _runtime.UpAsync(app.Name, app.Directory, req.Service, req.Wait ?? true, ct);
                }, $"Updated {req.Service ?? "all services"} in {app.Directory}"),
                _ => new DockerCommandResponse(false, $"unknown command '{req.Command}'; supported: update_version, down, restart, update"),
            };
            Log.Write(resp.Success ? LogLevel.Info : LogLevel.Warning, $"command {req.Command} {app.Name}: {resp.Message}");
            return resp;
        }
        finally { gate.Release(); }
    }

    private static async Task<DockerCommandResponse> StepAsync(Func<Task> step, string success)
    {
        try { await step(); return new DockerCommandResponse(true, success); }
        catch (Exception e) when (e is RuntimeStepException or ComposeFileException or ChildProcessException) { return new DockerCommandResponse(false, e.Message); }
    }

    /// <summary>Rewrites the tag (keeping the file's formatting), keeps a backup, pulls, rolls out health-gated; on
    /// failure restores the previous file and rolls back. Publishes the resulting version either way.</summary>
    private async Task<DockerCommandResponse> UpdateVersionAsync(AgentApp app, string? newVersion, CancellationToken ct)
    {
        if (newVersion is null || !ComposeFile.IsValidTag(newVersion))
            return new DockerCommandResponse(false, $"new_version '{newVersion}' is not a valid image tag (letters, digits, _ . -; at most 128)");
        string file, before;
        ComposeImage img;
        try
        {
            file = ComposeFile.Find(app.Directory);
            before = await File.ReadAllTextAsync(file, ct);
            img = ComposeFile.FindImage(before, app.Service, file);
        }
        catch (ComposeFileException e) { return new DockerCommandResponse(false, e.Message); }
        if (img.Tag == newVersion)
        {
            await PublishVersionAsync(app, ct);
            return new DockerCommandResponse(true, $"Already at version {newVersion}");
        }
        var after = ComposeFile.WithTag(before, img, newVersion);
        File.Copy(file, file + BackupSuffix, overwrite: true);
        ComposeFile.WriteAtomic(file, after);
        try
        {
            await _runtime.PullAsync(app.Name, app.Directory, img.Service, ct);
        }
        catch (Exception e) when (e is RuntimeStepException or ChildProcessException)
        {
            ComposeFile.WriteAtomic(file, before);
            await PublishVersionAsync(app, ct);
            return new DockerCommandResponse(false, $"pull of {ComposeImage.SplitImage(img.Image).Repository}:{newVersion} failed, nothing changed: {e.Message}");
        }
        try
        {
            await _runtime.RolloutAsync(app.Name, app.Directory, ct);
        }
        catch (Exception e) when (e is RuntimeStepException or ChildProcessException)
        {
            Log.Warning($"{app.Name}: rollout of {newVersion} failed ({e.Message}); restoring {Path.GetFileName(file)} and rolling back to {img.Tag}");
            var failedDir = Directory.CreateTempSubdirectory("fleet-failed-").FullName;
            string rollback;
            try
            {
                File.WriteAllText(Path.Combine(failedDir, Path.GetFileName(file)), after);
                ComposeFile.WriteAtomic(file, before);
                await _runtime.RollbackAsync(app.Name, app.Directory, failedDir, CancellationToken.None);
                rollback = $"rolled back to {img.Tag}";
            }
            catch (Exception e2) when (e2 is RuntimeStepException or ChildProcessException or IOException)
            {
                rollback = $"rollback to {img.Tag} ALSO FAILED: {e2.Message}";
            }
            finally
            {
                try { Directory.Delete(failedDir, true); } catch (IOException) { }
            }
            await PublishVersionAsync(app, CancellationToken.None);
            return new DockerCommandResponse(false, $"update to {newVersion} failed: {e.Message}; {rollback}");
        }
        await PublishVersionAsync(app, ct);
        return new DockerCommandResponse(true, $"Successfully updated to version {newVersion}");
    }
}
