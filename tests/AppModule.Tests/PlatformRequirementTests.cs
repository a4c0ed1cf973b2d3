using AppModule.Core.Policy;
using SubModule.Hosting;

namespace AppModule.Tests;

/// <summary>The one REQS <c>platform</c> line every sub-module writes: met when the artifact's platform is the runner's, else what to install instead.</summary>
public sealed class PlatformRequirementTests
{
    [Fact]
    public void An_artifact_for_this_machine_meets_the_machine_requirement()
    {
        var machine = Platforms.Machine();
        var r = Requirement.PlatformOnMachine(machine);
        Assert.Equal(new Requirement("platform", true, "error", $"{machine} on a {machine} machine"), r);
    }

    [Fact]
    public void An_artifact_for_another_architecture_names_the_one_to_install()
    {
        var machine = Platforms.Machine();
        var other = machine.Contains("/s390x", StringComparison.Ordinal) ? "linux/ppc64le" : "linux/s390x";
        var r = Requirement.PlatformOnMachine(other);
        Assert.False(r.Met);
        Assert.Equal($"the artifact is for {other}, but this machine is {machine}: install the artifact built for {machine}", r.Detail);
    }

    [Theory]
    [InlineData("linux/amd64", "linux", "x86_64", true)]
    [InlineData("linux/arm/v7", "linux", "arm", true)]
    [InlineData("linux/arm64", "linux", "amd64", false)]
    public void An_engine_meets_the_platforms_of_the_os_and_architecture_it_reports(string platform, string os, string arch, bool met)
    {
        var r = Requirement.PlatformOnEngine(platform, os, arch, "unix:///run/docker.sock");
        Assert.Equal(("platform", met, "error"), (r.Name, r.Met, r.Severity));
        Assert.Equal(met
            ? $"{platform} on an engine for {os}/{arch}"
            : $"the artifact is for {platform}, but the engine at unix:///run/docker.sock runs {os}/{arch} containers: install the artifact built for {os}/{arch}", r.Detail);
    }
}
