namespace AppModule.Artifacts;

/// <summary>The file names of the payload layout.</summary>
public static class AppPayloadNames
{
    public const string ImagesArchive = "images.tar.gz";
    public const string ManifestsArchive = "manifests.tar.gz";
    public const string ImageFile = "image.img";
    public const string UrlNew = "url-new.txt";
    public const string UrlCurrent = "url-current.txt";
    public const string SumsNew = "sums-new.txt";
    public const string SumsCurrent = "sums-current.txt";
    public const string DeepDelta = "deep_delta";
    public const string BaseTarSha256 = "image-current.sha256";

    /// <summary>The order app-gen writes an image directory in: every small file first, image.img last,
    /// so a reader can classify the image before its data arrives. (The reference generator's order is
    /// whatever its file system's readdir returns; readers must not rely on any order.)</summary>
    public static readonly string[] WriteOrder = [UrlNew, UrlCurrent, SumsNew, SumsCurrent, BaseTarSha256, DeepDelta, ImageFile];

    internal static readonly HashSet<string> Known = [.. WriteOrder];
}
