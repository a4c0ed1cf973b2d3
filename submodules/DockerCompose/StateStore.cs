using SubModule.Hosting;

namespace DockerCompose;

/// <summary>
/// The sub-module's own state per application, under <c>state_dir/&lt;project&gt;/</c>:
/// <c>manifests/</c> (a copy of the last rolled-out manifests directory, for EXPORT_MANIFEST, STOP/START
/// without a directory, PURGE) and <c>services</c> (one "name replicas image" line per service).
/// Writes replace the directory atomically (write aside, then rename).
/// </summary>
public sealed class StateStore(string root)
{
    public string AppDir(string project) => Path.Combine(root, project);

    public string ManifestsDir(string project) => Path.Combine(AppDir(project), "manifests");

    public bool HasManifests(string project) => Directory.Exists(ManifestsDir(project));

    /// <summary>Keeps a copy of <paramref name="source"/> and the resolved services as the application's current state.</summary>
    public void Save(string project, string source, IReadOnlyList<ServiceDefinition> services)
    {
        var app = AppDir(project);
        var target = ManifestsDir(project);
        var staging = Path.Combine(app, "manifests.new");
        var old = Path.Combine(app, "manifests.old");
        try
        {
            Directory.CreateDirectory(app);
            if (!SamePath(source, target))
            {
                DeleteIfExists(staging);
                CopyDirectory(source, staging);
                DeleteIfExists(old);
                if (Directory.Exists(target))
                {
                    Directory.Move(target, old);
                }

                Directory.Move(staging, target);
                DeleteIfExists(old);
            }

            var lines = services.Select(s => $"{s.Name} {s.Replicas} {s.Image}");
            var tmp = Path.Combine(app, "services.new");
            File.WriteAllLines(tmp, lines);
            File.Move(tmp, Path.Combine(app, "services"), overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot keep a copy of the manifests in {app}: {e.Message}; check state_dir and its permissions");
        }
    }

    /// <summary>The services recorded at the last ROLLOUT, or null when the application is unknown.</summary>
    public IReadOnlyList<ServiceDefinition>? Services(string project)
    {
        var f = Path.Combine(AppDir(project), "services");
        if (!File.Exists(f))
        {
            return null;
        }

        return File.ReadAllLines(f)
            .Select(l => l.Split(' ', 3))
            .Where(p => p.Length >= 2 && p[0].Length > 0)
            .Select(p => new ServiceDefinition(p[0], p.Length > 2 && p[2].Length > 0 ? p[2] : null, int.TryParse(p[1], out var n) ? n : 1))
            .ToArray();
    }

    /// <summary>Image references that other applications known here name in their manifests.</summary>
    public IReadOnlySet<string> ImagesOfOtherApps(string project)
    {
        var images = new HashSet<string>(StringComparer.Ordinal);
        if (!Directory.Exists(root))
        {
            return images;
        }

        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var other = Path.GetFileName(dir);
            if (other == project)
            {
                continue;
            }

            foreach (var s in Services(other) ?? [])
            {
                if (s.Image is not null)
                {
                    images.Add(ImageUrl.Normalize(ImageUrl.Parse(s.Image).Reference));
                }
            }
        }

        return images;
    }

    public void Forget(string project)
    {
        try
        {
            DeleteIfExists(AppDir(project));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot remove {AppDir(project)}: {e.Message}");
        }
    }

    public static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var dir in Directory.EnumerateDirectories(source, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(target, Path.GetRelativePath(source, dir)));
        }

        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(target, Path.GetRelativePath(source, file)), overwrite: true);
        }
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd('/'), Path.GetFullPath(b).TrimEnd('/'), StringComparison.Ordinal);

    private static void DeleteIfExists(string dir)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
