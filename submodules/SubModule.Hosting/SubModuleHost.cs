using System.Text;
using System.Text.Json;
using AppModule.Core.SubModules;
using AppModule.Runtime;

namespace SubModule.Hosting;

/// <summary>
/// Runs one sub-module call from the command line and maps its outcome to the exit-code contract
/// shared by every sub-module:
/// <list type="table">
/// <item><term>0</term><description>success (for ALIVE/HEALTHY: alive/healthy)</description></item>
/// <item><term>1</term><description>the call failed (reason on stderr), or ALIVE/HEALTHY: not alive/healthy</description></item>
/// <item><term>2</term><description>usage: unknown call or wrong arguments</description></item>
/// <item><term>3</term><description>configuration error (file named on stderr)</description></item>
/// <item><term>4</term><description>REQS: a requirement of severity error is not met</description></item>
/// <item><term>143</term><description>stopped by SIGTERM/SIGINT (children stopped first)</description></item>
/// <item><term>70</term><description>internal error (a bug: please report it with the stderr output)</description></item>
/// </list>
/// </summary>
public static class SubModuleHost
{
    public const int Success = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int ConfigError = 3;
    public const int RequirementsMissing = 4;
    public const int Interrupted = 143;
    public const int InternalError = 70;

    public static async Task<int> RunAsync(string[] args, Func<ISubModule> factory, TextWriter stdout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(stdout);
        SubModuleCall call;
        try
        {
            call = SubModuleCall.Parse(args);
        }
        catch (SubModuleUsageException e)
        {
            Log.Error(e.Message);
            return Usage;
        }

        try
        {
            var module = factory();
            switch (call)
            {
                case SubModuleCall.Load c: await module.LoadAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Save c: await module.SaveAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Delete c: await module.DeleteAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Rollout c: await module.RolloutAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Rollback c: await module.RollbackAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Stop c: await module.StopAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Start c: await module.StartAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Alive c: await module.AliveAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Healthy c: await module.HealthyAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.ExportManifest c: await module.ExportManifestAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.Purge c: await module.PurgeAsync(c, ct).ConfigureAwait(false); break;
                case SubModuleCall.LsComponents c:
                    var components = await module.ListComponentsAsync(c, ct).ConfigureAwait(false);
                    await stdout.WriteLineAsync(ComponentsJson(components)).ConfigureAwait(false);
                    break;
                case SubModuleCall.Storage:
                    var storage = await module.StorageAsync(ct).ConfigureAwait(false);
                    await stdout.WriteLineAsync(storage.ToJson()).ConfigureAwait(false);
                    break;
                case SubModuleCall.Reqs:
                    var reqs = await module.RequirementsAsync(ct).ConfigureAwait(false);
                    foreach (var r in reqs)
                    {
                        await stdout.WriteLineAsync($"{r.Name}:{(r.Met ? "ok" : r.Severity)}{(r.Detail.Length > 0 ? " " + r.Detail : string.Empty)}").ConfigureAwait(false);
                    }

                    await stdout.FlushAsync(ct).ConfigureAwait(false);
                    return reqs.Any(r => !r.Met && r.Severity == "error") ? RequirementsMissing : Success;
            }

            await stdout.FlushAsync(ct).ConfigureAwait(false);
            return Success;
        }
        catch (SubModuleFailure e)
        {
            Log.Error($"{call.Name} failed: {e.Message}");
            return Failed;
        }
        catch (ConfigException e)
        {
            Log.Error(e.Message);
            return ConfigError;
        }
        catch (ChildProcessException e)
        {
            Log.Error($"{call.Name} failed: {e.Message}");
            return Failed;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Log.Error($"{call.Name} interrupted by a stop signal; children were stopped");
            return Interrupted;
        }
        catch (Exception e)
        {
            Log.Error($"{call.Name} failed with an internal error: {e}");
            return InternalError;
        }
    }

    /// <summary>LS_COMPONENTS output per seed 004: a JSON array of {type, url[, additional_data]}.</summary>
    public static string ComponentsJson(IReadOnlyList<Component> components)
    {
        ArgumentNullException.ThrowIfNull(components);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartArray();
            foreach (var c in components)
            {
                w.WriteStartObject();
                w.WriteString("type", c.Type);
                w.WriteString("url", c.Url);
                if (c.AdditionalData is { Count: > 0 })
                {
                    w.WriteStartObject("additional_data");
                    foreach (var (k, v) in c.AdditionalData.OrderBy(p => p.Key, StringComparer.Ordinal))
                    {
                        w.WriteString(k, v);
                    }

                    w.WriteEndObject();
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
