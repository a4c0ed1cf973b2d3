namespace AppModule.Runtime;

public enum LogLevel
{
    Error = 0,
    Warning = 1,
    Info = 2,
    Debug = 3,
}

/// <summary>
/// Logging for executables whose stdout is an answer or a deployment log: every log line goes to
/// stderr, prefixed with the level and the component. Thread-safe; one line per call.
/// </summary>
public static class Log
{
    private static readonly Lock Gate = new();

    public static LogLevel Level { get; set; } = LogLevel.Info;

    public static string Component { get; set; } = "app";

    public static TextWriter Output { get; set; } = Console.Error;

    public static bool TryParseLevel(string? text, out LogLevel level)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "error": level = LogLevel.Error; return true;
            case "warning" or "warn": level = LogLevel.Warning; return true;
            case "info": level = LogLevel.Info; return true;
            case "debug" or "trace": level = LogLevel.Debug; return true;
            default: level = LogLevel.Info; return false;
        }
    }

    public static void Error(string message) => Write(LogLevel.Error, message);

    public static void Warning(string message) => Write(LogLevel.Warning, message);

    public static void Info(string message) => Write(LogLevel.Info, message);

    public static void Debug(string message) => Write(LogLevel.Debug, message);

    public static void Write(LogLevel level, string message)
    {
        if (level > Level)
        {
            return;
        }

        var tag = level switch
        {
            LogLevel.Error => "error",
            LogLevel.Warning => "warning",
            LogLevel.Info => "info",
            _ => "debug",
        };
        lock (Gate)
        {
            Output.WriteLine($"{Component}: {tag}: {message}");
            Output.Flush();
        }
    }
}
