using System.Collections;
using AppModule.Core.Images;

namespace AppModule.Core.SubModules;

/// <summary>
/// What the host (<c>app</c>, the fleet agent) tells a sub-module besides argv, carried in the environment of
/// each call (see docs/sub-module-api.md). The host builds it and writes it with <see cref="ToEnvironment"/>;
/// a sub-module reads it once with <see cref="FromEnvironment"/>, so the variable names and formats live here only.
/// </summary>
public sealed record SubModuleContext
{
    /// <summary>The artifact's platform (e.g. linux/arm64), from its meta-data.</summary>
    public const string PlatformVariable = "MENDER_APP_UPDATE_MODULE_PLATFORM";

    /// <summary>The images a stored composition was installed with: one "&lt;image ID&gt; &lt;url&gt;" per line (<see cref="ImagePin"/>).</summary>
    public const string ImagesVariable = "MENDER_APP_IMAGES";

    /// <summary>On the pre-check REQS: the manifests directory of the version about to be installed.</summary>
    public const string ManifestsVariable = "MENDER_APP_MANIFESTS_DIR";

    /// <summary><c>app</c>'s log level (error, warning, info, debug), so that a sub-module logs as much as its host.</summary>
    public const string LogLevelVariable = "MENDER_APP_LOG_LEVEL";

    /// <summary>The reference's options list (comma, semicolon or space separated), e.g. <c>deep_delta</c>.</summary>
    public const string OptionsVariable = "OPTIONS";

    /// <summary>The option that makes LOAD read a deep delta (app-gen writes it into the artifact's env).</summary>
    public const string DeepDeltaOption = "deep_delta";

    /// <summary>The reference's scratch directory for a call.</summary>
    public const string ScratchVariable = "MODULE_TMPDIR";

    /// <summary>
    /// The variable that names another configuration file than an orchestrator sub-module's default under
    /// /etc/mender (tests; the fleet agent's <c>submodule_config</c>): MENDER_APP_&lt;NAME&gt;_CONF, e.g.
    /// MENDER_APP_DOCKER_COMPOSE_CONF; the k8s sub-module's is MENDER_APP_K8S_CONFIG (its name since the first release).
    /// </summary>
    public static string ConfigPathVariable(string orchestrator)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orchestrator);
        return orchestrator == "k8s" ? "MENDER_APP_K8S_CONFIG" : $"MENDER_APP_{orchestrator.ToUpperInvariant().Replace('-', '_')}_CONF";
    }

    /// <summary>The artifact's platform, null when not given.</summary>
    public string? Platform { get; init; }

    private Func<IReadOnlyList<ImagePin>> _images = () => [];

    /// <summary>
    /// Each image of the composition by ID and url; empty when not given. Read from the environment when first
    /// asked for: a malformed line throws <see cref="FormatException"/> naming it then, not for calls that never use it.
    /// </summary>
    public IReadOnlyList<ImagePin> Images
    {
        get => _images();
        init => _images = () => value;
    }

    /// <summary>The manifests to check at the pre-check REQS, null otherwise.</summary>
    public string? PreCheckManifests { get; init; }

    /// <summary>The host's log level, null when not given.</summary>
    public string? LogLevel { get; init; }

    /// <summary>The options (<c>deep_delta</c>, ...).</summary>
    public IReadOnlySet<string> Options { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Where a call may write scratch files, null for the system's temporary directory.</summary>
    public string? ScratchDirectory { get; init; }

    /// <summary>Every variable, for the ones a sub-module defines itself (its config path, K8S_NAMESPACE, DOCKER_HOST, ...).</summary>
    public IReadOnlyDictionary<string, string?> Variables { get; init; } = new Dictionary<string, string?>(StringComparer.Ordinal);

    /// <summary>A variable's value, trimmed; null when unset or blank.</summary>
    public string? Get(string name) => Variables.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

    /// <summary>Reads the context from a call's environment.</summary>
    public static SubModuleContext FromEnvironment(IReadOnlyDictionary<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var variables = new Dictionary<string, string?>(environment, StringComparer.Ordinal);
        string? Get(string name) => variables.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;
        return new SubModuleContext
        {
            Platform = Get(PlatformVariable),
            _images = () => ImagePin.ParseLines(variables.GetValueOrDefault(ImagesVariable)),
            PreCheckManifests = variables.GetValueOrDefault(ManifestsVariable) is { Length: > 0 } m ? m : null,
            LogLevel = Get(LogLevelVariable),
            Options = (variables.GetValueOrDefault(OptionsVariable) ?? string.Empty)
                .Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal),
            ScratchDirectory = variables.GetValueOrDefault(ScratchVariable) is { Length: > 0 } t ? t : null,
            Variables = variables,
        };
    }

    /// <summary>The context of this process (a sub-module's).</summary>
    public static SubModuleContext FromProcess() =>
        FromEnvironment(Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal));

    /// <summary>
    /// The variables a host sets for a call: <see cref="Variables"/> (the artifact's env keys) overlaid with
    /// the typed values that are set.
    /// </summary>
    public IReadOnlyDictionary<string, string?> ToEnvironment()
    {
        var vars = new Dictionary<string, string?>(Variables, StringComparer.Ordinal);
        Set(vars, PlatformVariable, Platform);
        Set(vars, ImagesVariable, Images.Count > 0 ? ImagePin.FormatLines(Images) : null);
        Set(vars, ManifestsVariable, PreCheckManifests);
        Set(vars, LogLevelVariable, LogLevel);
        Set(vars, OptionsVariable, Options.Count > 0 ? string.Join(',', Options.Order(StringComparer.Ordinal)) : null);
        Set(vars, ScratchVariable, ScratchDirectory);
        return vars;
    }

    private static void Set(Dictionary<string, string?> vars, string name, string? value)
    {
        if (value is not null)
        {
            vars[name] = value;
        }
    }
}

/// <summary>One image a composition was installed with: the engine's image ID and the url the manifests name.</summary>
public sealed record ImagePin(string ImageId, string Url)
{
    /// <summary>The <see cref="SubModuleContext.ImagesVariable"/> text: one "&lt;image ID&gt; &lt;url&gt;" per line.</summary>
    public static string FormatLines(IEnumerable<ImagePin> pins) => string.Join('\n', pins.Select(p => $"{p.ImageId} {p.Url}"));

    /// <summary>Parses <see cref="FormatLines"/>'s text (empty for null); throws <see cref="FormatException"/> naming a bad line.</summary>
    public static IReadOnlyList<ImagePin> ParseLines(string? text)
    {
        var pins = new List<ImagePin>();
        foreach (var line in (text ?? string.Empty).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space <= 0 || !ImageReference.IsImageId(line[..space]) || line[(space + 1)..].Trim().Length == 0)
            {
                throw new FormatException($"{SubModuleContext.ImagesVariable} has the line \"{line}\"; expected \"<image id> <url>\" (it is set by app)");
            }

            pins.Add(new ImagePin(line[..space], line[(space + 1)..].Trim()));
        }

        return pins;
    }
}
