using AppModule.Core.Store;
using SubModule.Hosting;

namespace AppModule.Tests;

/// <summary>The sub-modules' one state store (SubModule.Hosting.ManifestStore) over the core's durable directory replacement.</summary>
public class ManifestStoreTests
{
    private static string Manifests(TempDir dir, string name, string content)
    {
        dir.Write($"{name}/docker-compose.yml", content);
        dir.Write($"{name}/conf/app.env", content + "-env");
        return dir.File(name);
    }

    [Fact]
    public void A_kept_snapshot_replaces_the_current_one_and_the_old_one_becomes_the_previous_without_leftovers()
    {
        using var dir = new TempDir();
        var store = new ManifestStore(dir.File("state"));
        store.Keep("web", "current", Manifests(dir, "v1", "one"), keepOldAs: "previous");
        store.Keep("web", "current", Manifests(dir, "v2", "two"), keepOldAs: "previous");
        store.Keep("web", "current", Manifests(dir, "v3", "three"), keepOldAs: "previous");

        Assert.Equal("three", File.ReadAllText(Path.Combine(store.Snapshot("web", "current"), "docker-compose.yml")));
        Assert.Equal("three-env", File.ReadAllText(Path.Combine(store.Snapshot("web", "current"), "conf", "app.env")));
        Assert.Equal("two", File.ReadAllText(Path.Combine(store.Snapshot("web", "previous"), "docker-compose.yml")));
        Assert.Equal(["current", "previous"], Directory.GetFileSystemEntries(store.AppDirectory("web")).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void A_snapshot_kept_from_itself_stays_and_nothing_else_is_kept_when_no_previous_is_asked_for()
    {
        using var dir = new TempDir();
        var store = new ManifestStore(dir.File("state"));
        store.Keep("web", "manifests", Manifests(dir, "v1", "one"));
        store.Keep("web", "manifests", store.Snapshot("web", "manifests"));

        Assert.Equal("one", File.ReadAllText(Path.Combine(store.Snapshot("web", "manifests"), "docker-compose.yml")));
        Assert.Equal(["manifests"], Directory.GetFileSystemEntries(store.AppDirectory("web")).Select(Path.GetFileName));
    }

    [Fact]
    public void The_snapshot_directory_exists_at_every_instant_while_it_is_replaced()
    {
        using var dir = new TempDir();
        var store = new ManifestStore(dir.File("state"));
        store.Keep("web", "current", Manifests(dir, "v1", "one"), keepOldAs: "previous");
        var target = store.Snapshot("web", "current");
        var v2 = Manifests(dir, "v2", "two");
        using var done = new CancellationTokenSource();
        var missing = 0;
        var checks = 0;
        var watcher = Task.Run(() =>
        {
            while (!done.IsCancellationRequested)
            {
                checks++;
                if (!File.Exists(Path.Combine(target, "docker-compose.yml")))
                {
                    missing++;
                }
            }
        });

        for (var i = 0; i < 300; i++)
        {
            store.Keep("web", "current", i % 2 == 0 ? v2 : dir.File("v1"), keepOldAs: "previous");
        }

        done.Cancel();
        watcher.Wait();
        Assert.True(checks > 0);
        Assert.Equal(0, missing);
    }

    [Fact]
    public void A_replacement_interrupted_between_two_renames_is_undone_when_the_snapshot_is_next_read()
    {
        // On a filesystem that cannot exchange two names, the old directory is parked aside first; a crash
        // before the new one is renamed in leaves only the parked one.
        using var dir = new TempDir();
        var store = new ManifestStore(dir.File("state"));
        store.Keep("web", "current", Manifests(dir, "v1", "one"));
        var target = store.Snapshot("web", "current");
        Directory.Move(target, Durable.AsideName(target));

        Assert.True(store.HasSnapshot("web", "current"));
        Assert.Equal("one", File.ReadAllText(Path.Combine(target, "docker-compose.yml")));
        Assert.False(Directory.Exists(Durable.AsideName(target)));
    }

    [Fact]
    public void Records_are_read_back_line_by_line_and_forgetting_an_application_removes_all_of_it()
    {
        using var dir = new TempDir();
        var store = new ManifestStore(dir.File("state"));
        Assert.Null(store.ReadRecord("web", "services"));
        store.WriteRecord("web", "services", ["web 1 nginx:1", "db 0 redis:7"]);
        store.WriteRecord("api", "services", ["api 2 api:1"]);

        Assert.Equal(["web 1 nginx:1", "db 0 redis:7"], store.ReadRecord("web", "services"));
        Assert.Equal(["api", "web"], store.Applications().Order());
        store.Forget("web");
        Assert.Equal(["api"], store.Applications());
        Assert.Equal(["api"], Directory.GetFileSystemEntries(store.Root).Select(Path.GetFileName));
    }

    [Fact]
    public void A_state_directory_that_cannot_be_written_is_a_failure_naming_the_application_and_the_directory()
    {
        using var dir = new TempDir();
        dir.Write("state", "a file where the state directory should be");
        var store = new ManifestStore(dir.File("state"));

        var e = Assert.Throws<SubModuleFailure>(() => store.Keep("web", "manifests", Manifests(dir, "v1", "one")));
        Assert.Contains($"cannot update the state of web in {store.AppDirectory("web")}", e.Message);
        Assert.Contains("check state_dir", e.Message);
    }
}
