using System.Numerics;

namespace Fleet.Core.Versioning;

/// <summary>One PEP 440 version specifier clause (<c>~=</c>, <c>==</c> with optional <c>.*</c>, <c>!=</c>, <c>&lt;=</c>,
/// <c>&gt;=</c>, <c>&lt;</c>, <c>&gt;</c>, <c>===</c>), with the semantics of <c>packaging.specifiers.Specifier</c>.</summary>
public sealed record Specifier(string Operator, string VersionText)
{
    private readonly Pep440Version? _version = VersionText.EndsWith(".*", StringComparison.Ordinal) || Operator == "==="
        ? null : Pep440Version.Parse(VersionText);
    private readonly Pep440Version? _prefix = VersionText.EndsWith(".*", StringComparison.Ordinal)
        ? Pep440Version.Parse(VersionText[..^2]) : null;

    /// <summary>Whether this clause names a pre-release, which lets pre-releases match (packaging's rule).</summary>
    public bool AllowsPrereleases => Operator is "==" or ">=" or "<=" or "~=" or "===" or ">" or "<"
        && Pep440Version.TryParse(VersionText.EndsWith(".*", StringComparison.Ordinal) ? VersionText[..^2] : VersionText, out var v) && v.IsPrerelease;

    public bool Contains(Pep440Version p) => Operator switch
    {
        "===" => string.Equals(p.ToString(), VersionText, StringComparison.OrdinalIgnoreCase),
        "==" => _prefix is not null ? PrefixMatch(p.Public, _prefix) : EqualsSpec(p, _version!),
        "!=" => _prefix is not null ? !PrefixMatch(p.Public, _prefix) : !EqualsSpec(p, _version!),
        "<=" => p.Public <= _version!,
        ">=" => p.Public >= _version!,
        "<" => p.Public < _version! && !(!_version!.IsPrerelease && p.IsPrerelease && p.BaseVersion == _version.BaseVersion),
        ">" => p.Public > _version! && !(!_version!.IsPostrelease && p.IsPostrelease && p.BaseVersion == _version.BaseVersion)
                                     && !(p.Local is not null && p.BaseVersion == _version.BaseVersion),
        "~=" => p.Public >= _version! && PrefixMatch(p.Public, CompatiblePrefix(_version!)),
        _ => false,
    };

    private static bool EqualsSpec(Pep440Version p, Pep440Version spec) =>
        spec.Local is null ? p.Public == spec : p == spec;

    private static Pep440Version CompatiblePrefix(Pep440Version v) =>
        Pep440Version.Parse((v.Epoch.IsZero ? "" : v.Epoch + "!") + string.Join('.', v.Release.Take(v.Release.Count - 1)));

    private static bool PrefixMatch(Pep440Version p, Pep440Version prefix)
    {
        if (p.Epoch != prefix.Epoch) return false;
        for (int i = 0; i < prefix.Release.Count; i++)
        {
            var x = i < p.Release.Count ? p.Release[i] : BigInteger.Zero;
            if (x != prefix.Release[i]) return false;
        }
        if (prefix.Pre is not null || prefix.Post is not null || prefix.Dev is not null)
        {
            // e.g. ==1.0rc1.* : the rest must match exactly as well
            return p.Pre == prefix.Pre && (prefix.Post is null || p.Post == prefix.Post) && (prefix.Dev is null || p.Dev == prefix.Dev);
        }
        return true;
    }

    public override string ToString() => Operator + VersionText;
}

/// <summary>What the user asked an app to run: one exact version, or a range resolved to the newest existing tag.</summary>
public sealed class VersionTarget
{
    public string Text { get; }
    /// <summary>Non-null when the target is one exact version.</summary>
    public Pep440Version? Exact { get; }
    public IReadOnlyList<Specifier> Clauses { get; }
    public bool IsRange => Exact is null;

    private VersionTarget(string text, Pep440Version? exact, IReadOnlyList<Specifier> clauses)
    {
        Text = text; Exact = exact; Clauses = clauses;
    }

    /// <summary>Parses "2.1.0" (exact), a PEP 440 specifier set ("&gt;=1.5,&lt;2", "~=2.1", "==2.*"), the npm-style
    /// "~2.1" (= "&gt;=2.1,==2.1.*": patch updates only) and "^2.1" (= "&gt;=2.1,==2.*"), or "*" (any final release).</summary>
    public static VersionTarget Parse(string text)
    {
        var t = text.Trim();
        if (t.Length == 0) throw new FormatException("empty version target; give a version like 2.1.0 or a range like >=1.5,<2");
        if (Pep440Version.TryParse(t, out var exact) && !t.StartsWith('=')) return new VersionTarget(t, exact, []);
        if (t == "*") return new VersionTarget(t, null, []);
        if ((t[0] == '~' && !t.StartsWith("~=", StringComparison.Ordinal)) || t[0] == '^')
        {
            var v = Pep440Version.TryParse(t[1..], out var b) ? b
                : throw new FormatException($"target '{text}': '{t[1..]}' after '{t[0]}' is not a version");
            var keep = t[0] == '~' ? Math.Min(2, v.Release.Count) : 1;
            var prefix = string.Join('.', v.Release.Take(keep)) + ".*";
            return new VersionTarget(t, null, [new Specifier(">=", t[1..]), new Specifier("==", prefix)]);
        }
        var clauses = new List<Specifier>();
        foreach (var raw in t.Split(','))
        {
            var c = raw.Trim();
            string op = new[] { "===", "~=", "==", "!=", "<=", ">=", "<", ">" }.FirstOrDefault(o => c.StartsWith(o, StringComparison.Ordinal))
                ?? throw new FormatException($"target '{text}': clause '{c}' has no operator (use ~=, ==, !=, <=, >=, <, >, ===, or ~X.Y / ^X.Y)");
            var ver = c[op.Length..].Trim();
            if (op == "~=" && (!Pep440Version.TryParse(ver, out var cv) || cv.Release.Count < 2))
                throw new FormatException($"target '{text}': '~=' needs a version with at least two release numbers, like ~=2.1");
            if (ver.EndsWith(".*", StringComparison.Ordinal) && op is not ("==" or "!="))
                throw new FormatException($"target '{text}': '.*' is only allowed with == and !=");
            if (op != "===" && !Pep440Version.TryParse(ver.EndsWith(".*", StringComparison.Ordinal) ? ver[..^2] : ver, out _))
                throw new FormatException($"target '{text}': '{ver}' is not a PEP 440 version");
            clauses.Add(new Specifier(op, ver));
        }
        return new VersionTarget(t, null, clauses);
    }

    public bool Contains(Pep440Version v, bool? prereleases = null)
    {
        if (Exact is not null) return v == Exact;
        bool allowPre = prereleases ?? Clauses.Any(c => c.AllowsPrereleases);
        if (v.IsPrerelease && !allowPre) return false;
        return Clauses.All(c => c.Contains(v));
    }

    /// <summary>The newest tag that satisfies the target, or null. Tags that are not versions (e.g. "latest") are
    /// ignored. As in packaging's filter, pre-releases count only when a clause names one, or when nothing else matches.</summary>
    public string? ResolveNewest(IEnumerable<string> tags)
    {
        string? best = null, bestPre = null;
        Pep440Version? bv = null, bpv = null;
        foreach (var tag in tags)
        {
            if (!Pep440Version.TryParse(tag, out var v)) continue;
            if (Contains(v))
            {
                if (bv is null || v > bv || (v == bv && tag.Length < best!.Length)) { bv = v; best = tag; }
            }
            else if (v.IsPrerelease && Contains(v, prereleases: true))
            {
                if (bpv is null || v > bpv) { bpv = v; bestPre = tag; }
            }
        }
        return best ?? bestPre;
    }

    public override string ToString() => Text;
}
