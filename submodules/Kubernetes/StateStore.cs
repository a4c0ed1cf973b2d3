using SubModule.Hosting;

namespace Kubernetes;

/// <summary>
/// Per application, under <c>state_dir/&lt;app&gt;/</c>: <c>current/</c> (the manifests last rolled
/// out, as they came), <c>previous/</c> (the ones before) and <c>types</c> (the kinds applied, so that
/// prune and purge look for them even when they are not among the usual kinds).
/// </summary>
public sealed class StateStore(string root)
{
    public string AppDirectory(string app) => Path.Combine(root, app);

    public string Current(string app) => Path.Combine(root, app, "current");

    public string Previous(string app) => Path.Combine(root, app, "previous");

    public bool HasCurrent(string app) => Directory.Exists(Current(app));

    public bool HasPrevious(string app) => Directory.Exists(Previous(app));

    /// <summary>(apiVersion, kind) pairs applied for the application so far.</summary>
    public IReadOnlyList<(string ApiVersion, string Kind)> Types(string app)
    {
        var file = Path.Combine(root, app, "types");
        if (!File.Exists(file))
        {
            return [];
        }

        return File.ReadAllLines(file)
            .Select(l => l.Split(' ', 2, StringSplitOptions.TrimEntries))
            .Where(p => p.Length == 2 && p[0].Length > 0 && p[1].Length > 0)
            .Select(p => (p[0], p[1]))
            .ToList();
    }

    /// <summary>Records a rollout: current becomes previous, the given manifests become current.</summary>
    public void Record(string app, string manifestsDirectory, IEnumerable<(string ApiVersion, string Kind)> types)
    {
        try
        {
            var appDir = AppDirectory(app);
            Directory.CreateDirectory(appDir);
            var staging = Path.Combine(appDir, "current.new");
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, true);
            }

            CopyManifests(manifestsDirectory, staging);
            if (Directory.Exists(Current(app)) && !SameDirectory(Current(app), manifestsDirectory))
            {
                if (Directory.Exists(Previous(app)))
                {
                    Directory.Delete(Previous(app), true);
                }

                Directory.Move(Current(app), Previous(app));
            }
            else if (Directory.Exists(Current(app)))
            {
                Directory.Delete(Current(app), true);
            }

            Directory.Move(staging, Current(app));
            var all = Types(app).Concat(types).Distinct().Select(t => $"{t.ApiVersion} {t.Kind}");
            File.WriteAllLines(Path.Combine(appDir, "types"), all);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot record the applied manifests in {AppDirectory(app)}: {e.Message}; check state_dir");
        }
    }

    public void Forget(string app)
    {
        var dir = AppDirectory(app);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Copies the manifest files (only those) of a directory, keeping their relative paths.</summary>
    public static void CopyManifests(string from, string to)
    {
        Directory.CreateDirectory(to);
        var baseDir = File.Exists(from) ? Path.GetDirectoryName(Path.GetFullPath(from))! : Path.GetFullPath(from);
        foreach (var file in Manifests.Files(from))
        {
            var rel = Path.GetRelativePath(baseDir, Path.GetFullPath(file));
            var target = Path.Combine(to, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    private static bool SameDirectory(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd('/'), Path.GetFullPath(b).TrimEnd('/'), StringComparison.Ordinal);
}
