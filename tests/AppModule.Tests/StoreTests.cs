using AppModule.Core.Store;

namespace AppModule.Tests;

/// <summary>The persistent store's transitions: atomic state replacement, immutable compositions, journal, and which images are in use.</summary>
public class StoreTests
{
    private static Composition Draft(string artifact, params string[] urls) =>
        new(string.Empty, string.Empty, artifact, "docker-compose", "linux/amd64", urls.Select(u => new ImageRef(u, new string('a', 64))).ToArray(), new Dictionary<string, string>(), DateTimeOffset.UnixEpoch);

    [Fact]
    public void A_missing_application_has_an_empty_state_and_transitions_are_read_back_with_their_journal()
    {
        using var dir = new TempDir();
        var store = new AppStore(dir.Path);
        var s = store.Load("web");
        Assert.Null(s.Committed);
        Assert.Null(s.Pending);
        Assert.Empty(s.Garbage);
        var c = store.CreateComposition(s, Draft("v1", "web:1"), m => File.WriteAllText(Path.Combine(m, "docker-compose.yml"), "services: {}"), out s);
        Assert.Equal("c-000001", c.Id);
        s = store.Transition(s with { Pending = new PendingInstall(c.Id, "v1", InstallPhase.Prepared) }, "prepared", "v1");
        s = store.Transition(s with { Pending = s.Pending! with { Phase = InstallPhase.Installed }, Running = c.Id }, "installed");

        var back = store.Load("web");
        Assert.Equal(InstallPhase.Installed, back.Pending!.Phase);
        Assert.Equal(c.Id, back.Running);
        Assert.Equal(2, back.NextSequence);
        Assert.Equal(["prepared", "installed"], store.Journal("web").Select(j => j.Event));
        Assert.Equal("services: {}", File.ReadAllText(Path.Combine(store.ManifestsOf("web", c.Id), "docker-compose.yml")));
        var read = store.ReadComposition("web", c.Id);
        Assert.Equal((c.Id, c.Application, c.ArtifactName), (read.Id, read.Application, read.ArtifactName));
        Assert.Equal(c.Images, read.Images);
        Assert.Empty(Directory.GetFiles(store.ApplicationDir("web"), ".*")); // no temporary files left
    }

    [Fact]
    public void A_composition_interrupted_while_being_written_never_appears_under_its_name_and_is_removed_as_a_leftover()
    {
        using var dir = new TempDir();
        var store = new AppStore(dir.Path);
        var s = store.Load("web");
        Assert.Throws<IOException>(() => store.CreateComposition(s, Draft("v1"), _ => throw new IOException("disk full"), out _));
        Assert.False(Directory.Exists(Path.Combine(store.ApplicationDir("web"), "c-000001")));
        Assert.NotEmpty(Directory.GetDirectories(store.ApplicationDir("web"), ".*"));
        store.RemoveLeftovers("web");
        Assert.Empty(Directory.GetDirectories(store.ApplicationDir("web"), ".*"));
        var c = store.CreateComposition(s, Draft("v1"), _ => { }, out _);
        Assert.Equal("c-000001", c.Id);
    }

    [Fact]
    public void A_torn_journal_line_after_a_crash_is_ignored_and_the_state_file_stays_authoritative()
    {
        using var dir = new TempDir();
        var store = new AppStore(dir.Path);
        var s = store.Transition(AppState.Empty("web") with { Committed = "c-000001" }, "committed", "v1");
        File.AppendAllText(Path.Combine(store.ApplicationDir("web"), "journal.log"), "{\"time_utc\":\"2026-");
        Assert.Single(store.Journal("web"));
        Assert.Equal("c-000001", store.Load("web").Committed);
        Assert.Equal(s with { Garbage = [] }, store.Load("web") with { Garbage = [] });
    }

    [Fact]
    public void A_damaged_state_file_is_reported_with_the_file_and_the_fix()
    {
        using var dir = new TempDir();
        var store = new AppStore(dir.Path);
        Directory.CreateDirectory(store.ApplicationDir("web"));
        File.WriteAllText(Path.Combine(store.ApplicationDir("web"), "state.json"), "{ not json");
        var e = Assert.Throws<StoreException>(() => store.Load("web"));
        Assert.Contains("state.json is not a valid state file", e.Message);
    }

    [Fact]
    public void Images_in_use_are_those_of_every_kept_composition_of_every_application()
    {
        using var dir = new TempDir();
        var store = new AppStore(dir.Path);
        var a = store.Load("a");
        var a1 = store.CreateComposition(a, Draft("a1", "x:1", "shared:1"), _ => { }, out a);
        var a2 = store.CreateComposition(a, Draft("a2", "x:2"), _ => { }, out a);
        var a0 = store.CreateComposition(a, Draft("a0", "x:0"), _ => { }, out a);
        store.Transition(a with { Committed = a2.Id, Previous = a1.Id, Running = a2.Id, Garbage = [a0.Id] }, "t");
        var b = store.Load("b");
        var b1 = store.CreateComposition(b, Draft("b1", "y:1"), _ => { }, out b);
        store.Transition(b with { Pending = new PendingInstall(b1.Id, "b1", InstallPhase.Loading) }, "t");

        var used = store.ImagesInUse();
        Assert.Equal(["shared:1", "x:1", "x:2", "y:1"], used.Select(i => i.Url).Order(StringComparer.Ordinal));
        Assert.Equal(["a", "b"], store.Applications());
    }

    [Fact]
    public void Application_names_that_could_escape_the_store_are_refused()
    {
        var store = new AppStore("/tmp/nowhere");
        Assert.Throws<StoreException>(() => store.ApplicationDir("../etc"));
        Assert.Throws<StoreException>(() => store.ApplicationDir("a/b"));
    }
}
