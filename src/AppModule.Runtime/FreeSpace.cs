namespace AppModule.Runtime;

/// <summary>Free space of the filesystem that holds a path, as this process sees it (statvfs: the bytes an unprivileged writer may use).</summary>
public static class FreeSpace
{
    /// <summary>Bytes available on the filesystem of <paramref name="path"/>; null when the path does not exist here or cannot be asked (e.g. an engine on another machine).</summary>
    public static long? Of(string path)
    {
        try
        {
            return Directory.Exists(path) ? new DriveInfo(Path.GetFullPath(path)).AvailableFreeSpace : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
