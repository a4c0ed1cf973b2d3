using System.Text.Json;

namespace AppModule.Artifacts;

/// <summary>header-info of an artifact v3 (one payload).</summary>
public sealed record HeaderInfo(
    IReadOnlyList<string?> PayloadTypes,
    string ArtifactName,
    string? ArtifactGroup,
    IReadOnlyList<string> DeviceTypes,
    IReadOnlyList<string>? DependsArtifactName = null,
    IReadOnlyList<string>? DependsArtifactGroup = null)
{
    /// <summary>Go struct order: payloads, artifact_provides, artifact_depends.</summary>
    public JsonObject ToJson()
    {
        var provides = new List<KeyValuePair<string, JsonValue>> { new("artifact_name", new JsonString(ArtifactName)) };
        if (!string.IsNullOrEmpty(ArtifactGroup)) provides.Add(new("artifact_group", new JsonString(ArtifactGroup)));
        var depends = new List<KeyValuePair<string, JsonValue>>();
        if (DependsArtifactName is { Count: > 0 }) depends.Add(new("artifact_name", Strings(DependsArtifactName)));
        if (DeviceTypes.Count > 0) depends.Add(new("device_type", Strings(DeviceTypes)));
        if (DependsArtifactGroup is { Count: > 0 }) depends.Add(new("artifact_group", Strings(DependsArtifactGroup)));
        return new JsonObject(
        [
            new("payloads", new JsonArray(PayloadTypes.Select(t => (JsonValue)new JsonObject([new("type", t is null ? JsonNull.Instance : new JsonString(t))])).ToArray())),
            new("artifact_provides", new JsonObject(provides)),
            new("artifact_depends", new JsonObject(depends)),
        ]);
    }

    public string ToArtifactJson() => GoJson.Serialize(ToJson(), sortKeys: false, indent: false);

    public static HeaderInfo Parse(string json)
    {
        JsonObject o = ParseObject(json, "header-info");
        var payloads = new List<string?>();
        if (o["payloads"] is JsonArray pa)
        {
            foreach (var p in pa.Items)
                payloads.Add(p is JsonObject po && po["type"] is JsonString ts ? ts.Value : null);
        }
        else throw new ArtifactFormatException("header-info has no \"payloads\" list: the artifact is not a Mender artifact v3; rebuild it");
        var prov = o["artifact_provides"] as JsonObject
            ?? throw new ArtifactFormatException("header-info has no \"artifact_provides\": rebuild the artifact");
        var name = (prov["artifact_name"] as JsonString)?.Value
            ?? throw new ArtifactFormatException("header-info has no artifact_provides.artifact_name: rebuild the artifact with a name (-n)");
        var group = (prov["artifact_group"] as JsonString)?.Value;
        var dep = o["artifact_depends"] as JsonObject;
        return new HeaderInfo(payloads, name, string.IsNullOrEmpty(group) ? null : group,
            StringList(dep?["device_type"]) ?? [], StringList(dep?["artifact_name"]), StringList(dep?["artifact_group"]));
    }

    internal static JsonArray Strings(IEnumerable<string> s) => new(s.Select(x => (JsonValue)new JsonString(x)).ToArray());

    internal static IReadOnlyList<string>? StringList(JsonValue? v) => v switch
    {
        JsonArray a => a.Items.Select(i => i is JsonString s ? s.Value : throw new ArtifactFormatException("a header list holds a non-string value: rebuild the artifact")).ToArray(),
        JsonString s => [s.Value],
        _ => null,
    };

    internal static JsonObject ParseObject(string json, string what)
    {
        try
        {
            return JsonValue.Parse(json) as JsonObject
                ?? throw new ArtifactFormatException($"{what} is not a JSON object: rebuild the artifact");
        }
        catch (JsonException e)
        {
            throw new ArtifactFormatException($"{what} is not valid JSON ({AppModule.Core.RuntimeMessages.For(e)}): rebuild the artifact");
        }
    }
}

/// <summary>headers/0000/type-info. Depends values are strings or lists of strings.</summary>
public sealed record TypeInfo(
    string? Type,
    IReadOnlyDictionary<string, string> Provides,
    IReadOnlyList<string>? ClearsProvides,
    IReadOnlyList<KeyValuePair<string, JsonValue>>? Depends = null)
{
    /// <summary>Go struct order: type, artifact_depends (omitempty), artifact_provides (omitempty), clears_artifact_provides (omitempty); map keys sorted.</summary>
    public JsonObject ToJson()
    {
        var m = new List<KeyValuePair<string, JsonValue>> { new("type", Type is null ? JsonNull.Instance : new JsonString(Type)) };
        if (Depends is { Count: > 0 })
            m.Add(new("artifact_depends", new JsonObject(Depends.OrderBy(d => d.Key, StringComparer.Ordinal).ToArray())));
        if (Provides.Count > 0)
            m.Add(new("artifact_provides", new JsonObject(Provides.OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => new KeyValuePair<string, JsonValue>(p.Key, new JsonString(p.Value))).ToArray())));
        if (ClearsProvides is { Count: > 0 }) m.Add(new("clears_artifact_provides", HeaderInfo.Strings(ClearsProvides)));
        return new JsonObject(m);
    }

    public string ToArtifactJson() => GoJson.Serialize(ToJson(), sortKeys: false, indent: false);

    public static TypeInfo Parse(string json)
    {
        var o = HeaderInfo.ParseObject(json, "type-info");
        var type = (o["type"] as JsonString)?.Value;
        var provides = new Dictionary<string, string>(StringComparer.Ordinal);
        if (o["artifact_provides"] is JsonObject p)
        {
            foreach (var (k, v) in p.Members)
                provides[k] = v is JsonString s ? s.Value : throw new ArtifactFormatException($"type-info artifact_provides.{k} is not a string: rebuild the artifact");
        }
        var depends = o["artifact_depends"] is JsonObject d ? d.Members : null;
        return new TypeInfo(type, provides, HeaderInfo.StringList(o["clears_artifact_provides"]), depends);
    }
}
