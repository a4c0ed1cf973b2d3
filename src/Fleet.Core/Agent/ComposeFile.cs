using AppModule.Core.Compose;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Fleet.Core.Agent;

/// <summary>Where a service's <c>image:</c> value sits in a compose file's text.</summary>
public sealed record ComposeImage(string Service, string Image, int Start, int End, ScalarStyle Style)
{
    /// <summary>The tag of the image ("latest" when none is written).</summary>
    public string Tag => ImageReference.SplitTag(Image).Tag ?? ImageReference.DefaultTag;
}

public sealed class ComposeFileException(string message) : Exception(message);

/// <summary>Reads and rewrites a service's image tag in a compose file by text position (YamlDotNet parser
/// events), so every comment, quote style, indentation and key order of the user's file is kept.</summary>
public static class ComposeFile
{
    /// <summary>The compose file in <paramref name="directory"/>, the one Compose reads (<see cref="ComposeFiles"/>).</summary>
    public static string Find(string directory) =>
        ComposeFiles.Find(directory)
        ?? throw new ComposeFileException($"no compose file in {directory} (looked for {string.Join(", ", ComposeFiles.Names)})");

    /// <summary>Finds the image of <paramref name="service"/>, or of the only service with an image when null.</summary>
    public static ComposeImage FindImage(string text, string? service, string source = "compose file")
    {
        var found = Images(text, source);
        if (service is not null)
            return found.FirstOrDefault(f => f.Service == service)
                ?? throw new ComposeFileException($"{source}: service '{service}' has no image: line (services with images: {string.Join(", ", found.Select(f => f.Service))})");
        return found.Count == 1 ? found[0]
            : throw new ComposeFileException($"{source}: {found.Count} services have images ({string.Join(", ", found.Select(f => f.Service))}); configure which one is the app's (service = ...)");
    }

    /// <summary>Every service's <c>image:</c> in the file, in order.</summary>
    public static IReadOnlyList<ComposeImage> Images(string text, string source = "compose file")
    {
        var found = new List<ComposeImage>();
        var parser = new Parser(new StringReader(text));
        try
        {
            parser.Consume<StreamStart>();
            if (!parser.TryConsume<DocumentStart>(out _)) throw new ComposeFileException($"{source} is empty");
            if (!parser.TryConsume<MappingStart>(out _)) throw new ComposeFileException($"{source}: the top level is not a mapping");
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var key = parser.Consume<Scalar>().Value;
                if (key != "services") { parser.SkipThisAndNestedEvents(); continue; }
                if (!parser.TryConsume<MappingStart>(out _)) throw new ComposeFileException($"{source}: 'services' is not a mapping");
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    var name = parser.Consume<Scalar>().Value;
                    if (!parser.TryConsume<MappingStart>(out _)) { parser.SkipThisAndNestedEvents(); continue; }
                    while (!parser.TryConsume<MappingEnd>(out _))
                    {
                        var k = parser.Consume<Scalar>().Value;
                        if (k == "image" && parser.Accept<Scalar>(out var img))
                        {
                            parser.MoveNext();
                            found.Add(new ComposeImage(name, img.Value, (int)img.Start.Index, (int)img.End.Index, img.Style));
                        }
                        else parser.SkipThisAndNestedEvents();
                    }
                }
            }
        }
        catch (YamlException e)
        {
            throw new ComposeFileException($"{source} is not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}");
        }
        return found;
    }

    /// <summary>Returns <paramref name="text"/> with the service's image tag replaced and nothing else changed; with a
    /// <paramref name="digest"/>, the image is pinned to it (<c>repo:tag@digest</c>: the engine pulls and runs exactly
    /// that manifest), else a digest written before is dropped (it belonged to the old tag).</summary>
    public static string WithTag(string text, ComposeImage image, string newTag, string? digest = null)
    {
        var (repo, _) = ImageReference.SplitTag(image.Image);
        var value = repo + ":" + newTag + (digest is null ? "" : "@" + digest);
        var written = image.Style switch
        {
            ScalarStyle.DoubleQuoted => "\"" + value + "\"",
            ScalarStyle.SingleQuoted => "'" + value + "'",
            ScalarStyle.Plain => value,
            _ => throw new ComposeFileException($"the image of service '{image.Service}' is written as a {image.Style} scalar; write it on one line to let the agent edit it"),
        };
        return string.Concat(text.AsSpan(0, image.Start), written, text.AsSpan(image.End));
    }

    /// <summary>The label a per-service restart sets on its service (the command's id), in the composition's override file.</summary>
    public const string RestartLabel = "io.appmodule.fleet.restarted";

    /// <summary>The override file Compose merges into <paramref name="fileName"/> by itself (docker-compose.yml: docker-compose.override.yml).</summary>
    public static string OverrideName(string fileName) =>
        Path.GetFileNameWithoutExtension(fileName) + ".override" + Path.GetExtension(fileName);

    /// <summary>The override file the agent writes for per-service restarts: each service's <see cref="RestartLabel"/>, one per service.</summary>
    public static string RestartOverride(IReadOnlyDictionary<string, string> markers) =>
        "# written by the fleet agent: one label per service restarted on its own (a new value makes Compose recreate that service only)\nservices:\n"
        + string.Concat(markers.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"  {m.Key}:\n    labels:\n      {RestartLabel}: \"{m.Value}\"\n"));

    /// <summary>The markers of an override file written by <see cref="RestartOverride"/> (service to value).</summary>
    public static Dictionary<string, string> RestartMarkers(string overrideText)
    {
        var markers = new Dictionary<string, string>(StringComparer.Ordinal);
        string? service = null;
        foreach (var line in overrideText.Split('\n'))
        {
            if (line.StartsWith("  ", StringComparison.Ordinal) && !line.StartsWith("   ", StringComparison.Ordinal) && line.EndsWith(':'))
                service = line.Trim().TrimEnd(':');
            else if (service is not null && line.Trim().StartsWith(RestartLabel + ": ", StringComparison.Ordinal))
                markers[service] = line.Trim()[(RestartLabel.Length + 2)..].Trim('"');
        }
        return markers;
    }

    /// <summary>A manifest digest as the fleet's commands carry it: <c>sha256:</c> and 64 lower-case hex digits.</summary>
    public static bool IsValidDigest(string digest) =>
        digest.Length == 71 && digest.StartsWith("sha256:", StringComparison.Ordinal) && digest[7..].All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    public static bool IsValidTag(string tag) =>
        tag.Length is > 0 and <= 128 && (char.IsAsciiLetterOrDigit(tag[0]) || tag[0] == '_')
        && tag.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');

    /// <summary>Writes through a temp file and rename, so a crash never leaves half a compose file.</summary>
    public static void WriteAtomic(string path, string text)
    {
        var tmp = path + ".fleet-tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
