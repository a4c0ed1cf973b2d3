using System.Collections;
using AppModule.Runtime;
using Fleet.Core.Agent;
using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Registry;
using TestSupport;

namespace Fleet.Tests;

public sealed class ConfigAndComposeTests
{
    [SkippableFact]
    public void The_updater_reads_TOML_and_the_seeds_environment_variables_win()
    {
        using var tmp = new TempDir("fleet-cfg");
        var path = tmp.Write("updater.toml", """
            # fleet updater
            [redis]
            host = "10.0.0.5"
            port = 6380
            user = "fleet"
            password = "pw"
            [registry]
            namespace = "mycompany"
            plain_http = ["registry.lan:5000"]
            [registry.credentials."registry.lan:5000"]
            username = "ci"
            password = "token"
            [updater]
            rpc_timeout_seconds = 3
            [apps.app1]
            directory = "/opt/app1"
            target = "~2.1"
            [apps.web]
            directory = "/srv/web"
            target = "1.0"
            rpc = "docker_compose_service_edge7"
            image = "registry.lan:5000/team/web"
            """);
        var env = new Hashtable { ["REDIS_HOST"] = "redis.internal", ["APPS_TO_UPDATE"] = """{"app1":"2.1.0","app2":"1.5.3"}""", ["DOCKER_HUB_USERNAME"] = "hubuser", ["DOCKER_HUB_TOKEN"] = "dckr_pat" };
        var c = UpdaterConfig.Load(path, env);
        Assert.Equal(new RedisOptions { Host = "redis.internal", Port = 6380, User = "fleet", Password = "pw" }, c.Redis);
        Assert.Equal(TimeSpan.FromSeconds(3), c.RpcTimeout);
        Assert.Equal("2.1.0", c.Apps["app1"].Target!.Text);
        Assert.Equal("docker_compose_service_machine1", c.Apps["app1"].Rpc);
        Assert.Equal(ImageReference.Parse("mycompany/app1"), c.Apps["app1"].Image);
        Assert.Null(c.Apps["app2"].Directory);
        Assert.Equal("docker_compose_service_edge7", c.Apps["web"].Rpc);
        Assert.Equal(new ImageReference("registry.lan:5000", "team/web"), c.Apps["web"].Image);
        Assert.Equal(new RegistryCredentials("ci", "token"), c.Registry.Credentials["registry.lan:5000"]);
        Assert.Equal(new RegistryCredentials("hubuser", "dckr_pat"), c.Registry.Credentials["docker.io"]);
        Assert.Contains("registry.lan:5000", c.Registry.PlainHttp);
    }

    [SkippableTheory]
    [InlineData("APPS_TO_UPDATE", "{app1:2}", "not valid JSON")]
    [InlineData("APPS_TO_UPDATE", """{"app1":2}""", "must be a string")]
    [InlineData("APPS_TO_UPDATE", """{"app1":">=x"}""", "target of app 'app1'")]
    [InlineData("APPS_TO_UPDATE", """{"web":"1.0"}""", "no RPC service configured")]
    [InlineData("REDIS_PORT", "sixty", "REDIS_PORT")]
    public void Bad_configuration_names_the_variable_and_the_fix(string variable, string value, string expected) =>
        Assert.Contains(expected, Assert.Throws<ConfigException>(() => UpdaterConfig.Load(null, new Hashtable { [variable] = value })).Message);

    private const string Compose = """
        # top comment
        version: "3.8"
        x-common: &common
          restart: unless-stopped
        services:
          db:
            image: 'postgres:15'   # db
            <<: *common
          web:
            # the app
            image: registry.lan:5000/team/web:1.2.3
            ports: ["8080:8080"]
          worker:
            image: "registry.lan:5000/team/worker@sha256:0123"
        """;

    [SkippableTheory]
    [InlineData("web", "1.2.4", "    image: registry.lan:5000/team/web:1.2.4\n")]
    [InlineData("db", "16", "    image: 'postgres:16'   # db\n")]
    [InlineData("worker", "2.0", "    image: \"registry.lan:5000/team/worker:2.0\"\n")]
    public void A_tag_edit_changes_only_that_image_and_keeps_comments_quotes_and_anchors(string service, string tag, string line)
    {
        var img = ComposeFile.FindImage(Compose, service);
        var edited = ComposeFile.WithTag(Compose, img, tag);
        var before = Compose.Split('\n');
        var after = edited.Split('\n');
        Assert.Equal(before.Length, after.Length);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.Equal(line.TrimEnd('\n'), after[Assert.Single(changed)]);
        Assert.Equal(tag, ComposeFile.FindImage(edited, service).Tag);
    }

    [SkippableFact]
    public void A_tag_edit_with_a_digest_pins_the_image_and_the_tag_stays_the_reported_version()
    {
        var digest = "sha256:" + new string('c', 64);
        var edited = ComposeFile.WithTag(Compose, ComposeFile.FindImage(Compose, "web"), "1.2.4", digest);
        Assert.Contains("    image: registry.lan:5000/team/web:1.2.4@" + digest + "\n", edited);
        Assert.Equal("1.2.4", ComposeFile.FindImage(edited, "web").Tag);
        // a later edit without a digest drops it (it belonged to the old tag)
        Assert.Contains("    image: registry.lan:5000/team/web:1.2.5\n", ComposeFile.WithTag(edited, ComposeFile.FindImage(edited, "web"), "1.2.5"));
        Assert.True(ComposeFile.IsValidDigest(digest));
        Assert.False(ComposeFile.IsValidDigest("sha256:" + new string('C', 64)));
        Assert.False(ComposeFile.IsValidDigest("sha256:0123"));
    }

    [SkippableFact]
    public void A_groups_platform_applies_to_its_members_an_apps_own_wins_and_a_conflict_or_a_bad_platform_is_refused()
    {
        using var tmp = new TempDir("fleet-cfg-platform");
        string Conf(string extra) => tmp.Write("updater.toml", $$"""
            [apps.a1]
            rpc = "r1"
            [apps.a2]
            rpc = "r2"
            platform = "linux/arm/v7"
            [apps.a3]
            rpc = "r3"
            [groups.edge]
            members = ["a1", "a2"]
            platform = "linux/aarch64"
            {{extra}}
            """);
        var c = UpdaterConfig.Load(Conf(""), new Hashtable());
        Assert.Equal("linux/arm64", c.Apps["a1"].Platform);
        Assert.Equal("linux/arm/v7", c.Apps["a2"].Platform);
        Assert.Null(c.Apps["a3"].Platform);
        Assert.Equal("linux/amd64", UpdaterConfig.Load(Conf(""), new Hashtable { ["APP_TO_PLATFORM"] = """{"a3":"linux/x86_64"}""" }).Apps["a3"].Platform);
        var conflict = Assert.Throws<ConfigException>(() => UpdaterConfig.Load(Conf("[groups.pcs]\nmembers = [\"a1\"]\nplatform = \"linux/amd64\""), new Hashtable())).Message;
        Assert.Contains("app 'a1' is in group 'edge' (platform linux/arm64) and in group 'pcs' (platform linux/amd64)", conflict);
        Assert.Contains("[apps.a1] platform", conflict);
        var bad = Assert.Throws<ConfigException>(() => UpdaterConfig.Load(Conf(""), new Hashtable { ["APP_TO_PLATFORM"] = """{"a3":"arm64"}""" })).Message;
        Assert.Contains("'arm64' is not a platform; write os/architecture[/variant]", bad);
    }

    [SkippableFact]
    public void Ambiguous_or_broken_compose_files_are_refused_with_what_to_do()
    {
        Assert.Contains("configure which one", Assert.Throws<ComposeFileException>(() => ComposeFile.FindImage(Compose, null)).Message);
        Assert.Contains("services with images: db, web, worker", Assert.Throws<ComposeFileException>(() => ComposeFile.FindImage(Compose, "cache")).Message);
        Assert.Contains("not valid YAML at line", Assert.Throws<ComposeFileException>(() => ComposeFile.FindImage("services:\n  web: [unclosed\n", null)).Message);
        Assert.Equal("latest", ComposeFile.FindImage("services:\n  a:\n    image: busybox\n", null).Tag);
        Assert.False(ComposeFile.IsValidTag("../etc"));
        Assert.False(ComposeFile.IsValidTag("1.0 ; rm"));
        Assert.True(ComposeFile.IsValidTag("v2.1.0-rc_1"));
    }
}

/// <summary>Redis ACL users and AUTH on a real redis-server.</summary>
public sealed class RedisAuthTests
{
    [SkippableFact]
    public async Task An_ACL_user_connects_and_wrong_credentials_fail_with_advice()
    {
        using var redis = RedisServer.Start("--user", "default", "off", "--user", "fleet", "on", ">s3cret", "~*", "&*", "+@all");
        var ct = new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;
        await using (var bus = await RedisFleetBus.ConnectAsync(new RedisOptions { Host = redis.Host, Port = redis.Port, User = "fleet", Password = "s3cret" }, ct))
        {
            await bus.ListPushAsync("k", [1], ct);
            Assert.Equal(1, await bus.ListLengthAsync("k", ct));
        }
        var e = await Assert.ThrowsAsync<FleetBusException>(() => RedisFleetBus.ConnectAsync(
            new RedisOptions { Host = redis.Host, Port = redis.Port, User = "fleet", Password = "wrong", ConnectTimeout = TimeSpan.FromSeconds(2) }, ct));
        Assert.Contains("credentials", e.Message);
    }
}
