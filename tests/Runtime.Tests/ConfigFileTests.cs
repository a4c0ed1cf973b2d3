using AppModule.Runtime;

namespace Runtime.Tests;

public class ConfigFileTests
{
    [Fact]
    public void Toml_values_are_read_and_tables_flatten_to_dotted_keys()
    {
        var c = ConfigFile.Parse("""
            # comment
            persistent_store = "/data/mender-app"
            health_timeout_seconds = 30
            purge_volumes = true
            [compose]
            command = "docker compose"
            """, "test.conf");
        Assert.Equal("/data/mender-app", c.GetString("persistent_store"));
        Assert.Equal(30, c.GetInt("health_timeout_seconds", 120));
        Assert.True(c.GetBool("purge_volumes", false));
        Assert.Equal("docker compose", c.GetString("compose.command"));
    }

    [Fact]
    public void Named_tables_are_read_per_key_and_a_key_they_do_not_take_is_named_with_the_ones_they_do()
    {
        var c = ConfigFile.Parse("""
            [apps.web]
            directory = "/srv/web"
            service = "web"
            [apps."my.app"]
            directory = "/srv/my"
            """, "agent.toml");
        var apps = c.Tables("apps", "directory", "service");
        Assert.Equal(new Dictionary<string, string> { ["web"] = "/srv/web", ["my.app"] = "/srv/my" }, apps["directory"]);
        Assert.Equal(new Dictionary<string, string> { ["web"] = "web" }, apps["service"]);

        var e = Assert.Throws<ConfigException>(() => ConfigFile.Parse("[apps.web]\ndirectroy = \"/srv\"\n", "agent.toml").Tables("apps", "directory", "service"));
        Assert.Equal("agent.toml: unknown key 'apps.web.directroy'; a [apps.NAME] table takes directory, service", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigFile.Parse("apps.directory = \"/srv\"\n", "agent.toml").Tables("apps", "directory"));
        Assert.Contains("is not in a [apps.NAME] table", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reference_shell_style_lines_are_accepted()
    {
        var c = ConfigFile.Parse("""
            persistent_store=/data/mender-app
            export DOCKER_COMPOSE_COMMAND="docker compose"
            XDELTA_COMMAND='xdelta3' 
            """, "ref.conf");
        Assert.Equal("/data/mender-app", c.GetString("PERSISTENT_STORE"));
        Assert.Equal("docker compose", c.GetString("docker_compose_command"));
        Assert.Equal("xdelta3", c.GetString("XDELTA_COMMAND"));
    }

    [Fact]
    public void A_missing_file_is_an_empty_config()
    {
        var c = ConfigFile.Load("/nonexistent/appmodule.conf");
        Assert.Empty(c.Values);
        Assert.Equal(7, c.GetInt("x", 7));
    }

    [Fact]
    public void Invalid_toml_names_the_file_and_how_to_fix_it()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigFile.Parse("a = \"unterminated\nb = 2\n", "/etc/mender/mender-app.conf"));
        Assert.Contains("/etc/mender/mender-app.conf", e.Message, StringComparison.Ordinal);
        Assert.Contains("not valid TOML", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_number_out_of_range_names_key_and_range()
    {
        var c = ConfigFile.Parse("health_timeout_seconds = -5\n", "x.conf");
        var e = Assert.Throws<ConfigException>(() => c.GetInt("health_timeout_seconds", 120, 0, 3600));
        Assert.Contains("health_timeout_seconds", e.Message, StringComparison.Ordinal);
        Assert.Contains("between 0 and 3600", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_shell_line_without_equals_is_rejected_with_its_line_number()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigFile.Parse("A=/data/x\nthis is not config\n", "x.conf"));
        Assert.Contains("x.conf:2", e.Message, StringComparison.Ordinal);
    }
}
