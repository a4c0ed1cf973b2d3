namespace ArtifactGen;

/// <summary>The exit-code contract of app-gen (also documented next to Main).</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int Internal = 70;
    public const int Usage = 2;
    public const int InvalidInput = 3;
    public const int ImageUnavailable = 4;
    public const int DeltaFailed = 5;
    public const int OutputFailed = 6;
    public const int Cancelled = 143;
}

/// <summary>An error app-gen reports in one line and maps to an exit code.</summary>
public class GenException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

public sealed class UsageException(string message) : GenException(ExitCodes.Usage, message);
public sealed class InputException(string message) : GenException(ExitCodes.InvalidInput, message);
public sealed class ImageException(string message) : GenException(ExitCodes.ImageUnavailable, message);
public sealed class DeltaException(string message) : GenException(ExitCodes.DeltaFailed, message);
