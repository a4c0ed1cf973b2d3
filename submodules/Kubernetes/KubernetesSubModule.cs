using System.Text.RegularExpressions;
using AppModule.Core.Policy;
using AppModule.Core.SubModules;
using AppModule.Runtime;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// The k8s orchestrator sub-module. Objects are applied server-side, labelled
/// <c>app.mender.io/application=&lt;app&gt;</c>; everything else (prune, STOP, START, PURGE, ALIVE,
/// HEALTHY, LS_COMPONENTS) finds the application's objects by that label. STOP scales workloads to
/// zero (remembering the replicas in an annotation) and never deletes PersistentVolumeClaims or
/// namespaces. Images go to containerd's k8s.io namespace with <c>ctr</c>.
/// Each aspect is its own class over <see cref="IKubeApi"/>: <see cref="Applier"/> (ROLLOUT, ROLLBACK),
/// <see cref="Pruner"/> (prune, PURGE), <see cref="Scaler"/> (STOP, START), <see cref="Inventory"/>
/// (the application's objects, pods and images) and <see cref="Health"/> (rollout wait, ALIVE, HEALTHY);
/// this class checks the call and hands it to them.
/// </summary>
public sealed partial class KubernetesSubModule : ISubModule, IDisposable
{
    private readonly K8sSettings _settings;
    private readonly SubModuleContext _context;
    private readonly Containerd _containerd;
    private readonly AppRecords _records;
    private KubeApi? _api;
    private Inventory? _inventory;
    private Health? _health;
    private Scaler? _scaler;
    private Pruner? _pruner;
    private Applier? _applier;

    public KubernetesSubModule(K8sSettings settings, SubModuleContext context)
    {
        _settings = settings;
        _context = context;
        _containerd = new Containerd(settings);
        _records = new AppRecords(new ManifestStore(settings.StateDirectory));
    }

    /// <summary>Connected on first use, so that image calls work without a reachable cluster.</summary>
    private KubeApi Api => _api ??= KubeApi.Connect(_settings, _context.Variables);

    private Inventory Inventory => _inventory ??= new Inventory(Api, _containerd);

    private Health Health => _health ??= new Health(Api, _settings, Inventory, _records);

    private Scaler Scaler => _scaler ??= new Scaler(Api, _settings, Inventory, Health);

    private Pruner Pruner => _pruner ??= new Pruner(Api, _settings, _containerd, Inventory, _records);

    private Applier Applier => _applier ??= new Applier(Api, _settings, _records, Pruner, Scaler, Health);

    // ---- images ---------------------------------------------------------------------------------

    public Task LoadAsync(SubModuleCall.Load call, CancellationToken ct)
    {
        if (call.UrlCurrent != call.UrlNew)
        {
            Log.Info($"{call.UrlNew}: the k8s sub-module does not apply deep deltas; {call.File} must hold the whole image");
        }

        return _containerd.ImportAsync(call.File, call.UrlNew, ct);
    }

    public Task SaveAsync(SubModuleCall.Save call, CancellationToken ct) => _containerd.ExportAsync(call.Url, call.OutputFile, ct);

    /// <summary>Removes an image from containerd, unless a workload or pod of the cluster still names it.</summary>
    public async Task DeleteAsync(SubModuleCall.Delete call, CancellationToken ct)
    {
        IReadOnlyList<string> users;
        try
        {
            users = await Inventory.ImageUsersAsync(Containerd.Normalize(call.Url), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ConfigException || (e is SubModuleFailure && e is not KubeApiException))
        {
            Log.Warning($"cannot check whether the cluster still uses {call.Url} ({e.Message}); deleting it anyway");
            users = [];
        }

        if (users.Count > 0)
        {
            throw new SubModuleFailure($"image {call.Url} is in use by {string.Join(", ", users)}; stop or remove those first");
        }

        await _containerd.RemoveAsync(call.Url, ct).ConfigureAwait(false);
    }

    // ---- rollout, stop, start, purge ------------------------------------------------------------

    public Task RolloutAsync(SubModuleCall.Rollout call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Applier.RolloutAsync(call.Application, call.ManifestsDirectory, ct);
    }

    public Task RollbackAsync(SubModuleCall.Rollback call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Applier.RollbackAsync(call.Application, call.RollbackDirectory, call.FailedDirectory, ct);
    }

    public Task StopAsync(SubModuleCall.Stop call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Scaler.StopAsync(call.Application, ct);
    }

    public async Task StartAsync(SubModuleCall.Start call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        if (await Scaler.StartAsync(call.Application, ct).ConfigureAwait(false))
        {
            return;
        }

        if (call.ManifestsDirectory is not null && Applier.HasManifests(call.ManifestsDirectory))
        {
            Log.Info($"{call.Application} has no workloads in the cluster; rolling out {call.ManifestsDirectory}");
            await Applier.RolloutAsync(call.Application, call.ManifestsDirectory, ct).ConfigureAwait(false);
            return;
        }

        throw new SubModuleFailure($"nothing to start: no Deployments, StatefulSets or DaemonSets are labelled {Inventory.Selector(call.Application)}; roll the application out");
    }

    public Task PurgeAsync(SubModuleCall.Purge call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Pruner.PurgeAsync(call.Application, ct);
    }

    // ---- queries --------------------------------------------------------------------------------

    public Task AliveAsync(SubModuleCall.Alive call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Health.AliveAsync(call.Application, ct);
    }

    public Task HealthyAsync(SubModuleCall.Healthy call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Health.HealthyAsync(call.Application, ct);
    }

    public Task<IReadOnlyList<Component>> ListComponentsAsync(SubModuleCall.LsComponents call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        return Inventory.ComponentsAsync(call.Application, ct);
    }

    public Task ExportManifestAsync(SubModuleCall.ExportManifest call, CancellationToken ct)
    {
        CheckApplication(call.Application);
        if (!_records.HasCurrent(call.Application))
        {
            throw new SubModuleFailure($"no manifests of {call.Application} were rolled out by this module (nothing in {_records.Current(call.Application)})");
        }

        _records.ExportCurrent(call.Application, call.OutputDirectory);
        return Task.CompletedTask;
    }

    public Task<EngineStorage> StorageAsync(CancellationToken ct) => _containerd.StorageAsync(ct);

    public async Task<IReadOnlyList<Requirement>> RequirementsAsync(CancellationToken ct)
    {
        var result = new List<Requirement>();
        try
        {
            var version = await Api.VersionAsync(ct).ConfigureAwait(false);
            var served = await Api.ServesCoreApiAsync(ct).ConfigureAwait(false);
            result.Add(!served
                ? new Requirement("api-server", false, "error", $"{Api.Server} answers but serves no Kubernetes API (kubeconfig: {Api.Source})")
                : new Requirement("api-server", true, "error", $"{Api.Server} (Kubernetes {version?["gitVersion"]?.GetValue<string>() ?? "?"}, kubeconfig: {Api.Source})"));
        }
        catch (Exception e) when (e is SubModuleFailure or ConfigException)
        {
            result.Add(new Requirement("api-server", false, "error", e.Message));
        }

        var (ok, detail) = await _containerd.ProbeAsync(ct).ConfigureAwait(false);
        result.Add(new Requirement("containerd", ok, "error", detail));

        // The artifact's platform (set by `app` from its meta-data) must be this machine's: containerd
        // imports images for the node it runs on.
        if (_settings.Platform is { } platform)
        {
            result.Add(Requirement.PlatformOnMachine(platform));
        }

        // With MENDER_APP_MANIFESTS_DIR (set by `app` for the version it is about to install): the
        // manifests must parse into objects that the device's host-access policy allows, before anything stops.
        if (_context.PreCheckManifests is { } manifests)
        {
            try
            {
                var objects = Manifests.Load(manifests);
                result.AddRange(Requirement.Describing(Manifests.Contents(objects)));
                HostAccessCheck.Check(objects, _settings.HostAccess);
                result.Add(new Requirement("manifests", true, "error", $"{objects.Count} object(s)"));
            }
            catch (SubModuleFailure e)
            {
                result.Add(new Requirement("manifests", false, "error", e.Message));
            }
        }

        return result;
    }

    private static void CheckApplication(string app)
    {
        if (!LabelValue().IsMatch(app))
        {
            throw new SubModuleFailure($"application name \"{app}\" cannot be used as a Kubernetes label value: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex LabelValue();

    public void Dispose() => _api?.Dispose();
}
