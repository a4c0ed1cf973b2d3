using AppModule.Core.Policy;
using AppModule.Runtime;

namespace SubModule.Hosting;

/// <summary>Reads a sub-module config's host-access policy: <c>allow_host_access</c> and the legacy <c>forbid_host_root_mounts</c>.</summary>
public static class HostAccessSettings
{
    /// <summary>The policy of <paramref name="config"/>; throws <see cref="ConfigException"/> naming an unknown kind.</summary>
    public static HostAccessPolicy From(ConfigFile config)
    {
        ArgumentNullException.ThrowIfNull(config);
        bool? legacy = config.Contains(HostAccessPolicy.LegacyRootKey) ? config.GetBool(HostAccessPolicy.LegacyRootKey, true) : null;
        var (policy, error) = HostAccessPolicy.Create(config.GetString(HostAccessPolicy.AllowKey), legacy, config.Source);
        return policy ?? throw new ConfigException(error!);
    }
}
