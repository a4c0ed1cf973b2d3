using AppModule.Core.SubModules;

namespace Runtime.Tests;

public class SubModuleCallTests
{
    [Theory]
    [InlineData("LOAD myapp docker.io/a:2 /tmp/image.img docker.io/a:1")]
    [InlineData("SAVE myapp docker.io/a:1 /tmp/out.tar")]
    [InlineData("DELETE docker.io/a:1")]
    [InlineData("DELETE docker.io/a:1 myapp")]
    [InlineData("ROLLOUT myapp /data/m")]
    [InlineData("ROLLBACK myapp /data/last /data/failed")]
    [InlineData("STOP myapp /data/m")]
    [InlineData("START myapp /data/m")]
    [InlineData("ALIVE myapp")]
    [InlineData("HEALTHY myapp")]
    [InlineData("LS_COMPONENTS myapp")]
    [InlineData("EXPORT_MANIFEST myapp /tmp/out")]
    [InlineData("PURGE myapp")]
    [InlineData("REQS")]
    public void Every_reference_call_round_trips_through_argv(string line)
    {
        var argv = line.Split(' ');
        var call = SubModuleCall.Parse(argv);
        Assert.Equal(argv, call.ToArgs());
    }

    [Fact]
    public void A_full_image_load_without_current_url_uses_the_new_url()
    {
        var call = Assert.IsType<SubModuleCall.Load>(SubModuleCall.Parse(["LOAD", "app", "a:1", "/f"]));
        Assert.Equal("a:1", call.UrlCurrent);
    }

    [Theory]
    [InlineData("FROB app", "unknown call \"FROB\"")]
    [InlineData("ROLLOUT app", "ROLLOUT takes <application> <manifests-dir>; got 1 argument(s)")]
    [InlineData("", "no call given")]
    public void Wrong_argv_names_the_expected_form(string line, string expected)
    {
        var argv = line.Length == 0 ? Array.Empty<string>() : line.Split(' ');
        var e = Assert.Throws<SubModuleUsageException>(() => SubModuleCall.Parse(argv));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
