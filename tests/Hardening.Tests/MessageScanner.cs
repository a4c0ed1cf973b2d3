using System.Text.RegularExpressions;

namespace Hardening.Tests;

/// <summary>
/// Finds what must never reach a person in the module's messages: a bare .NET resource key (the AOT
/// builds strip the runtime's messages, so an unmapped runtime exception shows as
/// <c>IO_EOF_ReadBeyondEOF</c> or <c>TarEntryTypeNotSupported, SparseFile</c>) or a stack trace.
/// </summary>
public static partial class MessageScanner
{
    // CamelCase parts joined by '_' with at least one lower-case letter (so LD_PRELOAD or MENDER_APP_IMAGES are not keys).
    [GeneratedRegex(@"\b(?=[A-Za-z0-9_]*[a-z])[A-Z][A-Za-z0-9]*_[A-Za-z0-9_]*[A-Za-z0-9]\b")]
    private static partial Regex UnderscoreKeyRx();

    // "(TarEntryTypeNotSupported, SparseFile)": a key with its argument, in the parentheses our messages put runtime text in.
    [GeneratedRegex(@"\((?:[A-Z][a-z]+){2,}, [A-Za-z0-9]+\)")]
    private static partial Regex ArgumentKeyRx();

    [GeneratedRegex(@"(^|\n|\\n)\s*at [A-Za-z_][A-Za-z0-9_.`<>]*\(|--- End of stack trace|\bException: .*\n\s+at ")]
    private static partial Regex StackTraceRx();

    /// <summary>The offending fragments of <paramref name="text"/>: resource keys and stack-trace lines.</summary>
    public static IReadOnlyList<string> Problems(string text)
    {
        var found = new List<string>();
        found.AddRange(UnderscoreKeyRx().Matches(text).Select(m => "resource key " + m.Value));
        found.AddRange(ArgumentKeyRx().Matches(text).Select(m => "resource key " + m.Value));
        found.AddRange(StackTraceRx().Matches(text).Select(m => "stack trace " + m.Value.Trim()));
        return found;
    }

    /// <summary>The lines of a client's (logfmt) or a command's output that our executables wrote.</summary>
    public static IEnumerable<string> OurLines(string output) =>
        output.Split('\n').Where(l => l.Contains("app: ", StringComparison.Ordinal) || l.Contains("docker-compose: ", StringComparison.Ordinal));

    public static void AssertClean(string what, string output)
    {
        var problems = OurLines(output).SelectMany(Problems).Distinct().ToList();
        Assert.True(problems.Count == 0, $"{what}: a message shows {string.Join("; ", problems)}");
    }
}

public sealed class MessageScannerTests
{
    [Theory]
    [InlineData("app: error: images.tar.gz cannot be read (IO_EOF_ReadBeyondEOF): the artifact is damaged")]
    [InlineData("app: error: pre-check failed: TaskCanceledException_ctor_DefaultMessage")]
    [InlineData("app: error: cannot read entry (TarEntryTypeNotSupported, SparseFile)")]
    [InlineData("app: error: path (IO_PathTooLong_Path, /x/y)")]
    [InlineData("app: error: internal error: System.InvalidOperationException: boom\n   at AppModule.Cli.RunAsync(String[] args)")]
    public void Finds_resource_keys_and_stack_traces(string line) => Assert.NotEmpty(MessageScanner.Problems(line));

    [Theory]
    [InlineData("app: error: meta-data field \"env\" has the key \"LD_PRELOAD\": it would change how the device runs the sub-module; reserved: LD_*, DOCKER_HOST, MENDER_APP_IMAGES")]
    [InlineData("app: error: images.tar.gz cannot be read (the data ends before it should (truncated)): the artifact is damaged")]
    [InlineData("app: error: the artifact's payload type is \"single-file\" (type-info: \"single-file\"), not \"app\"")]
    [InlineData("app: info: installing payload_type_not_app: application hard_1, at 12:00")]
    public void Leaves_sentences_alone(string line) => Assert.Empty(MessageScanner.Problems(line));
}
