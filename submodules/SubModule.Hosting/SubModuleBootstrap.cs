using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace SubModule.Hosting;

/// <summary>
/// What makes one orchestrator sub-module: its name in logs, where its config file is, how its settings are
/// read from that file and the call's context, and how the module is built from them.
/// </summary>
/// <param name="Component">the name its log lines carry (the executable's name)</param>
/// <param name="DefaultConfigPath">its config file on a device, e.g. /etc/mender/mender-app-docker-compose.conf</param>
/// <param name="ConfigPathVariable">the environment variable that names another config file (tests)</param>
/// <param name="LoadSettings">reads the settings; throws <see cref="ConfigException"/> naming file, key and fix</param>
/// <param name="Create">builds the module; it is disposed after the call when it is <see cref="IDisposable"/></param>
public sealed record SubModuleDefinition<TSettings>(
    string Component,
    string DefaultConfigPath,
    string ConfigPathVariable,
    Func<ConfigFile, SubModuleContext, TSettings> LoadSettings,
    Func<TSettings, SubModuleContext, ISubModule> Create);

/// <summary>
/// The one <c>Program.cs</c> of every sub-module: log component and level (the host's), stop signals, the
/// context of the call, the settings from the config file, then <see cref="SubModuleHost.RunAsync"/>, which
/// maps the outcome to the shared exit codes.
/// </summary>
public static class SubModuleBootstrap
{
    public static async Task<int> RunAsync<TSettings>(string[] args, SubModuleDefinition<TSettings> definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        Log.Component = definition.Component;
        var context = SubModuleContext.FromProcess();
        if (Log.TryParseLevel(context.LogLevel, out var level))
        {
            Log.Level = level;
        }

        using var shutdown = new ShutdownSignal();
        ISubModule? module = null;
        try
        {
            return await SubModuleHost.RunAsync(args, () =>
            {
                var settings = definition.LoadSettings(LoadConfig(context, definition.ConfigPathVariable, definition.DefaultConfigPath), context);
                module = definition.Create(settings, context);
                return module;
            }, Console.Out, shutdown.Token).ConfigureAwait(false);
        }
        finally
        {
            (module as IDisposable)?.Dispose();
        }
    }

    /// <summary>The sub-module's config file: the one <paramref name="pathVariable"/> names, else <paramref name="defaultPath"/> (missing: empty).</summary>
    public static ConfigFile LoadConfig(SubModuleContext context, string pathVariable, string defaultPath)
    {
        ArgumentNullException.ThrowIfNull(context);
        return ConfigFile.Load(context.Get(pathVariable) ?? defaultPath);
    }
}
