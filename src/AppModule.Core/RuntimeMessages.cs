using System.Text.RegularExpressions;

namespace AppModule.Core;

/// <summary>
/// The one place where exceptions of the .NET runtime become sentences for a person. The AOT builds
/// strip the runtime's messages (<c>UseSystemResourceKeys</c>), so <c>e.Message</c> of a runtime
/// exception is a bare resource key such as <c>IO_EOF_ReadBeyondEOF</c> or
/// <c>TarEntryTypeNotSupported, SparseFile</c>; never show it. The project's own exceptions carry
/// sentences already and pass through unchanged.
/// </summary>
public static partial class RuntimeMessages
{
    /// <summary>A resource key, alone or with its arguments: an identifier without spaces, then nothing or ", ...".</summary>
    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*(, .*)?$", RegexOptions.Singleline)]
    private static partial Regex ResourceKeyRx();

    /// <summary>Whether <paramref name="message"/> looks like a bare resource key rather than a sentence.</summary>
    public static bool IsResourceKey(string message) =>
        !string.IsNullOrEmpty(message) && ResourceKeyRx().IsMatch(message) && (message.Contains('_', StringComparison.Ordinal) || message.Contains(", ", StringComparison.Ordinal) || !message.Contains(' ', StringComparison.Ordinal));

    /// <summary>
    /// The message of <paramref name="e"/> for a person, on one line: the project's exceptions as they
    /// are, the runtime's as a sentence of our own (plus the runtime's text when it is a sentence).
    /// </summary>
    public static string For(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (IsProjectException(e))
        {
            return OneLine(e.Message);
        }

        var sentence = Sentence(e);
        var message = OneLine(e.Message);
        return message.Length == 0 || IsResourceKey(message) || message.Length > 300 ? sentence : $"{sentence} ({message})";
    }

    private static bool IsProjectException(Exception e)
    {
        var ns = e.GetType().Namespace ?? string.Empty;
        return !(ns.StartsWith("System", StringComparison.Ordinal) || ns.StartsWith("Microsoft", StringComparison.Ordinal)
                 || ns.StartsWith("SharpCompress", StringComparison.Ordinal) || ns.StartsWith("YamlDotNet", StringComparison.Ordinal)
                 || ns.StartsWith("Docker", StringComparison.Ordinal) || ns.StartsWith("Tomlyn", StringComparison.Ordinal)
                 || ns.StartsWith("k8s", StringComparison.Ordinal) || ns.StartsWith("CliWrap", StringComparison.Ordinal));
    }

    /// <summary>Our sentence for a runtime exception the project can meet (tar, IO, paths, cancellation, HTTP, JSON).</summary>
    private static string Sentence(Exception e) => e switch
    {
        EndOfStreamException => "the data ends before it should (truncated)",
        PathTooLongException => "a path is too long for this file system",
        DirectoryNotFoundException => "a directory on the way does not exist",
        FileNotFoundException f => f.FileName is { Length: > 0 } name ? $"file {name} does not exist" : "a file does not exist",
        DriveNotFoundException => "the drive or mount does not exist",
        UnauthorizedAccessException => "permission denied",
        IOException io when io.HResult is 28 or unchecked((int)0x80070070) => "no space left on the device",
        IOException => "an input/output error",
        InvalidDataException => "the data is not in the format it claims (damaged or not an archive)",
        System.Text.Json.JsonException j => j.LineNumber is { } line ? $"invalid JSON at line {line + 1}" : "invalid JSON",
        FormatException => "a value is not in the expected format",
        OverflowException => "a number is out of range",
        TimeoutException => "the operation timed out",
        TaskCanceledException => "the operation timed out or was cancelled",
        OperationCanceledException => "the operation was cancelled",
        System.Net.Http.HttpRequestException h => h.StatusCode is { } status ? $"the HTTP request failed with status {(int)status} {status}" : "the HTTP request failed (connection refused, reset or unreachable)",
        System.Net.Sockets.SocketException s => $"a network connection failed ({s.SocketErrorCode})",
        NotSupportedException => "an unsupported format or feature",
        ArgumentException => "an invalid value",
        OutOfMemoryException => "out of memory",
        _ => $"an unexpected {e.GetType().Name}",
    };

    private static string OneLine(string s) => s.Replace('\r', ' ').Replace('\n', ' ').Trim();
}
