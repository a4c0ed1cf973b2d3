namespace TestSupport;

/// <summary>Where things are: the repository root, the published executables, the build scripts.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>The AOT executables under test: $APPMODULE_BIN_DIR, else &lt;repo&gt;/out/linux-x64.</summary>
    public static string BinDir { get; } =
        Environment.GetEnvironmentVariable("APPMODULE_BIN_DIR") is { Length: > 0 } d ? Path.GetFullPath(d) : Path.Combine(Root, "out", "linux-x64");

    /// <summary>Path of a published executable; fails the test with the command that builds it when it is missing.</summary>
    public static string Binary(string name)
    {
        var path = Path.Combine(BinDir, name);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} does not exist: run `build/publish.sh linux-x64` (or `make test`) first");
        }

        return path;
    }

    public static string Script(string relative) => Path.Combine(Root, relative);

    private static string FindRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir, "AppModule.sln")))
            {
                return dir;
            }

            dir = Path.GetDirectoryName(dir);
        }

        throw new InvalidOperationException("cannot find AppModule.sln above " + AppContext.BaseDirectory);
    }
}
