using System.Formats.Tar;
using AppModule.Core.Archives;

namespace AppModule.Artifacts;

/// <summary>Safe extraction of manifests.tar.gz (or .tar) into a directory.</summary>
public static class ManifestsPayload
{
    /// <summary>
    /// Extracts the entries under <c>manifests/</c> into <paramref name="destDir"/> (created; must be
    /// empty or absent). Rejects absolute paths, <c>..</c>, entries outside <c>manifests/</c>, symlinks
    /// that are absolute or contain <c>..</c>, hard links to anything not extracted before, device nodes
    /// and FIFOs, duplicate entries, and archives beyond <paramref name="limits"/>. Returns the relative
    /// paths of the files written.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ExtractAsync(string archivePath, string destDir, ExtractionLimits? limits, CancellationToken ct)
    {
        limits ??= new ExtractionLimits();
        string source = archivePath;
        Directory.CreateDirectory(destDir);
        if (Directory.EnumerateFileSystemEntries(destDir).Any())
            throw new ArtifactException($"cannot extract {source}: destination {destDir} is not empty");
        var root = Path.GetFullPath(destDir).TrimEnd('/');
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var files = new List<string>();
        int count = 0;
        long total = 0;
        await using var raw = new FileStream(archivePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        var compression = await PayloadArchive.DetectAsync(raw, source, ct).ConfigureAwait(false);
        await using var dec = Compression.Decompress(raw, compression);
        var tar = new CheckedTarReader(dec, source, TarEntryPolicy.FilesDirectoriesAndLinks,
            m => new UnsafeArchiveEntryException(m + ": manifests may hold only files, directories and links; rebuild the artifact with app-gen"), leaveOpen: true);
        await using (tar.ConfigureAwait(false))
        {
            try
            {
                while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } e)
                {
                    if (++count > limits.MaxEntries)
                        throw new UnsafeArchiveEntryException($"{source} has more than {limits.MaxEntries} entries: the artifact is damaged or hostile");
                    string rel = CheckedRelative(e.Name, source);
                    if (rel.Length == 0)
                    {
                        if (e.EntryType != TarEntryType.Directory) throw new UnsafeArchiveEntryException($"{source}: \"{e.Name}\" must be a directory");
                        continue;
                    }
                    if (!seen.Add(rel.TrimEnd('/')))
                        throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" appears twice: the artifact is damaged or hostile; rebuild it");
                    var target = Path.Combine(root, rel);
                    var parent = Path.GetDirectoryName(target)!;
                    try
                    {
                        EnsureInside(root, parent, source, e.Name);
                        Directory.CreateDirectory(parent);
                        var mode = e.Mode & (UnixFileMode)0b111_111_111;
                        switch (e.EntryType)
                        {
                            case TarEntryType.Directory:
                                Unix.CreateDirectory(target, mode | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                                break;
                            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                                if (e.Length > limits.MaxFileBytes)
                                    throw new UnsafeArchiveEntryException($"{source}: \"{e.Name}\" is {e.Length} bytes, more than the limit of {limits.MaxFileBytes}");
                                total += e.Length;
                                if (total > limits.MaxTotalBytes)
                                    throw new UnsafeArchiveEntryException($"{source} holds more than {limits.MaxTotalBytes} bytes of manifests: the artifact is damaged or hostile");
                                await using (var fs = Unix.CreateFile(target, mode | UnixFileMode.UserRead | UnixFileMode.UserWrite, async: true))
                                {
                                    if (e.DataStream is not null) await e.DataStream.CopyToAsync(fs, ct).ConfigureAwait(false);
                                }
                                files.Add(rel);
                                break;
                            case TarEntryType.SymbolicLink:
                                var link = e.LinkName;
                                if (link.Length == 0 || link.StartsWith('/') || link.Split('/').Any(p => p == ".."))
                                    throw new UnsafeArchiveEntryException($"{source}: symlink \"{e.Name}\" points to \"{link}\", which is absolute or leaves its directory: only links that stay inside manifests/ without '..' are allowed");
                                File.CreateSymbolicLink(target, link);
                                break;
                            case TarEntryType.HardLink:
                                string linkRel;
                                try { linkRel = CheckedRelative(e.LinkName, source); }
                                catch (UnsafeArchiveEntryException) { throw new UnsafeArchiveEntryException($"{source}: hard link \"{e.Name}\" points to \"{e.LinkName}\", outside manifests/"); }
                                if (!files.Contains(linkRel))
                                    throw new UnsafeArchiveEntryException($"{source}: hard link \"{e.Name}\" points to \"{e.LinkName}\", which is not a file extracted before it");
                                File.Copy(Path.Combine(root, linkRel), target);
                                files.Add(rel);
                                break;
                            default:
                                throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" is a {e.EntryType}; manifests may hold only files, directories and symlinks");
                        }
                    }
                    catch (IOException ex) when (ex is not EndOfStreamException)
                    {
                        throw new UnsafeArchiveEntryException($"{source}: entry \"{e.Name}\" cannot be created ({AppModule.Core.RuntimeMessages.For(ex)}): it clashes with an earlier entry (a file or link where a directory is needed), or the disk is full; rebuild the artifact or free space");
                    }
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or OverflowException)
            {
                throw new ArtifactFormatException($"{source} cannot be read ({AppModule.Core.RuntimeMessages.For(ex)}): the artifact is damaged");
            }
        }
        return files;
    }

    private static string CheckedRelative(string name, string source)
    {
        if (name.StartsWith('/'))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" has an absolute path: the artifact is damaged or hostile");
        var n = PayloadArchive.Normalize(name);
        var parts = n.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Any(p => p is ".." or "."))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" contains '..' or '.': the artifact is damaged or hostile");
        if (parts.Length == 0 || parts[0] != "manifests")
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" is outside manifests/: the artifact is damaged or hostile");
        if (parts.Any(p => p.Contains('\0')))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" contains NUL");
        return string.Join('/', parts.Skip(1));
    }

    private static void EnsureInside(string root, string dir, string source, string name)
    {
        // Every existing ancestor must resolve (through symlinks) inside root.
        var full = Path.GetFullPath(dir);
        if (full != root && !full.StartsWith(root + "/", StringComparison.Ordinal))
            throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" would be written outside the destination");
        var probe = full;
        while (probe.Length > root.Length)
        {
            var info = new DirectoryInfo(probe);
            if (info.LinkTarget is not null)
            {
                var resolved = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? "";
                if (resolved != root && !resolved.StartsWith(root + "/", StringComparison.Ordinal))
                    throw new UnsafeArchiveEntryException($"{source}: entry \"{name}\" would be written through a link leaving the destination");
            }
            probe = Path.GetDirectoryName(probe)!;
        }
    }
}
