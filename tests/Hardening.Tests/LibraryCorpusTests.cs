using AppModule.Artifacts;
using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>
/// The attack corpus at the library level: each hostile artifact goes through what the device does
/// with an artifact before anything changes (the reader writing the File API tree like `app unpack`,
/// the meta-data parser and validator, the images payload reader, the safe manifests extraction) and
/// must be rejected by the layer the corpus names, with its exception class and a one-line message,
/// without writing anything outside the work directory.
/// </summary>
public sealed class LibraryCorpusTests : IClassFixture<LibraryCorpusTests.Fixture>
{
    private readonly Fixture _fixture;

    public LibraryCorpusTests(Fixture fixture) => _fixture = fixture;

    public sealed class Fixture : IDisposable
    {
        private readonly TempDir _dir = new("hardening-lib");

        public Fixture()
        {
            var image = SyntheticImage.Write(_dir.Dir("images"), "corpus/web:2.0");
            var other = SyntheticImage.Write(_dir.Dir("images"), "corpus/other:1.0");
            Base = new CorpusBase("corpusapp", image, other, url => Compose(url, 18080));
        }

        public CorpusBase Base { get; }

        public string Dir => _dir.Path;

        public void Dispose() => _dir.Dispose();
    }

    public static string Compose(string imageUrl, int port) =>
        $"version: '2.4'\nservices:\n  web:\n    image: {imageUrl}\n    ports:\n      - \"127.0.0.1:{port}:8080\"\n";

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in HostileArtifacts.All)
        {
            data.Add(c.Name);
        }

        return data;
    }

    [Fact]
    public void The_corpus_has_at_least_40_cases_with_unique_names_covering_every_layer()
    {
        Assert.True(HostileArtifacts.All.Count >= 40, $"{HostileArtifacts.All.Count} cases");
        Assert.Equal(HostileArtifacts.All.Count, HostileArtifacts.All.Select(c => c.Name).Distinct().Count());
        Assert.All(Enum.GetValues<Layer>(), l => Assert.Contains(HostileArtifacts.All, c => c.RejectedBy == l));
    }

    [Fact]
    public async Task The_unbroken_base_artifact_passes_every_library_layer()
    {
        using var work = new TempDir("hardening-case");
        var path = _fixture.Base.Valid("base").Write(work.File("base.mender"));
        var error = await LibraryPipeline.RunAsync(path, work.Path, CancellationToken.None);
        Assert.Null(error);
        Assert.True(File.Exists(Path.Combine(work.Path, "sandbox", "dest", "docker-compose.yml")));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Each_hostile_artifact_is_rejected_by_its_layer_with_its_error_class_and_a_one_line_message(string name)
    {
        var c = HostileArtifacts.All.Single(x => x.Name == name);
        using var work = new TempDir("hardening-case");
        var path = c.Build(_fixture.Base).Write(work.File(c.Name + ".mender"));
        var error = await LibraryPipeline.RunAsync(path, work.Path, CancellationToken.None);

        if (c.Error is null)
        {
            Assert.True(error is null, $"{c.Name}: the library should accept it (the {c.RejectedBy} layer rejects it), but: {error}");
        }
        else
        {
            Assert.True(error is not null, $"{c.Name}: accepted, expected {c.Error} from {c.RejectedBy}");
            Assert.True(c.Error == error.Inner.GetType().Name, $"{c.Name}: expected {c.Error}, got {error.Inner.GetType().Name}: {error.Message}");
            Assert.True(error.Layer == c.RejectedBy, $"{c.Name}: rejected by {error.Layer}, expected {c.RejectedBy}: {error.Message}");
            Assert.Contains(c.FragmentFor(_fixture.Base), error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', error.Message);
            if (c.RejectedBy == Layer.ArtifactReader)
            {
                Assert.False(Directory.Exists(Path.Combine(work.Path, "tree")), "the reader left a partial File API tree behind");
            }
        }

        LibraryPipeline.AssertNothingOutside(work.Path);
    }
}
