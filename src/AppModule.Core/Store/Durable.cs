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

    private const int ORdOnly = 0;
    private const int OCloexec = 0x80000; // same value on x86_64 and aarch64

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
