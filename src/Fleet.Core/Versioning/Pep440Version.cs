using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;

namespace Fleet.Core.Versioning;

/// <summary>A version with the parsing, normalisation and ordering of Python's <c>packaging.version.Version</c>
/// (PEP 440): epoch, release, pre (a/b/rc), post, dev and local segments; <c>1.0 == 1.0.0</c>,
/// <c>1.0.dev0 &lt; 1.0a1 &lt; 1.0rc1 &lt; 1.0 &lt; 1.0.post1</c>, <c>1.0 &lt; 1.0+local</c>.</summary>
public sealed partial class Pep440Version : IComparable<Pep440Version>, IEquatable<Pep440Version>
{
    [GeneratedRegex(@"^\s*v?(?:(?:(?<epoch>[0-9]+)!)?(?<release>[0-9]+(?:\.[0-9]+)*)(?<pre>[-_\.]?(?<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_\.]?(?<pre_n>[0-9]+)?)?(?<post>(?:-(?<post_n1>[0-9]+))|(?:[-_\.]?(?<post_l>post|rev|r)[-_\.]?(?<post_n2>[0-9]+)?))?(?<dev>[-_\.]?(?<dev_l>dev)[-_\.]?(?<dev_n>[0-9]+)?)?)(?:\+(?<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?\s*$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    public BigInteger Epoch { get; }
    public IReadOnlyList<BigInteger> Release { get; }
    /// <summary>"a", "b" or "rc" with its number, or null.</summary>
    public (string Label, BigInteger Number)? Pre { get; }
    public BigInteger? Post { get; }
    public BigInteger? Dev { get; }
    /// <summary>Local segments, lowercase; numeric ones are compared as numbers.</summary>
    public IReadOnlyList<string>? Local { get; }

    public bool IsPrerelease => Pre is not null || Dev is not null;
    public bool IsPostrelease => Post is not null;
    public bool IsDevrelease => Dev is not null;

    private Pep440Version(BigInteger epoch, BigInteger[] release, (string, BigInteger)? pre, BigInteger? post, BigInteger? dev, string[]? local)
    {
        Epoch = epoch; Release = release; Pre = pre; Post = post; Dev = dev; Local = local;
    }

    public static bool TryParse(string? text, out Pep440Version version)
    {
        version = null!;
        if (text is null) return false;
        var m = Pattern().Match(text);
        if (!m.Success) return false;
        var epoch = m.Groups["epoch"].Success ? BigInteger.Parse(m.Groups["epoch"].Value, CultureInfo.InvariantCulture) : BigInteger.Zero;
        var release = m.Groups["release"].Value.Split('.').Select(s => BigInteger.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        (string, BigInteger)? pre = null;
        if (m.Groups["pre_l"].Success)
        {
            var l = m.Groups["pre_l"].Value.ToLowerInvariant() switch
            {
                "alpha" or "a" => "a",
                "beta" or "b" => "b",
                _ => "rc",
            };
            pre = (l, Num(m.Groups["pre_n"]));
        }
        BigInteger? post = null;
        if (m.Groups["post_n1"].Success) post = Num(m.Groups["post_n1"]);
        else if (m.Groups["post_l"].Success) post = Num(m.Groups["post_n2"]);
        BigInteger? dev = m.Groups["dev_l"].Success ? Num(m.Groups["dev_n"]) : null;
        string[]? local = m.Groups["local"].Success
            ? m.Groups["local"].Value.ToLowerInvariant().Split('-', '_', '.')
            : null;
        version = new Pep440Version(epoch, release, pre, post, dev, local);
        return true;
    }

    private static BigInteger Num(Group g) => g.Success ? BigInteger.Parse(g.Value, CultureInfo.InvariantCulture) : BigInteger.Zero;

    public static Pep440Version Parse(string text) =>
        TryParse(text, out var v) ? v : throw new FormatException($"'{text}' is not a valid PEP 440 version (examples: 1.2.3, 2.0rc1, 1!2.0.post3.dev4+local.1)");

    /// <summary>The same version without its local segment.</summary>
    public Pep440Version Public => Local is null ? this : new Pep440Version(Epoch, [.. Release], Pre, Post, Dev, null);

    /// <summary>Epoch and release only (packaging's <c>base_version</c>).</summary>
    public Pep440Version BaseVersion => new(Epoch, [.. Release], null, null, null, null);

    /// <summary>The seed's <c>version_compare</c>: 1 if a &gt; b, 0 if equal, -1 if a &lt; b.</summary>
    public static int Compare(string a, string b) => Math.Sign(Parse(a).CompareTo(Parse(b)));

    public int CompareTo(Pep440Version? other)
    {
        if (other is null) return 1;
        int c = Epoch.CompareTo(other.Epoch);
        if (c != 0) return c;
        c = CompareRelease(Release, other.Release);
        if (c != 0) return c;
        c = PreKey().CompareTo(other.PreKey());
        if (c != 0) return c;
        c = NullableKey(Post, missingIsLow: true).CompareTo(NullableKey(other.Post, missingIsLow: true));
        if (c != 0) return c;
        c = NullableKey(Dev, missingIsLow: false).CompareTo(NullableKey(other.Dev, missingIsLow: false));
        if (c != 0) return c;
        return CompareLocal(Local, other.Local);
    }

    private static int CompareRelease(IReadOnlyList<BigInteger> a, IReadOnlyList<BigInteger> b)
    {
        // packaging strips trailing zeros, which equals comparing with zero padding.
        for (int i = 0; i < Math.Max(a.Count, b.Count); i++)
        {
            var x = i < a.Count ? a[i] : BigInteger.Zero;
            var y = i < b.Count ? b[i] : BigInteger.Zero;
            int c = x.CompareTo(y);
            if (c != 0) return c;
        }
        return 0;
    }

    // (rank, letter rank, number): rank 0 = -inf (dev-only), 1 = has pre, 2 = +inf (no pre).
    private (int, int, BigInteger) PreKey()
    {
        if (Pre is null && Post is null && Dev is not null) return (0, 0, 0);
        if (Pre is null) return (2, 0, 0);
        var (l, n) = Pre.Value;
        return (1, l == "a" ? 0 : l == "b" ? 1 : 2, n);
    }

    private static (int, BigInteger) NullableKey(BigInteger? v, bool missingIsLow) =>
        v is null ? (missingIsLow ? 0 : 2, BigInteger.Zero) : (1, v.Value);

    private static int CompareLocal(IReadOnlyList<string>? a, IReadOnlyList<string>? b)
    {
        if (a is null) return b is null ? 0 : -1;
        if (b is null) return 1;
        for (int i = 0; i < Math.Min(a.Count, b.Count); i++)
        {
            bool an = BigInteger.TryParse(a[i], NumberStyles.None, CultureInfo.InvariantCulture, out var ai);
            bool bn = BigInteger.TryParse(b[i], NumberStyles.None, CultureInfo.InvariantCulture, out var bi);
            int c = (an, bn) switch
            {
                (true, true) => ai.CompareTo(bi),
                (true, false) => 1, // numeric segments sort after alphanumeric ones
                (false, true) => -1,
                _ => string.CompareOrdinal(a[i], b[i]),
            };
            if (c != 0) return c;
        }
        return a.Count.CompareTo(b.Count);
    }

    public bool Equals(Pep440Version? other) => other is not null && CompareTo(other) == 0;
    public override bool Equals(object? obj) => obj is Pep440Version v && Equals(v);
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Epoch);
        int n = Release.Count;
        while (n > 0 && Release[n - 1].IsZero) n--;
        for (int i = 0; i < n; i++) h.Add(Release[i]);
        h.Add(Pre); h.Add(Post); h.Add(Dev);
        if (Local is not null) foreach (var s in Local) h.Add(s);
        return h.ToHashCode();
    }

    public static bool operator <(Pep440Version a, Pep440Version b) => a.CompareTo(b) < 0;
    public static bool operator >(Pep440Version a, Pep440Version b) => a.CompareTo(b) > 0;
    public static bool operator <=(Pep440Version a, Pep440Version b) => a.CompareTo(b) <= 0;
    public static bool operator >=(Pep440Version a, Pep440Version b) => a.CompareTo(b) >= 0;
    public static bool operator ==(Pep440Version? a, Pep440Version? b) => a is null ? b is null : a.Equals(b);
    public static bool operator !=(Pep440Version? a, Pep440Version? b) => !(a == b);

    /// <summary>Normalised form, as <c>str(Version(...))</c> prints it.</summary>
    public override string ToString()
    {
        var s = new System.Text.StringBuilder();
        if (!Epoch.IsZero) s.Append(Epoch).Append('!');
        s.Append(string.Join('.', Release));
        if (Pre is { } p) s.Append(p.Label).Append(p.Number);
        if (Post is { } po) s.Append(".post").Append(po);
        if (Dev is { } d) s.Append(".dev").Append(d);
        if (Local is not null) s.Append('+').Append(string.Join('.', Local));
        return s.ToString();
    }
}
