using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AppModule.Artifacts;

/// <summary>
/// A small JSON value model that serializes exactly like Go's encoding/json (Go 1.19, which the
/// Mender client 3.4 and mender-artifact 3.9 are built with): object keys of maps sorted, numbers as
/// float64 in Go's shortest form, HTML-safe string escaping (&lt; &gt; &amp; as \u003c...), and
/// json.MarshalIndent's layout with a 2-space indent.
/// </summary>
public abstract record JsonValue
{
    /// <summary>Parses JSON text. Objects keep their source order; <see cref="GoJson"/> sorts map keys on output.</summary>
    public static JsonValue Parse(string json)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        return From(doc.RootElement);
    }

    public static JsonValue From(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => new JsonObject(e.EnumerateObject().Select(p => new KeyValuePair<string, JsonValue>(p.Name, From(p.Value))).ToArray()),
        JsonValueKind.Array => new JsonArray(e.EnumerateArray().Select(From).ToArray()),
        JsonValueKind.String => new JsonString(e.GetString()!),
        JsonValueKind.Number => new JsonNumber(e.GetDouble()),
        JsonValueKind.True => new JsonBool(true),
        JsonValueKind.False => new JsonBool(false),
        _ => JsonNull.Instance,
    };
}

public sealed record JsonString(string Value) : JsonValue;
public sealed record JsonNumber(double Value) : JsonValue;
public sealed record JsonBool(bool Value) : JsonValue;
public sealed record JsonNull : JsonValue { public static readonly JsonNull Instance = new(); }
public sealed record JsonArray(IReadOnlyList<JsonValue> Items) : JsonValue;
/// <summary>An object; <see cref="Members"/> in source order (for structs, the field order).</summary>
public sealed record JsonObject(IReadOnlyList<KeyValuePair<string, JsonValue>> Members) : JsonValue
{
    public JsonValue? this[string key] => Members.FirstOrDefault(m => m.Key == key).Value;
}

/// <summary>Go encoding/json compatible writer.</summary>
public static class GoJson
{
    /// <param name="sortKeys">true for Go maps (sorted keys at every level), false to keep member order (Go structs).</param>
    /// <param name="indent">true for json.MarshalIndent(v, "", "  "), false for json.Marshal.</param>
    public static string Serialize(JsonValue value, bool sortKeys, bool indent)
    {
        var sb = new StringBuilder();
        Write(sb, value, sortKeys, indent, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonValue v, bool sortKeys, bool indent, int depth)
    {
        switch (v)
        {
            case JsonString s: WriteString(sb, s.Value); break;
            case JsonNumber n: sb.Append(FormatFloat(n.Value)); break;
            case JsonBool b: sb.Append(b.Value ? "true" : "false"); break;
            case JsonNull: sb.Append("null"); break;
            case JsonArray a:
                if (a.Items.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < a.Items.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    NewLine(sb, indent, depth + 1);
                    Write(sb, a.Items[i], sortKeys, indent, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case JsonObject o:
                if (o.Members.Count == 0) { sb.Append("{}"); break; }
                IEnumerable<KeyValuePair<string, JsonValue>> members = sortKeys
                    ? o.Members.OrderBy(m => m.Key, StringComparer.Ordinal) : o.Members;
                sb.Append('{');
                bool first = true;
                foreach (var m in members)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    NewLine(sb, indent, depth + 1);
                    WriteString(sb, m.Key);
                    sb.Append(indent ? ": " : ":");
                    Write(sb, m.Value, sortKeys, indent, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            default: throw new InvalidOperationException("unknown JSON value");
        }
    }

    private static void NewLine(StringBuilder sb, bool indent, int depth)
    {
        if (!indent) return;
        sb.Append('\n');
        sb.Append(' ', depth * 2);
    }

    /// <summary>Go's string encoding with HTML escaping (Go 1.19 escape set).</summary>
    public static void WriteString(StringBuilder sb, string s)
    {
        const string hex = "0123456789abcdef";
        sb.Append('"');
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c < 0x80)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); continue;
                    case '\\': sb.Append("\\\\"); continue;
                    case '\n': sb.Append("\\n"); continue;
                    case '\r': sb.Append("\\r"); continue;
                    case '\t': sb.Append("\\t"); continue;
                }
                if (c < 0x20 || c == '<' || c == '>' || c == '&')
                {
                    sb.Append("\\u00").Append(hex[c >> 4]).Append(hex[c & 0xF]);
                    continue;
                }
                sb.Append(c);
                continue;
            }
            if (c == '\u2028' || c == '\u2029') { sb.Append("\\u202").Append(hex[c & 0xF]); continue; }
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                sb.Append(c).Append(s[i + 1]);
                i++;
                continue;
            }
            if (char.IsSurrogate(c)) { sb.Append("\\ufffd"); continue; }
            sb.Append(c);
        }
        sb.Append('"');
    }

    /// <summary>Go's float64 encoding: strconv 'f' with shortest digits, 'e' below 1e-6 or from 1e21.</summary>
    public static string FormatFloat(double f)
    {
        if (double.IsNaN(f) || double.IsInfinity(f)) throw new ArgumentOutOfRangeException(nameof(f), "JSON cannot encode NaN or infinity");
        if (f == 0) return (1 / f) < 0 ? "-0" : "0";
        // Shortest round-trip digits and decimal exponent.
        string shortest = f.ToString("R", CultureInfo.InvariantCulture);
        bool neg = shortest.StartsWith('-');
        if (neg) shortest = shortest[1..];
        int exp = 0;
        int ePos = shortest.IndexOfAny(['E', 'e']);
        string mant = shortest;
        if (ePos >= 0)
        {
            exp = int.Parse(shortest[(ePos + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            mant = shortest[..ePos];
        }
        int dot = mant.IndexOf('.');
        string digits = dot >= 0 ? mant.Remove(dot, 1) : mant;
        int pointPos = (dot >= 0 ? dot : mant.Length) + exp; // decimal point position relative to digits
        // strip leading zeros
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        var sb = new StringBuilder();
        if (neg) sb.Append('-');
        double abs = Math.Abs(f);
        if (abs < 1e-6 || abs >= 1e21)
        {
            // d.ddde±XX
            int e10 = pointPos - 1;
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append('e').Append(e10 < 0 ? '-' : '+');
            int ae = Math.Abs(e10);
            sb.Append(ae < 10 && e10 >= 0 ? "0" + ae : ae.ToString(CultureInfo.InvariantCulture));
            // Go cleans e-09 to e-9 (only negative exponents keep one digit).
            return sb.ToString();
        }
        if (pointPos <= 0)
        {
            sb.Append("0.").Append('0', -pointPos).Append(digits);
        }
        else if (pointPos >= digits.Length)
        {
            sb.Append(digits).Append('0', pointPos - digits.Length);
        }
        else
        {
            sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
        }
        return sb.ToString();
    }
}
