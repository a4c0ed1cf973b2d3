using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AppModule.Core.SubModules;
using SubModule.Hosting;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Kubernetes;

/// <summary>One document of a manifest file, as JSON, with where it came from.</summary>
public sealed record ManifestObject(string File, int Line, JsonObject Body)
{
    public string ApiVersion => Body["apiVersion"]!.GetValue<string>();

    public string Kind => Body["kind"]!.GetValue<string>();

    public string Name => Body["metadata"]!["name"]!.GetValue<string>();

    public string? Namespace => Body["metadata"]?["namespace"]?.GetValue<string>();

    public string Where => $"{File}:{Line}";
}

/// <summary>
/// Reads every document of every manifest file of a directory (recursively, files ending in .yaml,
/// .yml or .json, in path order, as <c>kubectl apply -R</c> does) into JSON objects. Everything is
/// read and checked before anything is applied; the first problem is reported with file and line.
/// Plain scalars are typed as the Kubernetes tools type them (YAML 1.1: yes/no/on/off are booleans), so a
/// ConfigMap value <c>flag: yes</c> is the boolean true, which the API server refuses; it is reported here.
/// </summary>
public static partial class Manifests
{
    private static readonly string[] Extensions = [".yaml", ".yml", ".json"];

    public static IReadOnlyList<string> Files(string directory)
    {
        if (File.Exists(directory) && Extensions.Contains(Path.GetExtension(directory).ToLowerInvariant()))
        {
            return [directory];
        }

        if (!Directory.Exists(directory))
        {
            throw new SubModuleFailure($"manifests directory {directory} does not exist");
        }

        return Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// What the objects define, by name: the workloads as <c>kind/name</c> (lower-case kind, as kubectl names them) and
    /// the persistent volume claims (those declared, and those a StatefulSet's claim templates make: <c>template-set-N</c>).
    /// </summary>
    public static ManifestContents Contents(IReadOnlyList<ManifestObject> objects)
    {
        ArgumentNullException.ThrowIfNull(objects);
        string? Name(JsonNode? metadata) => metadata?["name"] is JsonValue v && v.TryGetValue<string>(out var n) ? n : null;
        var services = new List<string>();
        var volumes = new List<string>();
        foreach (var o in objects)
        {
            var kind = o.Body["kind"] is JsonValue k && k.TryGetValue<string>(out var s) ? s : null;
            var name = Name(o.Body["metadata"]);
            if (kind is null || name is null)
            {
                continue;
            }

            if (kind is "Deployment" or "StatefulSet" or "DaemonSet" or "ReplicaSet" or "Job" or "CronJob" or "Pod")
            {
                services.Add($"{kind.ToLowerInvariant()}/{name}");
            }

            if (kind == "PersistentVolumeClaim")
            {
                volumes.Add(name);
            }
            else if (kind == "StatefulSet" && o.Body["spec"]?["volumeClaimTemplates"] is JsonArray templates)
            {
                var r = o.Body["spec"]?["replicas"] as JsonValue; // YAML ints are longs here (ToJson)
                var replicas = r is null ? 1 : r.TryGetValue<long>(out var l) ? (int)Math.Clamp(l, 0, 1000) : r.TryGetValue<int>(out var i) ? Math.Clamp(i, 0, 1000) : 1;
                foreach (var t in templates.Select(t => Name(t?["metadata"])).OfType<string>())
                {
                    volumes.AddRange(Enumerable.Range(0, replicas).Select(i => $"{t}-{name}-{i}"));
                }
            }
        }

        return new ManifestContents(services, volumes);
    }

    /// <summary>All objects of the directory; throws <see cref="SubModuleFailure"/> naming file and line on bad input.</summary>
    public static IReadOnlyList<ManifestObject> Load(string directory)
    {
        var files = Files(directory);
        if (files.Count == 0)
        {
            throw new SubModuleFailure($"no manifest files (*.yaml, *.yml, *.json) in {directory}");
        }

        var objects = new List<ManifestObject>();
        foreach (var file in files)
        {
            objects.AddRange(LoadFile(file));
        }

        if (objects.Count == 0)
        {
            throw new SubModuleFailure($"the manifest files in {directory} contain no objects");
        }

        return objects;
    }

    public static IReadOnlyList<ManifestObject> LoadFile(string file)
    {
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SubModuleFailure($"cannot read manifest {file}: {e.Message}");
        }

        return Parse(text, file);
    }

    public static IReadOnlyList<ManifestObject> Parse(string text, string file)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new SubModuleFailure($"{file}:{e.Start.Line}:{e.Start.Column}: invalid YAML: {Inner(e)}; nothing was applied");
        }

        var result = new List<ManifestObject>();
        foreach (var doc in stream.Documents)
        {
            var root = doc.RootNode;
            if (root is YamlScalarNode s && IsNull(s))
            {
                continue; // empty document, e.g. a trailing `---` or only comments
            }

            var line = (int)root.Start.Line;
            var json = ToJson(root, file) as JsonObject
                       ?? throw new SubModuleFailure($"{file}:{line}: a manifest document must be a mapping with apiVersion, kind and metadata.name; nothing was applied");
            if (json["kind"] is JsonValue k && k.TryGetValue<string>(out var kind) && kind.EndsWith("List", StringComparison.Ordinal) && json["items"] is JsonArray items)
            {
                // kind: List (or DeploymentList, ...): apply the items.
                foreach (var item in items)
                {
                    if (item is not JsonObject o)
                    {
                        throw new SubModuleFailure($"{file}:{line}: every item of a {kind} must be an object; nothing was applied");
                    }

                    result.Add(Check(new ManifestObject(file, line, (JsonObject)o.DeepClone())));
                }

                continue;
            }

            result.Add(Check(new ManifestObject(file, line, json)));
        }

        return result;
    }

    private static ManifestObject Check(ManifestObject o)
    {
        string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;
        if (Str(o.Body["apiVersion"]) is null)
        {
            throw new SubModuleFailure($"{o.Where}: the document has no apiVersion; every Kubernetes object needs apiVersion, kind and metadata.name; nothing was applied");
        }

        if (Str(o.Body["kind"]) is null)
        {
            throw new SubModuleFailure($"{o.Where}: the document has no kind; nothing was applied");
        }

        if (o.Body["metadata"] is not JsonObject meta || Str(meta["name"]) is not { } name)
        {
            var hint = o.Body["metadata"]?["generateName"] is not null ? " (generateName cannot be applied, give the object a name)" : string.Empty;
            throw new SubModuleFailure($"{o.Where}: {o.Body["kind"]} has no metadata.name{hint}; nothing was applied");
        }

        if (name.Length > 253 || name is "." or ".." || name.Contains('/') || name.Contains('%') || name.Any(char.IsWhiteSpace))
        {
            throw new SubModuleFailure($"{o.Where}: {o.Kind} name \"{name}\" is not a valid Kubernetes name (no '/', '%' or spaces, at most 253 characters); nothing was applied");
        }

        if (meta["namespace"] is { } ns && Str(ns) is null)
        {
            throw new SubModuleFailure($"{o.Where}: metadata.namespace of {o.Kind} {name} must be a non-empty string; nothing was applied");
        }

        CheckStringMaps(o, name);
        return o;
    }

    /// <summary>
    /// Maps the API types as map[string]string (labels, annotations, ConfigMap and Secret data) must hold
    /// strings only: the API server refuses anything else (server-side apply fails typing the object). YAML 1.1,
    /// which kubectl and this module read, makes an unquoted yes/no/on/off/true/false a boolean and 1 or 1.5 a
    /// number, so such values must be quoted; say so before anything is applied.
    /// </summary>
    private static void CheckStringMaps(ManifestObject o, string name)
    {
        var maps = new List<string> { "metadata.labels", "metadata.annotations" };
        if (o.ApiVersion == "v1" && o.Kind == "ConfigMap")
        {
            maps.AddRange(["data", "binaryData"]);
        }
        else if (o.ApiVersion == "v1" && o.Kind == "Secret")
        {
            maps.AddRange(["data", "stringData"]);
        }

        foreach (var path in maps)
        {
            JsonNode? node = o.Body;
            foreach (var part in path.Split('.'))
            {
                node = node is JsonObject obj ? obj[part] : null;
            }

            foreach (var (key, value) in node as JsonObject ?? [])
            {
                if (value is null || (value is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String))
                {
                    continue;
                }

                var what = value is JsonValue scalar
                    ? $"the {(scalar.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False ? "boolean" : "number")} {scalar.ToJsonString()}"
                    : $"a{(value is JsonArray ? " list" : " map")}";
                throw new SubModuleFailure(
                    $"{o.Where}: {o.Kind} {name}: {path}.{key} is {what}, but the Kubernetes API accepts only strings there " +
                    $"(YAML reads unquoted yes/no/on/off/true/false as booleans and digits as numbers); quote the value, e.g. {key}: \"...\"; nothing was applied");
            }
        }
    }

    private static string Inner(Exception e)
    {
        var msg = e.Message;
        var inner = e.InnerException?.Message;
        return inner is not null && inner != msg ? $"{msg} ({inner})" : msg;
    }

    /// <summary>Converts a YAML node to JSON with the YAML 1.1 scalar typing used by sigs.k8s.io/yaml.</summary>
    public static JsonNode? ToJson(YamlNode node, string file)
    {
        ArgumentNullException.ThrowIfNull(node);
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode key)
                    {
                        throw new SubModuleFailure($"{file}:{k.Start.Line}:{k.Start.Column}: mapping keys must be plain values; nothing was applied");
                    }

                    if (key.Value == "<<")
                    {
                        throw new SubModuleFailure($"{file}:{k.Start.Line}:{k.Start.Column}: YAML merge keys (<<) are not supported; write the keys out; nothing was applied");
                    }

                    var name = key.Value ?? string.Empty;
                    if (obj.ContainsKey(name))
                    {
                        throw new SubModuleFailure($"{file}:{k.Start.Line}:{k.Start.Column}: duplicate key \"{name}\"; nothing was applied");
                    }

                    obj[name] = ToJson(v, file);
                }

                return obj;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                foreach (var item in seq.Children)
                {
                    arr.Add(ToJson(item, file));
                }

                return arr;
            case YamlScalarNode scalar:
                return Scalar(scalar, file);
            default:
                throw new SubModuleFailure($"{file}:{node.Start.Line}: unsupported YAML node; nothing was applied");
        }
    }

    private static bool IsNull(YamlScalarNode s) =>
        s.Style == ScalarStyle.Plain && s.Tag.IsEmpty && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static JsonNode? Scalar(YamlScalarNode s, string file)
    {
        var value = s.Value ?? string.Empty;
        var tag = s.Tag.IsEmpty ? null : s.Tag.Value;
        if (tag is not null && tag != "!")
        {
            return tag switch
            {
                "tag:yaml.org,2002:str" => JsonValue.Create(value),
                "tag:yaml.org,2002:int" => ParseInt(value) is { } i ? JsonValue.Create(i) : throw Bad(s, file, "is not an integer"),
                "tag:yaml.org,2002:float" => ParseFloat(value) is { } d ? JsonValue.Create(d) : throw Bad(s, file, "is not a number"),
                "tag:yaml.org,2002:bool" => ParseBool(value) is { } b ? JsonValue.Create(b) : throw Bad(s, file, "is not a boolean"),
                "tag:yaml.org,2002:null" => null,
                "tag:yaml.org,2002:binary" => JsonValue.Create(value.Replace("\n", string.Empty, StringComparison.Ordinal)),
                _ => JsonValue.Create(value),
            };
        }

        if (s.Style != ScalarStyle.Plain || tag == "!")
        {
            return JsonValue.Create(value);
        }

        if (IsNull(s))
        {
            return null;
        }

        if (ParseBool(value) is { } boolean)
        {
            return JsonValue.Create(boolean);
        }

        if (ParseInt(value) is { } integer)
        {
            return JsonValue.Create(integer);
        }

        if (FloatPattern().IsMatch(value) && ParseFloat(value) is { } number)
        {
            return JsonValue.Create(number);
        }

        return JsonValue.Create(value);
    }

    private static SubModuleFailure Bad(YamlScalarNode s, string file, string what) =>
        new($"{file}:{s.Start.Line}:{s.Start.Column}: \"{s.Value}\" {what}; nothing was applied");

    private static bool? ParseBool(string v) => v switch
    {
        "y" or "Y" or "yes" or "Yes" or "YES" or "true" or "True" or "TRUE" or "on" or "On" or "ON" => true,
        "n" or "N" or "no" or "No" or "NO" or "false" or "False" or "FALSE" or "off" or "Off" or "OFF" => false,
        _ => null,
    };

    private static long? ParseInt(string v)
    {
        var t = v.Replace("_", string.Empty, StringComparison.Ordinal);
        var negative = t.StartsWith('-');
        if (t.StartsWith('-') || t.StartsWith('+'))
        {
            t = t[1..];
        }

        if (t.Length == 0)
        {
            return null;
        }

        long value;
        if (t.StartsWith("0x", StringComparison.Ordinal))
        {
            if (!long.TryParse(t[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value))
            {
                return null;
            }
        }
        else if (t.StartsWith("0b", StringComparison.Ordinal))
        {
            if (!long.TryParse(t[2..], NumberStyles.AllowBinarySpecifier, CultureInfo.InvariantCulture, out value))
            {
                return null;
            }
        }
        else if (t.Length > 1 && t[0] == '0')
        {
            // YAML 1.1 octal: 0644
            if (!t.All(c => c is >= '0' and <= '7'))
            {
                return null;
            }

            value = t.Aggregate(0L, (acc, c) => (acc * 8) + (c - '0'));
        }
        else if (!t.All(char.IsAsciiDigit) || !long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out value))
        {
            return null;
        }

        return negative ? -value : value;
    }

    private static double? ParseFloat(string v) =>
        double.TryParse(v.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : null;

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();
}
