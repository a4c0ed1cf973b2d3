using System.Globalization;
using Tomlyn.Parsing;

namespace AppModule.Runtime;

/// <summary>
/// A configuration file read as flat <c>key → string</c> pairs. Two syntaxes are accepted, so that
/// devices configured for the archived shell reference keep working:
/// <list type="bullet">
/// <item>TOML (tables flatten to dotted keys: <c>[compose] command = "x"</c> → <c>compose.command</c>);</item>
/// <item>the reference's shell-style lines, <c>KEY=VALUE</c> or <c>export KEY="VALUE"</c>, <c>#</c> comments.</item>
/// </list>
/// Keys are matched case-insensitively, so <c>PERSISTENT_STORE</c> and <c>persistent_store</c> are the same key.
/// A missing file is an empty config; a malformed one is a <see cref="ConfigException"/> naming file, line and fix.
/// </summary>
public sealed class ConfigFile
{
    private readonly Dictionary<string, string> _values;

    private ConfigFile(string source, Dictionary<string, string> values)
    {
        Source = source;
        _values = values;
    }

    /// <summary>Where the values came from (a path, or a description).</summary>
    public string Source { get; }

    public IReadOnlyDictionary<string, string> Values => _values;

    public static ConfigFile Empty(string source) => new(source, new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase));

    /// <summary>Reads <paramref name="path"/>; a file that does not exist gives an empty config.</summary>
    public static ConfigFile Load(string path)
    {
        if (!File.Exists(path))
        {
            return Empty(path);
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read config file {path}: {e.Message}; check its permissions");
        }

        return Parse(text, path);
    }

    public static ConfigFile Parse(string text, string source)
    {
        var values = LooksLikeShellStyle(text) ? ParseShellStyle(text, source) : ParseToml(text, source);
        return new ConfigFile(source, values);
    }

    public bool Contains(string key) => _values.ContainsKey(key);

    public string? GetString(string key) => _values.TryGetValue(key, out var v) ? v : null;

    public string GetString(string key, string fallback) => GetString(key) ?? fallback;

    public int GetInt(string key, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var raw = GetString(key);
        if (raw is null)
        {
            return fallback;
        }

        if (!int.TryParse(raw.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            throw new ConfigException($"{Source}: {key} = \"{raw}\" is not a whole number between {min} and {max}; fix or remove the line");
        }

        return v;
    }

    public bool GetBool(string key, bool fallback)
    {
        var raw = GetString(key);
        if (raw is null)
        {
            return fallback;
        }

        return raw.Trim().ToLowerInvariant() switch
        {
            "true" or "yes" or "1" or "on" => true,
            "false" or "no" or "0" or "off" => false,
            _ => throw new ConfigException($"{Source}: {key} = \"{raw}\" is not a boolean; use true or false"),
        };
    }

    public TimeSpan GetSeconds(string key, TimeSpan fallback, int maxSeconds = 7 * 24 * 3600)
    {
        var seconds = GetInt(key, (int)fallback.TotalSeconds, 0, maxSeconds);
        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>
    /// The <c>[prefix.NAME]</c> tables, as key → (NAME → value) for each of <paramref name="keys"/>
    /// (every key present, possibly empty); a key a table does not take is an error naming the ones it does.
    /// </summary>
    public IReadOnlyDictionary<string, Dictionary<string, string>> Tables(string prefix, params string[] keys)
    {
        var tables = keys.ToDictionary(k => k, _ => new Dictionary<string, string>(StringComparer.Ordinal), StringComparer.OrdinalIgnoreCase);
        foreach (var (k, v) in _values)
        {
            if (!k.StartsWith(prefix + ".", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var dot = k.LastIndexOf('.');
            if (dot <= prefix.Length)
            {
                throw new ConfigException($"{Source}: '{k}' is not in a [{prefix}.NAME] table; write [{prefix}.NAME] then {string.Join(", ", keys)}");
            }

            if (!tables.TryGetValue(k[(dot + 1)..], out var table))
            {
                throw new ConfigException($"{Source}: unknown key '{k}'; a [{prefix}.NAME] table takes {string.Join(", ", keys)}");
            }

            table[k[(prefix.Length + 1)..dot]] = v;
        }

        return tables;
    }

    private static bool LooksLikeShellStyle(string text)
    {
        // TOML requires strings to be quoted; the reference writes `persistent_store=/data/mender-app`.
        // A file is shell-style when some assignment has an unquoted value that TOML cannot read,
        // or uses `export`. Decide per file, not per line, so mixed files get one clear error.
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#' || line[0] == '[')
            {
                continue;
            }

            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                return true;
            }

            var eq = line.IndexOf('=');
            if (eq <= 0)
            {
                continue;
            }

            var value = line[(eq + 1)..].Trim();
            if (value.Length == 0)
            {
                return true;
            }

            var first = value[0];
            var isTomlValue = first is '"' or '\'' or '[' or '{' || char.IsDigit(first) || first is '+' or '-'
                              || value.StartsWith("true", StringComparison.Ordinal) || value.StartsWith("false", StringComparison.Ordinal)
                              || value.StartsWith("inf", StringComparison.Ordinal) || value.StartsWith("nan", StringComparison.Ordinal);
            if (!isTomlValue)
            {
                return true;
            }
        }

        return false;
    }

    private static Dictionary<string, string> ParseShellStyle(string text, string source)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                line = line["export ".Length..].TrimStart();
            }

            var eq = line.IndexOf('=');
            if (eq <= 0)
            {
                throw new ConfigException($"{source}:{lineNo}: expected KEY=VALUE, found \"{line}\"; fix or comment out the line");
            }

            var key = line[..eq].Trim();
            if (!IsIdentifier(key))
            {
                throw new ConfigException($"{source}:{lineNo}: \"{key}\" is not a valid key (letters, digits, _); fix the line");
            }

            values[key] = Unquote(line[(eq + 1)..].Trim(), source, lineNo);
        }

        return values;
    }

    private static string Unquote(string value, string source, int lineNo)
    {
        if (value.Length >= 2 && (value[0] == '"' || value[0] == '\''))
        {
            if (value[^1] != value[0])
            {
                throw new ConfigException($"{source}:{lineNo}: unterminated quote in {value}; close the quote");
            }

            return value[1..^1];
        }

        // Trailing comment after an unquoted value: KEY=value # comment
        var hash = value.IndexOf(" #", StringComparison.Ordinal);
        return hash >= 0 ? value[..hash].TrimEnd() : value;
    }

    private static bool IsIdentifier(string key) =>
        key.Length > 0 && (char.IsAsciiLetter(key[0]) || key[0] == '_') && key.All(c => char.IsAsciiLetterOrDigit(c) || c == '_' || c == '-' || c == '.');

    private static Dictionary<string, string> ParseToml(string text, string source)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var parser = TomlParser.Create(text, new TomlParserOptions { Mode = TomlParserMode.Strict }, null);
        var path = new List<string>();
        string? pendingKey = null;
        List<string>? array = null;
        try
        {
            while (parser.MoveNext())
            {
                var ev = parser.Current;
                switch (ev.Kind)
                {
                    case TomlParseEventKind.PropertyName:
                        pendingKey = parser.GetPropertyName();
                        break;
                    case TomlParseEventKind.StartTable:
                        if (pendingKey is not null)
                        {
                            path.Add(pendingKey);
                            pendingKey = null;
                        }
                        else if (parser.Depth > 1)
                        {
                            path.Add(string.Empty);
                        }

                        break;
                    case TomlParseEventKind.EndTable:
                        if (path.Count > 0)
                        {
                            path.RemoveAt(path.Count - 1);
                        }

                        break;
                    case TomlParseEventKind.StartArray:
                        array = [];
                        break;
                    case TomlParseEventKind.EndArray:
                        if (pendingKey is not null && array is not null)
                        {
                            values[Join(path, pendingKey)] = string.Join(',', array);
                        }

                        array = null;
                        pendingKey = null;
                        break;
                    case TomlParseEventKind.String:
                    case TomlParseEventKind.Integer:
                    case TomlParseEventKind.Float:
                    case TomlParseEventKind.Boolean:
                    case TomlParseEventKind.DateTime:
                        var scalar = Scalar(parser, ev);
                        if (array is not null)
                        {
                            array.Add(scalar);
                        }
                        else if (pendingKey is not null)
                        {
                            values[Join(path, pendingKey)] = scalar;
                            pendingKey = null;
                        }

                        break;
                }
            }
        }
        catch (Exception e) when (e is not ConfigException)
        {
            throw new ConfigException($"{source}: not valid TOML ({e.Message}); quote string values, e.g. persistent_store = \"/data/mender-app\"");
        }

        if (parser.HasErrors)
        {
            var first = parser.Diagnostics.FirstOrDefault();
            throw new ConfigException($"{source}: not valid TOML ({first}); quote string values, e.g. persistent_store = \"/data/mender-app\"");
        }

        return values;
    }

    private static string Scalar(TomlParser parser, TomlParseEvent ev) => ev.Kind switch
    {
        TomlParseEventKind.String => parser.GetString(),
        TomlParseEventKind.Integer => ev.GetInt64().ToString(CultureInfo.InvariantCulture),
        TomlParseEventKind.Float => ev.GetDouble().ToString(CultureInfo.InvariantCulture),
        TomlParseEventKind.Boolean => ev.GetBoolean() ? "true" : "false",
        _ => ev.GetTomlDateTime().ToString() ?? string.Empty,
    };

    private static string Join(List<string> path, string key) =>
        path.Count == 0 ? key : string.Join('.', path.Where(p => p.Length > 0).Append(key));
}

/// <summary>A configuration file that cannot be used; the message names the file, the key or line, and the fix.</summary>
public sealed class ConfigException(string message) : Exception(message);
