using System.Globalization;
using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// What the sub-module remembers per application under state_dir: the snapshots "current" (the manifests last
/// rolled out, as they came) and "previous" (the ones before), the record "types" (the kinds applied, one
/// "apiVersion kind" a line, so that prune and purge look for them even when they are not among the usual kinds)
/// and the record "restarts" (HEALTHY's baseline).
/// </summary>
internal sealed class AppRecords(ManifestStore store)
{
    private const string CurrentSnapshot = "current";
    private const string PreviousSnapshot = "previous";
    private const string TypesRecord = "types";
    private const string RestartsRecord = "restarts";

    public string AppDirectory(string app) => store.AppDirectory(app);

    public bool HasCurrent(string app) => store.HasSnapshot(app, CurrentSnapshot);

    public string Current(string app) => store.Snapshot(app, CurrentSnapshot);

    public bool HasPrevious(string app) => store.HasSnapshot(app, PreviousSnapshot);

    public string Previous(string app) => store.Snapshot(app, PreviousSnapshot);

    /// <summary>Records a rollout: current becomes previous (unless <paramref name="manifestsDirectory"/> is current itself), the given manifests become current.</summary>
    public void Record(string app, string manifestsDirectory, IEnumerable<(string ApiVersion, string Kind)> types)
    {
        var same = string.Equals(Path.GetFullPath(store.Snapshot(app, CurrentSnapshot)).TrimEnd('/'), Path.GetFullPath(manifestsDirectory).TrimEnd('/'), StringComparison.Ordinal);
        store.Keep(app, CurrentSnapshot, manifestsDirectory, Manifests.Files, keepOldAs: same ? null : PreviousSnapshot);
        store.WriteRecord(app, TypesRecord, AppliedTypes(app).Concat(types).Distinct().Select(t => $"{t.ApiVersion} {t.Kind}"));
    }

    /// <summary>(apiVersion, kind) pairs applied for the application so far.</summary>
    public IReadOnlyList<(string ApiVersion, string Kind)> AppliedTypes(string app) =>
        (store.ReadRecord(app, TypesRecord) ?? [])
            .Select(l => l.Split(' ', 2, StringSplitOptions.TrimEntries))
            .Where(p => p.Length == 2 && p[0].Length > 0 && p[1].Length > 0)
            .Select(p => (p[0], p[1]))
            .ToList();

    /// <summary>Records the restart counts a ROLLOUT or START left (record <c>restarts</c>: "pod-uid/container count" lines, HEALTHY's baseline).</summary>
    public void RecordRestarts(string app, IReadOnlyDictionary<string, long> counts) =>
        store.WriteRecord(app, RestartsRecord, counts.Select(c => $"{c.Key} {c.Value.ToString(CultureInfo.InvariantCulture)}"));

    /// <summary>The restart counts the last ROLLOUT/START left; empty when none were recorded.</summary>
    public Dictionary<string, long> Restarts(string app)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var p in (store.ReadRecord(app, RestartsRecord) ?? []).Select(l => l.Split(' ')).Where(p => p.Length == 2))
        {
            counts[p[0]] = long.TryParse(p[1], CultureInfo.InvariantCulture, out var n) ? n : 0;
        }

        return counts;
    }

    public void ExportCurrent(string app, string outputDirectory) => ManifestStore.CopyFiles(store.Snapshot(app, CurrentSnapshot), outputDirectory, Manifests.Files);

    public void Forget(string app) => store.Forget(app);
}
