using AppModule.Core.Store;

namespace AppModule.Core;

/// <summary>
/// The `app` module's settings (/etc/mender/mender-app.conf; documented in the top-level
/// mender-app.conf). Keys: persistent_store, submodules_dir, health_timeout_seconds, soak_seconds,
/// health_poll_seconds, submodule_timeout_seconds, log_level, engine_disk_check, engine_disk_margin_mib,
/// max_health_timeout_seconds, max_soak_seconds.
/// </summary>
public sealed record AppConfig
{
    public const string DefaultPath = "/etc/mender/mender-app.conf";

    public string PersistentStore { get; init; } = "/data/mender-app";

    public string SubModulesDir { get; init; } = "/usr/share/mender/app-modules/v1";

    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// How long an installed version must stay healthy before the install succeeds. 15 s by default: long enough to
    /// see a service that crashes within seconds of starting restart (measured in docs/health.md), short enough
    /// not to hold every deployment long.
    /// </summary>
    public TimeSpan Soak { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The longest health timeout an artifact may ask for in its meta-data (<c>health_timeout_seconds</c>).</summary>
    public TimeSpan MaxHealthTimeout { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>The longest soak an artifact may ask for in its meta-data (<c>soak_seconds</c>).</summary>
    public TimeSpan MaxSoak { get; init; } = TimeSpan.FromSeconds(600);

    public TimeSpan HealthPoll { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan SubModuleTimeout { get; init; } = TimeSpan.FromSeconds(1800);

    public string LogLevel { get; init; } = "info";

    /// <summary>Whether ArtifactInstall checks, before anything stops, that the new images fit on the engine's data root (the sub-module's STORAGE).</summary>
    public bool EngineDiskCheck { get; init; } = true;

    /// <summary>What must stay free on the engine's data root once the new images are in.</summary>
    public long EngineDiskMarginBytes { get; init; } = 64L << 20;

    /// <summary>Config keys, as written in the file.</summary>
    public static class Keys
    {
        public const string PersistentStore = "persistent_store";
        public const string SubModulesDir = "submodules_dir";
        public const string HealthTimeout = "health_timeout_seconds";
        public const string Soak = "soak_seconds";
        public const string HealthPoll = "health_poll_seconds";
        public const string SubModuleTimeout = "submodule_timeout_seconds";
        public const string LogLevel = "log_level";
        public const string EngineDiskCheck = "engine_disk_check";
        public const string EngineDiskMargin = "engine_disk_margin_mib";
        public const string MaxHealthTimeout = "max_health_timeout_seconds";
        public const string MaxSoak = "max_soak_seconds";
    }

    /// <summary>Why this device refuses an application's own health settings (from its artifact's meta-data), or null.</summary>
    public string? Refusal(HealthOverrides? health)
    {
        if (health?.HealthTimeoutSeconds is { } t && t > MaxHealthTimeout.TotalSeconds)
        {
            return $"meta-data field \"{Keys.HealthTimeout}\" = {t} is above this device's limit {Keys.MaxHealthTimeout} = {MaxHealthTimeout.TotalSeconds:0} ({DefaultPath}): build the artifact with at most {MaxHealthTimeout.TotalSeconds:0}, or raise the limit on the device";
        }

        if (health?.SoakSeconds is { } s && s > MaxSoak.TotalSeconds)
        {
            return $"meta-data field \"{Keys.Soak}\" = {s} is above this device's limit {Keys.MaxSoak} = {MaxSoak.TotalSeconds:0} ({DefaultPath}): build the artifact with at most {MaxSoak.TotalSeconds:0}, or raise the limit on the device";
        }

        return null;
    }

    /// <summary>These settings with an application's own health timeout and soak (already checked by <see cref="Refusal"/>).</summary>
    public AppConfig With(HealthOverrides? health) => health is null
        ? this
        : this with
        {
            HealthTimeout = health.HealthTimeoutSeconds is { } t ? TimeSpan.FromSeconds(Math.Min(t, MaxHealthTimeout.TotalSeconds)) : HealthTimeout,
            Soak = health.SoakSeconds is { } s ? TimeSpan.FromSeconds(Math.Min(s, MaxSoak.TotalSeconds)) : Soak,
        };
}
