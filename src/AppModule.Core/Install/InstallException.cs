namespace AppModule.Core.Install;

/// <summary>
/// An install step failed. <see cref="Step"/> and <see cref="Subject"/> (image, service or file) are
/// part of the one-line message, followed by the sub-module's output when there is one.
/// </summary>
public class InstallException(string step, string subject, string message, string? output = null)
    : Exception(Format(step, subject, message, output))
{
    public string Step { get; } = step;

    public string Subject { get; } = subject;

    public string? Output { get; } = output;

    private static string Format(string step, string subject, string message, string? output)
    {
        var line = $"{step} failed for {subject}: {message}";
        if (!string.IsNullOrWhiteSpace(output))
        {
            line += " | sub-module output: " + string.Join(" / ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(8));
        }

        return line;
    }
}
