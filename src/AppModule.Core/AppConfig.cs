namespace AppModule.Core;

/// <summary>
/// The `app` module's settings (/etc/mender/mender-app.conf; documented in the top-level
/// mender-app.conf). Keys: persistent_store, submodules_dir, health_timeout_seconds, soak_seconds,
/// health_poll_seconds, submodule_timeout_seconds, log_level, engine_disk_check, engine_disk_margin_mib.
/// </summary>
public sealed record AppConfig
{
    public const string DefaultPath = "/etc/mender/mender-app.conf";

    public string PersistentStore { get; init; } = "/data/mender-app";

    public string SubModulesDir { get; init; } = "/usr/share/mender/app-modules/v1";

    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(120);

    public TimeSpan Soak { get; init; } = TimeSpan.Zero;

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
    }
}
