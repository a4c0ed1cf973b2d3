namespace AppModule.Artifacts;

/// <summary>File creation with Unix modes (the library targets Linux; on other systems modes are skipped).</summary>
internal static class Unix
{
    public static void CreateDirectory(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, mode);
    }

    public static FileStream CreateFile(string path, UnixFileMode mode, bool async = false)
    {
        var o = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            BufferSize = 1 << 16,
            Options = async ? FileOptions.Asynchronous : FileOptions.None,
        };
        if (!OperatingSystem.IsWindows()) o.UnixCreateMode = mode;
        return new FileStream(path, o);
    }

    public static UnixFileMode GetMode(string path) => OperatingSystem.IsWindows() ? (UnixFileMode)0b110_100_100 : File.GetUnixFileMode(path);
}
