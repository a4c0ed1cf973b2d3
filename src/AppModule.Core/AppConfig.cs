namespace AppModule.Core;

/// <summary>
/// The `app` module's settings (/etc/mender/mender-app.conf; documented in the top-level
/// mender-app.conf). Keys: persistent_store, submodules_dir, health_timeout_seconds, soak_seconds,
/// health_poll_seconds, submodule_timeout_seconds, log_level.
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
    }
}
