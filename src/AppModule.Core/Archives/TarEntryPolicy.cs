using System.Formats.Tar;

namespace AppModule.Core.Archives;

/// <summary>
/// Which tar entry types a reader of the project accepts: the one rule every tar reader applies through
/// <see cref="CheckedTarReader"/> (or <see cref="Check(string, string, TarEntryType)"/> for a reader of its
/// own). Anything else (GNU sparse files, character and block devices, FIFOs, GNU volume/dump/multi-volume
/// entries, unknown types, and links where the policy has none) is refused with one message that names
/// the archive, the entry and its type.
/// </summary>
public sealed class TarEntryPolicy
{
    private readonly HashSet<TarEntryType> _accepted;

    private TarEntryPolicy(string accepts, params TarEntryType[] accepted)
    {
        Accepts = accepts;
        _accepted = [.. accepted];
    }

    /// <summary>Regular files and directories: the artifact's own tars (outer, header, data) and images.tar.gz.</summary>
    public static TarEntryPolicy FilesAndDirectories { get; } = new("regular files and directories",
        TarEntryType.RegularFile, TarEntryType.V7RegularFile, TarEntryType.ContiguousFile, TarEntryType.Directory);

    /// <summary>Also symbolic and hard links: manifests.tar.gz and saved images (docker save / OCI layout: image.img,
    /// base images, deltas, app-gen's image inputs), which link duplicate blobs.</summary>
    public static TarEntryPolicy FilesDirectoriesAndLinks { get; } = new("regular files, directories, symbolic links and hard links",
        TarEntryType.RegularFile, TarEntryType.V7RegularFile, TarEntryType.ContiguousFile, TarEntryType.Directory,
        TarEntryType.SymbolicLink, TarEntryType.HardLink);

    /// <summary>Everything a filesystem layer may hold (also devices, FIFOs and a PAX global header); only
    /// what cannot be read at all (GNU sparse, volume and unknown entries) is refused.</summary>
    public static TarEntryPolicy FilesystemLayer { get; } = new("regular files, directories, links, devices and FIFOs",
        TarEntryType.RegularFile, TarEntryType.V7RegularFile, TarEntryType.ContiguousFile, TarEntryType.Directory,
        TarEntryType.SymbolicLink, TarEntryType.HardLink, TarEntryType.CharacterDevice, TarEntryType.BlockDevice,
        TarEntryType.Fifo, TarEntryType.GlobalExtendedAttributes);

    /// <summary>What the policy accepts, in words (part of the message).</summary>
    public string Accepts { get; }

    public bool Allows(TarEntryType type) => _accepted.Contains(type);

    /// <summary>A regular file's data (the three type flags POSIX and GNU use for one).</summary>
    public static bool IsRegularFile(TarEntryType type) => type is TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile;

    /// <summary>The message for an entry this policy refuses, or null when it accepts it.</summary>
    public string? Check(string archive, string entryName, TarEntryType type) =>
        Allows(type) ? null : Refusal(archive, entryName, type);

    /// <summary>The one wording of a refused entry: archive, entry name, type (in words and as its flag), what is accepted.</summary>
    public string Refusal(string archive, string entryName, TarEntryType type) =>
        $"{archive}: entry \"{entryName}\" is a {Describe(type)} (tar type '{Flag(type)}'), which is not accepted there (only {Accepts})";

    /// <summary>The type in words.</summary>
    public static string Describe(TarEntryType type) => type switch
    {
        TarEntryType.RegularFile or TarEntryType.V7RegularFile => "regular file",
        TarEntryType.ContiguousFile => "contiguous file",
        TarEntryType.Directory => "directory",
        TarEntryType.SymbolicLink => "symbolic link",
        TarEntryType.HardLink => "hard link",
        TarEntryType.CharacterDevice => "character device",
        TarEntryType.BlockDevice => "block device",
        TarEntryType.Fifo => "FIFO",
        TarEntryType.SparseFile => "GNU sparse file",
        TarEntryType.DirectoryList => "GNU directory dump",
        TarEntryType.MultiVolume => "GNU multi-volume continuation",
        TarEntryType.RenamedOrSymlinked => "GNU renamed-or-symlinked entry",
        TarEntryType.TapeVolume => "GNU tape volume header",
        TarEntryType.GlobalExtendedAttributes => "PAX global extended header",
        TarEntryType.ExtendedAttributes => "PAX extended header",
        TarEntryType.LongLink or TarEntryType.LongPath => "GNU long-name entry",
        _ => "entry of unknown type",
    };

    private static string Flag(TarEntryType type) => (byte)type is var b && b is >= 0x21 and <= 0x7e ? ((char)b).ToString() : $"\\x{b:x2}";
}
