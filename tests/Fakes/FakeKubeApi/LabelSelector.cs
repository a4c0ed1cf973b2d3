using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FakeKubeApi;

/// <summary>Kubernetes label selectors: <c>k=v</c>, <c>k==v</c>, <c>k!=v</c>, <c>k</c>, <c>!k</c>, <c>k in (a,b)</c>, <c>k notin (a,b)</c>.</summary>
public static partial class LabelSelector
{
    public sealed record Requirement(string Key, string Op, IReadOnlyList<string> Values);

    public static IReadOnlyList<Requirement> Parse(string selector)
    {
        var result = new List<Requirement>();
        if (string.IsNullOrWhiteSpace(selector))
        {
            return result;
        }

        // Split on commas outside parentheses.
        var parts = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < selector.Length; i++)
        {
            depth += selector[i] switch { '(' => 1, ')' => -1, _ => 0 };
            if (selector[i] == ',' && depth == 0)
            {
                parts.Add(selector[start..i]);
                start = i + 1;
            }
        }

        parts.Add(selector[start..]);
        foreach (var raw in parts.Select(p => p.Trim()))
        {
            Match m;
            if ((m = SetPattern().Match(raw)).Success)
            {
                var values = m.Groups[3].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                result.Add(new Requirement(m.Groups[1].Value, m.Groups[2].Value, values));
            }
            else if ((m = EqualityPattern().Match(raw)).Success)
            {
                var op = m.Groups[2].Value == "!=" ? "!=" : "=";
                if (!IsValidValue(m.Groups[3].Value))
                {
                    throw Invalid(selector, raw);
                }

                result.Add(new Requirement(m.Groups[1].Value, op, [m.Groups[3].Value]));
            }
            else if ((m = ExistsPattern().Match(raw)).Success)
            {
                result.Add(new Requirement(m.Groups[2].Value, m.Groups[1].Value == "!" ? "!exists" : "exists", []));
            }
            else
            {
                throw Invalid(selector, raw);
            }
        }

        return result;
    }

    private static Exception Invalid(string selector, string part) =>
        new ArgumentException($"unable to parse requirement: \"{part}\" in \"{selector}\"");

    public static bool Matches(IReadOnlyList<Requirement> requirements, JsonObject? labels)
    {
        foreach (var r in requirements)
        {
            var has = labels is not null && labels.TryGetPropertyValue(r.Key, out var node) && node is not null;
            var value = has ? labels![r.Key]!.GetValue<string>() : null;
            var ok = r.Op switch
            {
                "=" => value == r.Values[0],
                "!=" => value != r.Values[0],
                "in" => value is not null && r.Values.Contains(value),
                "notin" => value is null || !r.Values.Contains(value),
                "exists" => has,
                "!exists" => !has,
                _ => false,
            };
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    public static bool IsValidValue(string v) => v.Length == 0 || ValuePattern().IsMatch(v);

    [GeneratedRegex(@"^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)$")]
    private static partial Regex SetPattern();

    [GeneratedRegex(@"^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([^=!\s]*)$")]
    private static partial Regex EqualityPattern();

    [GeneratedRegex(@"^(!?)([A-Za-z0-9./_-]+)$")]
    private static partial Regex ExistsPattern();

    [GeneratedRegex(@"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex ValuePattern();
}
