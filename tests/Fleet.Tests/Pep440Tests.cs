using Fleet.Core.Versioning;

namespace Fleet.Tests;

/// <summary>Expected answers are those of Python's packaging 24 (Version / SpecifierSet).</summary>
public sealed class Pep440Tests
{
    [Theory]
    [InlineData("1.0", "1.0.0", 0)]
    [InlineData("2.1.0", "2.0.9", 1)]
    [InlineData("1.0.dev0", "1.0a1", -1)]
    [InlineData("1.0a1", "1.0b1", -1)]
    [InlineData("1.0b2", "1.0rc1", -1)]
    [InlineData("1.0rc1", "1.0", -1)]
    [InlineData("1.0", "1.0.post1", -1)]
    [InlineData("1.0.post1.dev1", "1.0.post1", -1)]
    [InlineData("1.0a1.post1", "1.0a2", -1)]
    [InlineData("1.0", "1.0+local", -1)]
    [InlineData("1.0+abc", "1.0+1", -1)]
    [InlineData("1.0+1.2", "1.0+1", 1)]
    [InlineData("1!0.1", "2.0", 1)]
    [InlineData("v1.10", "1.9", 1)]
    [InlineData("1.0-1", "1.0.post1", 0)]
    [InlineData("1.0ALPHA1", "1.0a1", 0)]
    [InlineData("1.0c1", "1.0rc1", 0)]
    [InlineData("1.0.0-preview.3", "1.0rc3", 0)]
    [InlineData("10.0", "9.99", 1)]
    public void Version_compare_matches_python_packaging(string a, string b, int expected)
    {
        Assert.Equal(expected, Pep440Version.Compare(a, b));
        Assert.Equal(-expected, Pep440Version.Compare(b, a));
    }

    [Theory]
    [InlineData("1.0.0-preview.3", "1.0.0rc3")]
    [InlineData("v1.2.3.DEV4", "1.2.3.dev4")]
    [InlineData("1.0-r5", "1.0.post5")]
    [InlineData("0!1.0+Ubuntu-1", "1.0+ubuntu.1")]
    public void Versions_normalise_like_str_of_Version(string input, string normal) =>
        Assert.Equal(normal, Pep440Version.Parse(input).ToString());

    [Theory]
    [InlineData("latest")]
    [InlineData("1.0-beta-x")]
    [InlineData("")]
    [InlineData("1..0")]
    public void Non_versions_are_refused_with_an_example_of_a_valid_one(string text)
    {
        Assert.False(Pep440Version.TryParse(text, out _));
        var e = Assert.Throws<FormatException>(() => Pep440Version.Parse(text));
        Assert.Contains("1.2.3", e.Message);
    }

    [Theory]
    [InlineData(">=1.5,<2", "1.5;1.9.9;1.10", "2.0;1.4;2.0rc1;1.9rc1")]
    [InlineData("~=2.1", "2.1;2.9;2.1.5", "3.0;2.0")]
    [InlineData("~=2.1.3", "2.1.3;2.1.9", "2.2.0;2.1.2")]
    [InlineData("==2.*", "2.0;2.9.1", "3.0;1.9")]
    [InlineData("!=2.0.1,>=2", "2.0;2.0.2", "2.0.1;1.0")]
    [InlineData("<2.0", "1.9", "2.0;2.0rc1")]
    [InlineData(">2.0", "2.1", "2.0;2.0.post1")]
    [InlineData(">=2.0rc1", "2.0rc1;2.0;2.1a1", "2.0b1")]
    [InlineData("~2.1", "2.1.0;2.1.7", "2.2.0;2.0.9")]
    [InlineData("^2.1", "2.1.0;2.9", "3.0;2.0")]
    public void Ranges_contain_what_a_specifier_set_contains(string range, string inside, string outside)
    {
        var t = VersionTarget.Parse(range);
        Assert.True(t.IsRange);
        foreach (var v in inside.Split(';')) Assert.True(t.Contains(Pep440Version.Parse(v)), $"{v} should be in {range}");
        foreach (var v in outside.Split(';')) Assert.False(t.Contains(Pep440Version.Parse(v)), $"{v} should not be in {range}");
    }

    [Fact]
    public void A_range_resolves_to_the_newest_matching_tag_ignoring_non_versions_and_prereleases()
    {
        var tags = new[] { "latest", "1.4", "1.5.0", "1.9.2", "v1.10.0", "2.0.0", "2.0.0rc1", "1.11.0b1", "edge" };
        Assert.Equal("v1.10.0", VersionTarget.Parse(">=1.5,<2").ResolveNewest(tags));
        Assert.Equal("2.0.0", VersionTarget.Parse("*").ResolveNewest(tags));
        Assert.Null(VersionTarget.Parse(">=3").ResolveNewest(tags));
        // only a pre-release matches: packaging's filter falls back to it
        Assert.Equal("1.11.0b1", VersionTarget.Parse(">1.10.0,<2").ResolveNewest(tags));
    }

    [Fact]
    public void An_exact_target_is_not_a_range()
    {
        var t = VersionTarget.Parse("2.1.0");
        Assert.False(t.IsRange);
        Assert.True(t.Contains(Pep440Version.Parse("2.1")));
    }

    [Theory]
    [InlineData("~=2", "two release numbers")]
    [InlineData("2.x", "no operator")]
    [InlineData(">=abc", "not a PEP 440 version")]
    [InlineData(">=2.*", "only allowed with")]
    public void Bad_ranges_say_what_is_wrong(string text, string hint) =>
        Assert.Contains(hint, Assert.Throws<FormatException>(() => VersionTarget.Parse(text)).Message);
}
