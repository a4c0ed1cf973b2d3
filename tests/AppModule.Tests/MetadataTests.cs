namespace AppModule.Tests;

/// <summary>Bad meta-data: one actionable line, exit 4, no sub-module call, and the running application untouched.</summary>
public class MetadataTests
{
    public static TheoryData<string, string> BadMetaData()
    {
        const string id = "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"";
        string M(string app = "\"APP\"", string orch = "\"fake\"", string platform = "\"linux/amd64\"", string version = "\"1.0\"", string images = "[" + id + "]", string extra = "") =>
            $"{{\"application_name\":{app},\"orchestrator\":{orch},\"platform\":{platform},\"version\":{version},\"images\":{images}{extra}}}";
        return new TheoryData<string, string>
        {
            { "null", "no meta-data" },
            { "{\"application_name\": ", "not valid JSON" },
            { "[1,2]", "must be a JSON object" },
            { M(app: "\"../../etc\""), "\"application_name\" is \"../../etc\"" },
            { M(app: "\"my app\""), "\"application_name\" is \"my app\"" },
            { M(app: "42"), "\"application_name\" must be a string" },
            { "{\"orchestrator\":\"fake\",\"platform\":\"linux/amd64\",\"version\":\"1.0\",\"images\":[]}", "\"application_name\" is missing" },
            { M(orch: "\"../../../bin/sh\""), "\"orchestrator\" is \"../../../bin/sh\"" },
            { M(orch: "\"/usr/bin/docker\""), "\"orchestrator\" is \"/usr/bin/docker\"" },
            { M(platform: "\"amd64; rm -rf /\""), "\"platform\" is" },
            { M(version: "\"2.0\""), "\"version\" is \"2.0\"" },
            { M(images: "\"abc\""), "\"images\" must be a list" },
            { M(images: "[\"sha256:xyz\"]"), "\"images[0]\" is \"sha256:xyz\"" },
            { M(extra: ",\"env\":{\"BAD-NAME\":\"x\"}"), "has the key \"BAD-NAME\"" },
            { M(extra: ",\"env\":{\"LD_PRELOAD\":7}"), "\"env.LD_PRELOAD\" must be a string" },
            { M(extra: ",\"soak_seconds\":\"30\""), "\"soak_seconds\" must be a whole number of seconds from 0 to 86400, got the string \"30\"" },
            { M(extra: ",\"soak_seconds\":-1"), "\"soak_seconds\" must be a whole number of seconds from 0 to 86400, got the number -1" },
            { M(extra: ",\"health_timeout_seconds\":2.5"), "\"health_timeout_seconds\" must be a whole number of seconds from 1 to 86400, got the number 2.5" },
            { M(extra: ",\"health_timeout_seconds\":0"), "\"health_timeout_seconds\" must be a whole number of seconds from 1 to 86400" },
        };
    }

    [Theory]
    [MemberData(nameof(BadMetaData))]
    public void Bad_meta_data_gives_one_actionable_line_and_leaves_the_running_application_untouched(string metaData, string expected)
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var good = rig.Tree(rig.Spec("v1", app, "services:\n  web:\n    image: web:1.0\n", rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(good).ExitCode);
        Assert.Equal(0, rig.Commit(good).ExitCode);
        var running = rig.Running(app);
        rig.ClearCalls();

        var bad = rig.Tree(rig.Spec("bad", app, "services: {}\n", rig.Image("web:2.0")) with { MetaDataJson = metaData.Replace("APP", app, StringComparison.Ordinal) });
        var r = rig.Install(bad);
        Assert.Equal(4, r.ExitCode);
        var errors = r.Stderr.Split('\n').Where(l => l.Contains("error:", StringComparison.Ordinal)).ToArray();
        Assert.True(errors.Length == 1, r.Stderr);
        Assert.Contains(expected, errors[0]);
        Assert.Matches("(regenerate|rename|quote|use |app-gen|fix|must be)", errors[0]);

        // The client then rolls back and cleans up: nothing may change.
        Assert.Equal(0, rig.Rollback(bad, failure: true).ExitCode);
        Assert.Empty(rig.Calls());
        Assert.Equal(running, rig.Running(app));
        Assert.Contains("last-known-good: v1", rig.RunArgs("status", app).Stdout);
    }

    [Fact]
    public void An_artifact_asking_for_more_soak_or_health_timeout_than_the_device_allows_is_refused_before_anything_changes()
    {
        using var rig = new ModuleRig("max_soak_seconds = 60\nmax_health_timeout_seconds = 30\n");
        var app = Unique.Name("a");
        var good = rig.Tree(rig.Spec("v1", app, "services:\n  web:\n    image: web:1.0\n", rig.Image("web:1.0")));
        Assert.Equal(0, rig.Install(good).ExitCode);
        Assert.Equal(0, rig.Commit(good).ExitCode);
        var running = rig.Running(app);

        foreach (var (extra, expected) in new[]
        {
            ("\"soak_seconds\":61", "meta-data field \"soak_seconds\" = 61 is above this device's limit max_soak_seconds = 60"),
            ("\"health_timeout_seconds\":31", "meta-data field \"health_timeout_seconds\" = 31 is above this device's limit max_health_timeout_seconds = 30"),
        })
        {
            rig.ClearCalls();
            var bad = rig.Tree(rig.Spec("v2", app, "services:\n  web:\n    image: web:2.0\n", rig.Image("web:2.0")) with { ExtraMetaData = extra });
            var r = rig.Install(bad);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
            Assert.Contains("raise the limit on the device", r.Stderr, StringComparison.Ordinal);
            Assert.Equal(0, rig.Rollback(bad, failure: true).ExitCode);
            Assert.Empty(rig.Calls());
            Assert.Equal(running, rig.Running(app));
        }

        Assert.Contains("last-known-good: v1", rig.RunArgs("status", app).Stdout);
    }

    [Fact]
    public void An_artifact_s_own_soak_within_the_device_limit_holds_its_install_to_that_soak_and_is_kept_with_the_version()
    {
        using var rig = new ModuleRig(); // the device's soak is 0 here
        var app = Unique.Name("a");
        var v1 = rig.Tree(rig.Spec("v1", app, "services:\n  web:\n    image: web:1.0\n", rig.Image("web:1.0")) with { ExtraMetaData = "\"soak_seconds\":3,\"health_timeout_seconds\":7" });
        var r = rig.Install(v1);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("waiting up to 7 s for", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"soak: {app} must stay healthy for 3 s", r.Stderr, StringComparison.Ordinal);
        Assert.True(rig.Calls().Count(c => c.StartsWith("HEALTHY", StringComparison.Ordinal)) >= 3, string.Join('\n', rig.Calls()));
        var stored = Directory.GetFiles(Path.Combine(rig.Store, app), "composition.json", SearchOption.AllDirectories).Select(File.ReadAllText).Single();
        Assert.Contains("\"soak_seconds\": 3", stored, StringComparison.Ordinal);
        Assert.Contains("\"health_timeout_seconds\": 7", stored, StringComparison.Ordinal);
    }

    [Fact]
    public void An_orchestrator_without_a_sub_module_is_refused_naming_the_directory_to_install_it_in()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var t = rig.Tree(rig.Spec("v1", app, "services: {}\n", rig.Image("web:1.0")) with { Orchestrator = "nomad" });
        var r = rig.Install(t);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"pre-check failed for orchestrator \"nomad\": no executable sub-module {rig.SubModules}/nomad", r.Stderr);
        Assert.Empty(rig.Calls());
    }

    [Fact]
    public void A_payload_that_is_not_the_image_its_sums_name_is_refused_before_anything_changes()
    {
        using var rig = new ModuleRig();
        var app = Unique.Name("a");
        var real = rig.Image("web:1.0");
        var other = rig.Image("web:other");
        var lying = real with { SavedPath = other.SavedPath };
        var t = rig.Tree(rig.Spec("v1", app, "services: {}\n", lying));
        var r = rig.Install(t);
        Assert.Equal(4, r.ExitCode); // the artifact is invalid
        Assert.Contains($"the payload of web:1.0 is image {other.Id}, but sums-new.txt says {real.Id}", r.Stderr);
        Assert.Empty(rig.CallNames()); // refused from the payload alone, before any sub-module call
    }
}
