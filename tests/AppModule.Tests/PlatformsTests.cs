using System.Runtime.InteropServices;
using AppModule.Core.Policy;

namespace AppModule.Tests;

/// <summary>The one answer to "what platform is this machine": Platforms.Of for each architecture .NET reports.</summary>
public sealed class PlatformsTests
{
    [Theory]
    [InlineData(Architecture.X64, "linux/amd64")]
    [InlineData(Architecture.Arm64, "linux/arm64")]
    [InlineData(Architecture.Arm, "linux/arm/v7")]
    [InlineData(Architecture.Armv6, "linux/arm/v6")]
    [InlineData(Architecture.X86, "linux/386")]
    [InlineData(Architecture.S390x, "linux/s390x")]
    [InlineData(Architecture.Ppc64le, "linux/ppc64le")]
    [InlineData(Architecture.RiscV64, "linux/riscv64")]
    [InlineData(Architecture.LoongArch64, "linux/loong64")]
    public void Each_architecture_is_named_as_oci_names_it(Architecture architecture, string expected) =>
        Assert.Equal(expected, Platforms.Of("linux", architecture));

    [Fact]
    public void This_machine_is_named_by_the_same_mapping() =>
        Assert.Equal(Platforms.Of("linux", RuntimeInformation.OSArchitecture), Platforms.Machine());

    [Theory]
    [InlineData("linux/arm/v7", "linux/arm", true)]
    [InlineData("linux/arm/v7", "linux/arm/v7", true)]
    [InlineData("linux/arm/v6", "linux/arm/v7", false)]
    [InlineData("linux/amd64", "linux/amd64", true)]
    [InlineData("linux/arm64", "linux/arm/v7", false)]
    public void A_machine_string_satisfies_the_platforms_of_its_architecture_and_variant(string machine, string platform, bool expected)
    {
        var parts = machine.Split('/');
        Assert.Equal(expected, Platforms.Matches(platform, parts[0], parts[1], parts.ElementAtOrDefault(2)));
    }
}
