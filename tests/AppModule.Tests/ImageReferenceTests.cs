using AppModule.Core.Images;
using CsCheck;

namespace AppModule.Tests;

/// <summary>The one image-reference type every project uses: parsing, the engine's and containerd's forms,
/// equality under normalisation, and clear errors.</summary>
public sealed class ImageReferenceTests
{
    private const string Hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("web")]
    [InlineData("web:latest")]
    [InlineData("library/web")]
    [InlineData("library/web:latest")]
    [InlineData("docker.io/web")]
    [InlineData("docker.io/library/web")]
    [InlineData("docker.io/library/web:latest")]
    [InlineData("index.docker.io/web")]
    [InlineData("index.docker.io/library/web:latest")]
    public void Every_Docker_Hub_spelling_of_an_official_image_is_the_same_reference(string text)
    {
        var r = ImageReference.Parse(text);
        Assert.Equal(ImageReference.Parse("web"), r);
        Assert.Equal("docker.io", r.Registry);
        Assert.Equal("library/web", r.Repository);
        Assert.Equal("web:latest", r.Familiar);
        Assert.Equal("docker.io/library/web:latest", r.FullyQualified);
        Assert.True(ImageReference.SameImage(text, "docker.io/library/web:latest"));
    }

    [Theory]
    [InlineData("team/web:1.0", "docker.io", "team/web", "team/web:1.0", "docker.io/team/web:1.0")]
    [InlineData("index.docker.io/team/web:1.0", "docker.io", "team/web", "team/web:1.0", "docker.io/team/web:1.0")]
    [InlineData("registry.example.com:5000/team/web", "registry.example.com:5000", "team/web", "registry.example.com:5000/team/web:latest", "registry.example.com:5000/team/web:latest")]
    [InlineData("localhost/web:2", "localhost", "web", "localhost/web:2", "localhost/web:2")]
    [InlineData("127.0.0.1:5000/web", "127.0.0.1:5000", "web", "127.0.0.1:5000/web:latest", "127.0.0.1:5000/web:latest")]
    [InlineData("library/a/b:3", "docker.io", "library/a/b", "library/a/b:3", "docker.io/library/a/b:3")]
    [InlineData("Registry/web", "Registry", "web", "Registry/web:latest", "Registry/web:latest")]
    [InlineData("docker.io/my.org/web", "docker.io", "my.org/web", "docker.io/my.org/web:latest", "docker.io/my.org/web:latest")]
    public void A_reference_splits_into_registry_and_repository_as_the_engine_splits_it(string text, string registry, string repository, string familiar, string qualified)
    {
        var r = ImageReference.Parse(text);
        Assert.Equal((registry, repository, familiar, qualified), (r.Registry, r.Repository, r.Familiar, r.FullyQualified));
    }

    [Fact]
    public void A_digest_is_kept_and_no_default_tag_is_added_to_it()
    {
        var r = ImageReference.Parse($"web@sha256:{Hex.ToUpperInvariant()}");
        Assert.Equal($"sha256:{Hex}", r.Digest);
        Assert.Null(r.Tag);
        Assert.Equal($"web@sha256:{Hex}", r.Familiar);
        Assert.Equal($"docker.io/library/web@sha256:{Hex}", r.FullyQualified);
        Assert.Equal($"docker.io/library/web:1@sha256:{Hex}", ImageReference.Parse($"web:1@sha256:{Hex}").FullyQualified);
        Assert.NotEqual(ImageReference.Parse("web"), r);
    }

    [Fact]
    public void Tags_and_registries_distinguish_references()
    {
        Assert.NotEqual(ImageReference.Parse("web:1"), ImageReference.Parse("web:2"));
        Assert.NotEqual(ImageReference.Parse("team/web"), ImageReference.Parse("web"));
        Assert.NotEqual(ImageReference.Parse("registry.lan/web"), ImageReference.Parse("web"));
        Assert.Equal(ImageReference.Parse("team/web").GetHashCode(), ImageReference.Parse("docker.io/team/web:latest").GetHashCode());
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("web app", "white space")]
    [InlineData("team/Web", "\"Web\" must be lower-case")]
    [InlineData("web:-1", "\"-1\" is not a valid tag")]
    [InlineData("web@sha256:abc", "the part after @ must be a digest")]
    [InlineData("bad_host.com:x/web", "is not a registry host")]
    [InlineData(Hex, "is an image ID, not a reference")]
    [InlineData("team//web", "repository component \"\"")]
    public void A_malformed_reference_is_refused_naming_the_text_and_what_is_wrong(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ImageReference.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("e.g.", ImageReference.TryParse("", out _, out var empty) ? "" : empty, StringComparison.Ordinal);
    }

    [Fact]
    public void Image_IDs_and_texts_that_are_not_references_pass_through_the_text_helpers_unchanged()
    {
        Assert.Equal($"sha256:{Hex}", ImageReference.ToFamiliar($"sha256:{Hex}"));
        Assert.Equal($"sha256:{Hex}", ImageReference.ToFullyQualified($"sha256:{Hex}"));
        Assert.Equal("Not A Reference", ImageReference.ToFamiliar("Not A Reference"));
        Assert.True(ImageReference.IsImageId(Hex));
        Assert.False(ImageReference.IsImageId("web"));
    }

    [Fact]
    public void Splitting_the_tag_keeps_the_name_as_written()
    {
        Assert.Equal(("registry.lan:5000/team/web", "1.0"), ImageReference.SplitTag("registry.lan:5000/team/web:1.0"));
        Assert.Equal(("registry.lan:5000/web", (string?)null), ImageReference.SplitTag("registry.lan:5000/web"));
        Assert.Equal(("docker.io/library/web", "2"), ImageReference.SplitTag($"docker.io/library/web:2@sha256:{Hex}"));
    }

    [Fact]
    public void Built_from_parts_a_reference_equals_the_parsed_one_and_mismatched_parts_are_refused()
    {
        Assert.Equal(ImageReference.Parse("web"), new ImageReference("docker.io", "web"));
        Assert.Equal(ImageReference.Parse("registry.lan:5000/team/web:1"), new ImageReference("registry.lan:5000", "team/web", "1"));
        Assert.Throws<FormatException>(() => new ImageReference("team", "web"));
        Assert.Equal("web:2", ImageReference.Parse($"web:1@sha256:{Hex}").WithTag("2").ToString());
        Assert.Equal("docker.io/library/web", ImageReference.Parse("web:1").WithoutTagOrDigest().Name);
    }

    // ------------------------------------------------------------------ properties

    private static readonly Gen<string> Component =
        Gen.Select(Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"], 1, 8],
                   Gen.OneOf("", ".", "_", "__", "-", "--"),
                   Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"], 1, 5])
           .Select((a, sep, b) => sep.Length == 0 ? a : a + sep + b);

    private static readonly Gen<string?> Registry =
        Gen.OneOf<string?>(null, "docker.io", "index.docker.io", "localhost", "localhost:5000", "registry.example.com", "127.0.0.1:5000", "ghcr.io");

    private static readonly Gen<string?> Tag =
        Gen.Select(Gen.Char["abcXYZ019_"], Gen.String[Gen.Char["abcXYZ019_.-"], 0, 20]).Select((c, rest) => c + rest).Null(0.3);

    private static readonly Gen<string?> Digest =
        Gen.String[Gen.Char["0123456789abcdef"], 64, 64].Select(h => "sha256:" + h).Null(0.3);

    private static readonly Gen<string> Text =
        Gen.Select(Registry, Component.Array[1, 3], Tag, Digest)
           .Select((reg, path, tag, digest) =>
               (reg is null ? "" : reg + "/") + string.Join('/', path) + (tag is null ? "" : ":" + tag) + (digest is null ? "" : "@" + digest))
           .Where(t => !(ImageReference.SplitTag(t).Name.Length == 64 && ImageReference.SplitTag(t).Name.All(char.IsAsciiHexDigit)));

    [Fact]
    public void Every_form_of_a_reference_parses_back_to_the_same_reference()
    {
        Text.Sample(text =>
        {
            var r = ImageReference.Parse(text);
            Assert.Equal(r, ImageReference.Parse(r.ToString()));
            Assert.Equal(r, ImageReference.Parse(r.Familiar));
            Assert.Equal(r, ImageReference.Parse(r.FullyQualified));
            Assert.Equal(r.FullyQualified, ImageReference.Parse(r.FullyQualified).FullyQualified);
            Assert.Equal(r.Familiar, ImageReference.Parse(r.Familiar).Familiar);
            Assert.Equal(r, new ImageReference(r.Registry, r.Repository, r.Tag, r.Digest));
            Assert.StartsWith(r.Registry + "/" + r.Repository, r.FullyQualified, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void Every_Docker_Hub_spelling_of_a_generated_name_is_equal()
    {
        Gen.Select(Component, Gen.OneOf("", ":latest"), Gen.Bool).Sample((name, latest, official) =>
        {
            var path = official ? name : "team/" + name;
            var canonical = ImageReference.Parse("docker.io/" + (official ? "library/" + name : path) + ":latest");
            string[] spellings = official
                ? [name + latest, "library/" + name + latest, "docker.io/" + name + latest, "docker.io/library/" + name + latest, "index.docker.io/" + name + latest, "index.docker.io/library/" + name + latest]
                : [path + latest, "docker.io/" + path + latest, "index.docker.io/" + path + latest];
            foreach (var s in spellings)
            {
                Assert.Equal(canonical, ImageReference.Parse(s));
                Assert.Equal(canonical.Familiar, ImageReference.ToFamiliar(s));
                Assert.Equal(canonical.FullyQualified, ImageReference.ToFullyQualified(s));
            }
        });
    }
}
