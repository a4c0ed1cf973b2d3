using AppModule.Core;
using AppModule.Runtime;

namespace AppModule.Engine;

/// <summary>Reads /etc/mender/mender-app.conf (TOML, or the reference's KEY=VALUE lines) into an <see cref="AppConfig"/>.</summary>
public static class ConfigLoader
{
    /// <summary>The config path: $MENDER_APP_CONFIG when set (tests, manual runs), else /etc/mender/mender-app.conf.</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("MENDER_APP_CONFIG") is { Length: > 0 } p ? p : AppConfig.DefaultPath;

    public static AppConfig Load(string path)
    {
        var f = ConfigFile.Load(path);
        var d = new AppConfig();
        var level = f.GetString(AppConfig.Keys.LogLevel, d.LogLevel);
        if (!Log.TryParseLevel(level, out _))
        {
            throw new ConfigException($"{path}: {AppConfig.Keys.LogLevel} = \"{level}\" is not one of error, warning, info, debug; fix the line");
        }

        var store = f.GetString(AppConfig.Keys.PersistentStore, d.PersistentStore);
        var subs = f.GetString(AppConfig.Keys.SubModulesDir, d.SubModulesDir);
        foreach (var (key, value) in new[] { (AppConfig.Keys.PersistentStore, store), (AppConfig.Keys.SubModulesDir, subs) })
        {
            if (!Path.IsPathRooted(value))
            {
                throw new ConfigException($"{path}: {key} = \"{value}\" must be an absolute path; fix the line");
            }
        }

        return d with
        {
            PersistentStore = store,
            SubModulesDir = subs,
            HealthTimeout = f.GetSeconds(AppConfig.Keys.HealthTimeout, d.HealthTimeout),
            Soak = f.GetSeconds(AppConfig.Keys.Soak, d.Soak),
            HealthPoll = TimeSpan.FromSeconds(f.GetInt(AppConfig.Keys.HealthPoll, (int)d.HealthPoll.TotalSeconds, 1, 3600)),
            SubModuleTimeout = f.GetSeconds(AppConfig.Keys.SubModuleTimeout, d.SubModuleTimeout),
            LogLevel = level,
            EngineDiskCheck = f.GetBool(AppConfig.Keys.EngineDiskCheck, d.EngineDiskCheck),
            EngineDiskMarginBytes = (long)f.GetInt(AppConfig.Keys.EngineDiskMargin, (int)(d.EngineDiskMarginBytes >> 20), 0, 1 << 20) << 20,
            MaxHealthTimeout = f.GetSeconds(AppConfig.Keys.MaxHealthTimeout, d.MaxHealthTimeout),
            MaxSoak = f.GetSeconds(AppConfig.Keys.MaxSoak, d.MaxSoak),
        };
    }
}
