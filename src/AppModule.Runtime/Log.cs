using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace AppModule.Runtime;

public enum LogLevel
{
    Error = 0,
    Warning = 1,
    Info = 2,
    Debug = 3,
}

/// <summary>How log lines are written: <c>text</c> (<c>component: level: message</c>) or <c>json</c> (one JSON
/// object per line: <c>time</c>, <c>level</c>, <c>component</c>, <c>msg</c>, then the call's fields).</summary>
public enum LogFormat
{
    Text,
    Json,
}

/// <summary>
/// Logging for executables whose stdout is an answer or a deployment log: every log line goes to
/// stderr, prefixed with the level and the component, or as a JSON line (<see cref="Format"/>).
/// Thread-safe; one line per call.
/// </summary>
public static class Log
{
    private static readonly Lock Gate = new();
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static LogLevel Level { get; set; } = LogLevel.Info;

    public static LogFormat Format { get; set; } = LogFormat.Text;

    /// <summary>Parses a log format name (<c>text</c>, <c>json</c>).</summary>
    public static bool TryParseFormat(string? text, out LogFormat format)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "text": format = LogFormat.Text; return true;
            case "json": format = LogFormat.Json; return true;
            default: format = LogFormat.Text; return false;
        }
    }

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

    public static void Write(LogLevel level, string message) => Write(level, message, []);

    /// <summary>Writes one line; <paramref name="fields"/> (e.g. <c>("app", "app1")</c>) become keys of the JSON
    /// line (the text line has only the message, which names them too).</summary>
    public static void Write(LogLevel level, string message, params ReadOnlySpan<(string Key, string? Value)> fields)
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
        var line = Format == LogFormat.Json ? JsonLine(tag, message, fields) : $"{Component}: {tag}: {message}";
        lock (Gate)
        {
            Output.WriteLine(line);
            Output.Flush();
        }
    }

    private static string JsonLine(string level, string message, ReadOnlySpan<(string Key, string? Value)> fields)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, JsonOptions))
        {
            w.WriteStartObject();
            w.WriteString("time", DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
            w.WriteString("level", level);
            w.WriteString("component", Component);
            w.WriteString("msg", message);
            foreach (var (key, value) in fields)
            {
                if (key is "time" or "level" or "component" or "msg")
                {
                    continue;
                }

                w.WriteString(key, value);
            }

            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
