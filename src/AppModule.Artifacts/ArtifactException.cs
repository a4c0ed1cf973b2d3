namespace AppModule.Artifacts;

/// <summary>A problem with an artifact or its contents. The message is one line that names the
/// input, the bad value and what to do next, so it can go straight into a deployment log.</summary>
public class ArtifactException : Exception
{
    public ArtifactException(string message) : base(OneLine(message)) { }
    public ArtifactException(string message, Exception inner) : base(OneLine(message), inner) { }

    /// <summary>Control characters (from entry names or values inside a hostile artifact) are escaped so the message stays one line.</summary>
    private static string OneLine(string message)
    {
        if (!message.Any(char.IsControl)) return message;
        var sb = new System.Text.StringBuilder(message.Length + 16);
        foreach (var c in message)
        {
            if (c == '\n') sb.Append("\\n");
            else if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.ToString();
    }
}

/// <summary>The artifact's structure or a header is not what the format requires.</summary>
public sealed class ArtifactFormatException(string message) : ArtifactException(message);

/// <summary>A member or payload file does not match its manifest checksum.</summary>
public sealed class ArtifactChecksumException(string message) : ArtifactException(message);

/// <summary>The signature is missing, malformed or does not verify.</summary>
public sealed class ArtifactSignatureException(string message) : ArtifactException(message);

/// <summary>An archive entry would escape its directory, is a device node, a duplicate, or too large.</summary>
public sealed class UnsafeArchiveEntryException(string message) : ArtifactException(message);
