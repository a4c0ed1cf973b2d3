using System.Text.Json;
using System.Text.RegularExpressions;

namespace AppModule.Artifacts;

/// <summary>
/// The meta-data of an app artifact (header/meta-data), as the reference generator writes it:
/// <c>{"application_name","orchestrator","platform","version","images":[ids],"env":{K:V}}</c>, and optionally
/// the application's own <c>health_timeout_seconds</c> and <c>soak_seconds</c> (whole seconds; the device caps them).
/// Unknown keys are kept in <see cref="Extra"/> and written back unchanged.
/// </summary>
public sealed record AppMetadata(
    string ApplicationName,
    string Orchestrator,
    string Platform,
    string Version,
    IReadOnlyList<string> Images,
    IReadOnlyDictionary<string, string>? Env = null)
{
    public const string CurrentVersion = "1.0";

    /// <summary>The longest meta-data may set <c>health_timeout_seconds</c> or <c>soak_seconds</c> to (a day); the device's limits are lower.</summary>
    public const int MaxHealthSeconds = 86400;

    /// <summary>The application's own health timeout (meta-data <c>health_timeout_seconds</c>), or null for the device's.</summary>
    public int? HealthTimeoutSeconds { get; init; }

    /// <summary>The application's own soak (meta-data <c>soak_seconds</c>), or null for the device's.</summary>
    public int? SoakSeconds { get; init; }

    /// <summary>Other top-level keys found when parsing (kept for round trips).</summary>
    public IReadOnlyList<KeyValuePair<string, JsonValue>> Extra { get; init; } = [];

    /// <summary>
    /// Parses header/meta-data exactly as the Mender client hands it over (re-serialized JSON,
    /// pretty-printed or not, possibly with a trailing newline). Returns null for the literal
    /// <c>null</c> (an artifact without meta-data). Throws <see cref="ArtifactFormatException"/>
    /// with a one-line message when the text is not a JSON object or a field has the wrong type.
    /// Values are not checked here: use <see cref="MetadataValidator"/>.
    /// </summary>
    public static AppMetadata? Parse(string text)
    {
        var t = text.Trim();
        if (t.Length == 0 || t == "null") return null;
        JsonValue v;
        try { v = JsonValue.Parse(t); }
        catch (JsonException e)
        {
            throw new ArtifactFormatException($"header/meta-data is not valid JSON ({AppModule.Core.RuntimeMessages.For(e)}): regenerate the artifact with app-gen");
        }
        if (v is JsonNull) return null;
        if (v is not JsonObject o)
            throw new ArtifactFormatException("header/meta-data must be a JSON object with application_name, orchestrator, platform, version and images: regenerate the artifact with app-gen");

        string Str(string key)
        {
            var m = o[key];
            return m switch
            {
                null => throw new ArtifactFormatException($"meta-data field \"{key}\" is missing: regenerate the artifact with app-gen --{key.Replace('_', '-')} <value>"),
                JsonString s => s.Value,
                _ => throw new ArtifactFormatException($"meta-data field \"{key}\" must be a string, got {Describe(m)}: regenerate the artifact with app-gen"),
            };
        }

        var images = new List<string>();
        switch (o["images"])
        {
            case null: case JsonNull: break;
            case JsonArray a:
                foreach (var item in a.Items)
                {
                    if (item is not JsonString s)
                        throw new ArtifactFormatException($"meta-data field \"images\" must list image IDs as strings, got {Describe(item)}: regenerate the artifact with app-gen");
                    images.Add(s.Value);
                }
                break;
            default:
                throw new ArtifactFormatException($"meta-data field \"images\" must be a list of image IDs, got {Describe(o["images"]!)}: regenerate the artifact with app-gen");
        }

        Dictionary<string, string>? env = null;
        switch (o["env"])
        {
            case null: case JsonNull: break;
            case JsonObject e:
                env = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (k, val) in e.Members)
                {
                    if (val is not JsonString s)
                        throw new ArtifactFormatException($"meta-data field \"env.{k}\" must be a string, got {Describe(val)}: quote the value when generating the artifact");
                    env[k] = s.Value;
                }
                break;
            default:
                throw new ArtifactFormatException($"meta-data field \"env\" must be an object of NAME: value strings, got {Describe(o["env"]!)}: regenerate the artifact with app-gen");
        }

        int? Seconds(string key, int min)
        {
            switch (o[key])
            {
                case null: case JsonNull: return null;
                case JsonNumber n when n.Value == Math.Floor(n.Value) && n.Value >= min && n.Value <= MaxHealthSeconds: return (int)n.Value;
                default:
                    throw new ArtifactFormatException($"meta-data field \"{key}\" must be a whole number of seconds from {min} to {MaxHealthSeconds}, got {Describe(o[key]!)}: regenerate the artifact with app-gen --{key.Replace('_', '-')} <seconds>");
            }
        }

        string[] known = ["application_name", "orchestrator", "platform", "version", "images", "env", "health_timeout_seconds", "soak_seconds"];
        return new AppMetadata(Str("application_name"), Str("orchestrator"), Str("platform"), Str("version"), images, env)
        {
            HealthTimeoutSeconds = Seconds("health_timeout_seconds", 1),
            SoakSeconds = Seconds("soak_seconds", 0),
            Extra = o.Members.Where(m => !known.Contains(m.Key)).ToArray(),
        };
    }

    /// <summary>The JSON object (member order irrelevant: meta-data is a Go map, written with sorted keys).</summary>
    public JsonObject ToJson()
    {
        var members = new List<KeyValuePair<string, JsonValue>>
        {
            new("application_name", new JsonString(ApplicationName)),
            new("orchestrator", new JsonString(Orchestrator)),
            new("platform", new JsonString(Platform)),
            new("version", new JsonString(Version)),
            new("images", new JsonArray(Images.Select(i => (JsonValue)new JsonString(i)).ToArray())),
        };
        if (Env is { Count: > 0 })
            members.Add(new("env", new JsonObject(Env.Select(kv => new KeyValuePair<string, JsonValue>(kv.Key, new JsonString(kv.Value))).ToArray())));
        if (HealthTimeoutSeconds is { } t)
            members.Add(new("health_timeout_seconds", new JsonNumber(t)));
        if (SoakSeconds is { } soak)
            members.Add(new("soak_seconds", new JsonNumber(soak)));
        members.AddRange(Extra);
        return new JsonObject(members);
    }

    /// <summary>As mender-artifact stores it in header.tar (minified, keys sorted).</summary>
    public string ToArtifactJson() => GoJson.Serialize(ToJson(), sortKeys: true, indent: false);

    internal static string Describe(JsonValue v) => v switch
    {
        JsonString s => $"the string \"{s.Value}\"",
        JsonNumber n => $"the number {GoJson.FormatFloat(n.Value)}",
        JsonBool b => b.Value ? "true" : "false",
        JsonNull => "null",
        JsonArray => "a list",
        _ => "an object",
    };

    internal static string OneLine(string s) => s.Replace('\r', ' ').Replace('\n', ' ');
}

/// <summary>Checks meta-data values. Every error is one line naming the field, the bad value and the fix.</summary>
public static partial class MetadataValidator
{
    [GeneratedRegex("^[A-Za-z0-9_-]+\\z")] private static partial Regex AppNameRx();
    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]*\\z")] private static partial Regex OrchestratorRx();
    [GeneratedRegex("^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?\\z")] private static partial Regex PlatformRx();
    [GeneratedRegex("^1(\\.[0-9]+){0,2}\\z")] private static partial Regex VersionRx();
    [GeneratedRegex("^[0-9a-f]{64}\\z")] private static partial Regex ImageIdRx();
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*\\z")] private static partial Regex EnvNameRx();

    public static bool IsValidApplicationName(string s) => AppNameRx().IsMatch(s);
    public static bool IsValidOrchestrator(string s) => OrchestratorRx().IsMatch(s) && !s.Contains("..", StringComparison.Ordinal);
    public static bool IsValidPlatform(string s) => PlatformRx().IsMatch(s);
    public static bool IsValidImageId(string s) => ImageIdRx().IsMatch(s);
    public static bool IsValidEnvName(string s) => EnvNameRx().IsMatch(s);

    /// <summary>
    /// Names an artifact's env must not set, because the sub-module process itself (not the
    /// composition) would obey them: the dynamic loader (LD_*), the command search path, the .NET
    /// runtime of our executables (DOTNET_*), the module's and sub-modules' own settings (MENDER_*),
    /// and the engine/cluster endpoints and credentials the sub-modules use.
    /// </summary>
    public static bool IsReservedEnvName(string s) =>
        s.StartsWith("LD_", StringComparison.OrdinalIgnoreCase)
        || s.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase)
        || s.StartsWith("MENDER_", StringComparison.OrdinalIgnoreCase)
        || s.ToUpperInvariant() is "PATH" or "IFS" or "HOME" or "SHELL" or "ENV" or "BASH_ENV" or "DOCKER_HOST" or "DOCKER_CONTEXT" or "DOCKER_CONFIG"
            or "DOCKER_CERT_PATH" or "DOCKER_TLS_VERIFY" or "KUBECONFIG" or "CONTAINERD_ADDRESS";

    public static string ApplicationNameError(string v) =>
        $"meta-data field \"application_name\" is {Q(v)}: use only letters, digits, '_' and '-' (app-gen --application-name <name>)";

    public static IReadOnlyList<string> Validate(AppMetadata m)
    {
        var errors = new List<string>();
        if (!IsValidApplicationName(m.ApplicationName)) errors.Add(ApplicationNameError(m.ApplicationName));
        if (!IsValidOrchestrator(m.Orchestrator))
            errors.Add($"meta-data field \"orchestrator\" is {Q(m.Orchestrator)}: it must be the plain file name of a sub-module such as docker-compose or k8s (letters, digits, '.', '_', '-'; no '/', no '..', not starting with '.')");
        if (!IsValidPlatform(m.Platform))
            errors.Add($"meta-data field \"platform\" is {Q(m.Platform)}: use an OS/architecture pair such as linux/amd64, linux/arm64 or linux/arm/v7 (app-gen --platform)");
        if (!VersionRx().IsMatch(m.Version))
            errors.Add($"meta-data field \"version\" is {Q(m.Version)}: this module understands format version 1.x only; regenerate the artifact with app-gen or upgrade the module");
        for (int i = 0; i < m.Images.Count; i++)
        {
            if (!IsValidImageId(m.Images[i]))
                errors.Add($"meta-data field \"images[{i}]\" is {Q(m.Images[i])}: image IDs must be 64 lowercase hex digits without the \"sha256:\" prefix; regenerate the artifact with app-gen");
        }
        if (m.Env is not null)
        {
            foreach (var (k, v) in m.Env)
            {
                if (!IsValidEnvName(k))
                    errors.Add($"meta-data field \"env\" has the key {Q(k)}: environment variable names must match [A-Za-z_][A-Za-z0-9_]*; rename it when generating the artifact");
                else if (IsReservedEnvName(k))
                    errors.Add($"meta-data field \"env\" has the key {Q(k)}: it would change how the device runs the sub-module (loader, PATH, engine endpoint or module settings), not the application; reserved: LD_*, DOTNET_*, MENDER_*, PATH, IFS, HOME, SHELL, ENV, BASH_ENV, DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY, KUBECONFIG, CONTAINERD_ADDRESS; rename it when generating the artifact");
                if (v.Contains('\0'))
                    errors.Add($"meta-data field \"env.{Q(k)[1..^1]}\" contains a NUL character: environment values cannot hold NUL; fix the value when generating the artifact");
                else if (v.Contains('\n') || v.Contains('\r'))
                    errors.Add($"meta-data field \"env.{Q(k)[1..^1]}\" contains a line break ({Q(v)}): anything that reads the environment line by line (an env file, a shell, `env` in a container) would see variables the artifact never declared as keys; put each variable under its own key when generating the artifact");
            }
        }
        return errors;
    }

    /// <summary>Throws an <see cref="ArtifactFormatException"/> carrying the first error when the meta-data is invalid.</summary>
    public static void EnsureValid(AppMetadata m)
    {
        var errors = Validate(m);
        if (errors.Count > 0) throw new ArtifactFormatException(errors[0]);
    }

    /// <summary>Quotes a value for an error message, escaping control characters so the message stays one line.</summary>
    internal static string Q(string v)
    {
        var sb = new System.Text.StringBuilder();
        GoJson.WriteString(sb, v.Length > 200 ? v[..200] + "..." : v);
        return sb.ToString();
    }
}
