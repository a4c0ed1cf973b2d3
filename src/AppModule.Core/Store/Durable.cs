using System.Runtime.InteropServices;

namespace AppModule.Core.Store;

/// <summary>Write-then-rename with fsync of the file and its directory, so a crash leaves the old or the new content, never a mix.</summary>
public static partial class Durable
{
    /// <summary>Replaces <paramref name="path"/> atomically with <paramref name="content"/>.</summary>
    public static void WriteAllText(string path, string content)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.tmp-{Environment.ProcessId}");
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(content);
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }

        File.Move(tmp, path, overwrite: true);
        SyncDirectory(dir);
    }

    /// <summary>Appends one line and flushes it to disk.</summary>
    public static void AppendLine(string path, string line)
    {
        using var fs = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        var bytes = System.Text.Encoding.UTF8.GetBytes(line + "\n");
        fs.Write(bytes);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>fsyncs every file and directory under <paramref name="root"/> (bottom-up), then the root.</summary>
    public static void SyncTree(string root)
    {
        foreach (var f in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            if (new FileInfo(f).LinkTarget is not null)
            {
                continue;
            }

            using var h = File.OpenHandle(f, FileMode.Open, FileAccess.Read);
            RandomAccess.FlushToDisk(h);
        }

        foreach (var d in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
        {
            SyncDirectory(d);
        }

        SyncDirectory(root);
    }

    /// <summary>Makes a directory's entries (renames, creations) durable.</summary>
    public static void SyncDirectory(string dir)
    {
        var fd = open(dir, ORdOnly | OCloexec);
        if (fd < 0)
        {
            return; // best effort: some filesystems refuse
        }

        _ = fsync(fd);
        _ = close(fd);
    }

    /// <summary>
    /// Puts the fully written directory <paramref name="staging"/> in place of <paramref name="target"/> so that at
    /// every instant <paramref name="target"/> names a complete directory (the old or the new one): the two are
    /// exchanged in one step (renameat2 RENAME_EXCHANGE). The old content goes to <paramref name="keepOldAs"/>
    /// (replaced in the same way) or is deleted. Where the filesystem cannot exchange, the old directory is first
    /// renamed to <see cref="AsideName"/> and <see cref="RecoverDirectory"/> puts it back after a crash between the
    /// two renames. Everything under <paramref name="staging"/> must already be synced (<see cref="SyncTree"/>).
    /// </summary>
    public static void ReplaceDirectory(string staging, string target, string? keepOldAs = null)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (!Directory.Exists(target))
        {
            Directory.Move(staging, target);
            SyncDirectory(parent);
        }
        else if (TryExchange(staging, target))
        {
            SyncDirectory(parent); // staging now holds the old content
        }
        else
        {
            var aside = AsideName(target);
            DeleteTree(aside);
            Directory.Move(target, aside);
            Directory.Move(staging, target);
            SyncDirectory(parent);
            Directory.Move(aside, staging);
        }

        if (!Directory.Exists(staging))
        {
            return;
        }

        if (keepOldAs is null)
        {
            DeleteTree(staging);
        }
        else
        {
            ReplaceDirectory(staging, keepOldAs);
        }
    }

    /// <summary>Where <see cref="ReplaceDirectory"/> parks the old directory on a filesystem that cannot exchange two names.</summary>
    public static string AsideName(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd('/');
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.aside");
    }

    /// <summary>Completes or undoes a <see cref="ReplaceDirectory"/> a crash interrupted: a missing target gets its parked old content back.</summary>
    public static void RecoverDirectory(string target)
    {
        var aside = AsideName(target);
        if (Directory.Exists(aside))
        {
            if (Directory.Exists(target))
            {
                DeleteTree(aside);
            }
            else
            {
                Directory.Move(aside, target);
                SyncDirectory(Path.GetDirectoryName(aside)!);
            }
        }
    }

    /// <summary>Removes a directory tree by renaming it aside first, so a crash never leaves half of it under its real name.</summary>
    public static void DeleteDirectory(string dir)
    {
        if (!Directory.Exists(dir))
        {
            return;
        }

        var full = Path.GetFullPath(dir).TrimEnd('/');
        var parent = Path.GetDirectoryName(full)!;
        var doomed = Path.Combine(parent, $".{Path.GetFileName(full)}.deleted-{Environment.ProcessId}");
        DeleteTree(doomed);
        Directory.Move(full, doomed);
        SyncDirectory(parent);
        Directory.Delete(doomed, recursive: true);
    }

    private static void DeleteTree(string dir)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool TryExchange(string a, string b)
    {
        try
        {
            return renameat2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0;
        }
        catch (EntryPointNotFoundException)
        {
            return false; // a C library older than glibc 2.28: fall back to two renames
        }
    }

    private const int AtFdCwd = -100;
    private const uint RenameExchange = 2;

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    private const int ORdOnly = 0;
    private const int OCloexec = 0x80000; // same value on x86_64 and aarch64

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
