using AppModule.Core.Store;

namespace SubModule.Hosting;

/// <summary>
/// A sub-module's own state, one directory per application under its <c>state_dir</c>: named snapshots of
/// manifests directories (what was last rolled out, for EXPORT_MANIFEST, STOP/START without a directory,
/// ROLLBACK, PURGE) and small line-based records. Every write goes through the core's durable helpers: a
/// snapshot is copied aside, synced, then exchanged with the old one in one step (at no instant is there no
/// snapshot directory), and a record is written then renamed, both fsynced with their directory.
/// </summary>
public sealed class ManifestStore(string root)
{
    public string Root { get; } = root;

    public string AppDirectory(string application) => Path.Combine(Root, application);

    /// <summary>The directory of the snapshot <paramref name="name"/> of the application (it may not exist).</summary>
    public string Snapshot(string application, string name)
    {
        var dir = Path.Combine(AppDirectory(application), name);
        if (Directory.Exists(Durable.AsideName(dir)))
        {
            Guard(application, () => Durable.RecoverDirectory(dir));
        }

        return dir;
    }

    public bool HasSnapshot(string application, string name) => Directory.Exists(Snapshot(application, name));

    /// <summary>
    /// Makes the manifest files of <paramref name="source"/> (all files, or those <paramref name="files"/> lists)
    /// the snapshot <paramref name="name"/>. The snapshot it replaces becomes <paramref name="keepOldAs"/> when
    /// given, else it is deleted. <paramref name="source"/> may be the snapshot itself.
    /// </summary>
    public void Keep(string application, string name, string source, Func<string, IEnumerable<string>>? files = null, string? keepOldAs = null)
    {
        var app = AppDirectory(application);
        Guard(application, () =>
        {
            Directory.CreateDirectory(app);
            var staging = Path.Combine(app, $".{name}.new-{Environment.ProcessId}");
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            CopyFiles(source, staging, files);
            Durable.SyncTree(staging);
            var target = Snapshot(application, name);
            Durable.ReplaceDirectory(staging, target, keepOldAs is null ? null : Path.Combine(app, keepOldAs));
        });
    }

    /// <summary>The lines of the record <paramref name="name"/>, or null when it was never written.</summary>
    public IReadOnlyList<string>? ReadRecord(string application, string name)
    {
        var file = Path.Combine(AppDirectory(application), name);
        return File.Exists(file) ? File.ReadAllLines(file) : null;
    }

    /// <summary>Replaces the record <paramref name="name"/> durably (write, fsync, rename, fsync the directory).</summary>
    public void WriteRecord(string application, string name, IEnumerable<string> lines)
    {
        Guard(application, () =>
        {
            Directory.CreateDirectory(AppDirectory(application));
            Durable.WriteAllText(Path.Combine(AppDirectory(application), name), string.Concat(lines.Select(l => l + "\n")));
        });
    }

    /// <summary>Applications with a state directory here.</summary>
    public IEnumerable<string> Applications() =>
        Directory.Exists(Root)
            ? Directory.EnumerateDirectories(Root).Select(Path.GetFileName).Where(n => n is { Length: > 0 } && n[0] != '.').Select(n => n!)
            : [];

    /// <summary>Removes everything kept for the application.</summary>
    public void Forget(string application) => Guard(application, () => Durable.DeleteDirectory(AppDirectory(application)));

    /// <summary>Copies the files of <paramref name="source"/> (a directory, or a single file) into <paramref name="target"/>, keeping their relative paths.</summary>
    public static void CopyFiles(string source, string target, Func<string, IEnumerable<string>>? files = null)
    {
        Directory.CreateDirectory(target);
        var baseDir = File.Exists(source) ? Path.GetDirectoryName(Path.GetFullPath(source))! : Path.GetFullPath(source);
        if (files is null && Directory.Exists(source))
        {
            foreach (var dir in Directory.EnumerateDirectories(source, "*", SearchOption.AllDirectories))
            {
                Directory.CreateDirectory(Path.Combine(target, Path.GetRelativePath(source, dir)));
            }
        }

        var list = files is not null ? files(source) : File.Exists(source) ? [source] : Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories);
        foreach (var file in list)
        {
            var to = Path.Combine(target, Path.GetRelativePath(baseDir, Path.GetFullPath(file)));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to, overwrite: true);
        }
    }

    private void Guard(string application, Action write)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot update the state of {application} in {AppDirectory(application)}: {e.Message}; check state_dir, its free space and permissions");
        }
    }
}
