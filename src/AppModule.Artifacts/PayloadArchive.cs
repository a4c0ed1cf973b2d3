using System.Formats.Tar;

namespace AppModule.Artifacts;

/// <summary>Shared helpers for payload archives, and the deterministic writers app-gen uses.</summary>
public static class PayloadArchive
{
    /// <summary>Strips a leading "./" and trailing "/".</summary>
    public static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name.TrimEnd('/');
    }

    /// <summary>gzip (1f 8b), xz (fd 37 7a 58 5a) or plain tar, by magic bytes (the stream must be seekable) or else by name.</summary>
    public static async Task<ArtifactCompression> DetectAsync(Stream s, string name, CancellationToken ct)
    {
        if (!s.CanSeek) return Compression.FromName(name);
        var buf = new byte[6];
        long pos = s.Position;
        int n = 0;
        while (n < buf.Length)
        {
            int r = await s.ReadAsync(buf.AsMemory(n), ct).ConfigureAwait(false);
            if (r == 0) break;
            n += r;
        }
        s.Position = pos;
        if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) return ArtifactCompression.Gzip;
        if (n >= 6 && buf[0] == 0xfd && buf[1] == 0x37 && buf[2] == 0x7a && buf[3] == 0x58 && buf[4] == 0x5a && buf[5] == 0) return ArtifactCompression.Lzma;
        return ArtifactCompression.None;
    }

    /// <summary>A GNU tar entry with fixed owner, times and mode (reproducible).</summary>
    public static GnuTarEntry Entry(TarEntryType type, string name, UnixFileMode mode, DateTimeOffset mtime) => new(type, name)
    {
        Mode = mode,
        Uid = 0,
        Gid = 0,
        UserName = "root",
        GroupName = "root",
        ModificationTime = mtime,
        AccessTime = mtime,
        ChangeTime = mtime,
    };

    public const UnixFileMode FileMode644 = (UnixFileMode)0b110_100_100;
    public const UnixFileMode FileMode755 = (UnixFileMode)0b111_101_101;

    /// <summary>Writes manifests.tar.gz from a directory: entries <c>manifests/...</c> in ordinal order,
    /// files 0644 (0755 when executable by the owner), directories 0755, symlinks kept, owner root,
    /// mtime fixed. Throws when the directory holds no file at all.</summary>
    public static async Task WriteManifestsAsync(string manifestsDir, Stream output, DateTimeOffset mtime, CancellationToken ct)
    {
        if (!Directory.Exists(manifestsDir))
            throw new ArtifactException($"manifests directory {manifestsDir} does not exist: give --manifests-dir a directory holding your compose file or k8s manifests");
        var root = Path.GetFullPath(manifestsDir);
        var all = Walk(root).ToList();
        if (!all.Any(p => File.Exists(Path.Combine(root, p)) && new FileInfo(Path.Combine(root, p)).LinkTarget is null))
            throw new ArtifactException($"manifests directory {manifestsDir} is empty: put your docker-compose.yml (or k8s manifests) in it");
        await using var gz = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true);
        await using var tar = new TarWriter(gz, TarEntryFormat.Gnu, leaveOpen: true);
        await tar.WriteEntryAsync(Entry(TarEntryType.Directory, "manifests/", FileMode755, mtime), ct).ConfigureAwait(false);
        foreach (var rel in all)
        {
            var full = Path.Combine(root, rel);
            var fi = new FileInfo(full);
            if (fi.LinkTarget is { } lt)
            {
                var e = Entry(TarEntryType.SymbolicLink, "manifests/" + rel, (UnixFileMode)0b111_111_111, mtime);
                e.LinkName = lt;
                await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
            }
            else if (Directory.Exists(full))
            {
                await tar.WriteEntryAsync(Entry(TarEntryType.Directory, "manifests/" + rel + "/", FileMode755, mtime), ct).ConfigureAwait(false);
            }
            else
            {
                bool exec = (Unix.GetMode(full) & UnixFileMode.UserExecute) != 0;
                var e = Entry(TarEntryType.RegularFile, "manifests/" + rel, exec ? FileMode755 : FileMode644, mtime);
                await using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
                e.DataStream = fs;
                await tar.WriteEntryAsync(e, ct).ConfigureAwait(false);
            }
        }
    }

    private static IEnumerable<string> Walk(string root, string rel = "")
    {
        var dir = rel.Length == 0 ? root : Path.Combine(root, rel);
        foreach (var full in Directory.EnumerateFileSystemEntries(dir).OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal))
        {
            var name = Path.GetFileName(full);
            var r = rel.Length == 0 ? name : rel + "/" + name;
            var fi = new FileInfo(full);
            if (fi.LinkTarget is null && !File.Exists(full) && !Directory.Exists(full)) continue;
            var attrs = File.GetAttributes(full);
            if (fi.LinkTarget is null && (attrs & FileAttributes.Directory) == 0 && (attrs & (FileAttributes.Device | FileAttributes.ReparsePoint)) != 0)
                throw new ArtifactException($"manifests directory entry {full} is not a regular file, directory or symlink: remove it");
            yield return r;
            if (fi.LinkTarget is null && Directory.Exists(full))
                foreach (var sub in Walk(root, r)) yield return sub;
        }
    }
}
