using System.Runtime.InteropServices;

namespace AppModule.Core.Policy;

/// <summary>Platforms as OCI names them (<c>os/architecture[/variant]</c>), compared the one way the project compares them.</summary>
public static class Platforms
{
    /// <summary>
    /// Whether <paramref name="os"/>/<paramref name="architecture"/>/<paramref name="variant"/> (as an image
    /// config, an engine or the machine reports them) satisfies <paramref name="platform"/> (os/arch[/variant]).
    /// Architecture aliases (x86_64, aarch64, ...) are normalized; a variant counts only when both sides name one.
    /// </summary>
    public static bool Matches(string platform, string os, string architecture, string? variant)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(os);
        ArgumentNullException.ThrowIfNull(architecture);
        var parts = platform.Split('/');
        if (parts.Length < 2)
        {
            return false;
        }

        if (!string.Equals(parts[0], os, StringComparison.OrdinalIgnoreCase) || NormalizeArch(parts[1]) != NormalizeArch(architecture))
        {
            return false;
        }

        return parts.Length < 3 || string.IsNullOrEmpty(variant) || string.Equals(parts[2], variant, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The OCI name of an architecture (x86_64 → amd64, aarch64 → arm64, armv7l → arm, i686 → 386, loongarch64 → loong64).</summary>
    public static string NormalizeArch(string arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        return arch.ToLowerInvariant() switch
        {
            "x86_64" or "x86-64" or "x64" => "amd64",
            "aarch64" or "arm64" => "arm64",
            "armhf" or "armel" or "armv7l" or "armv7" or "armv6l" or "arm" => "arm",
            "i386" or "i686" or "x86" => "386",
            "loongarch64" => "loong64",
            var a => a,
        };
    }

    /// <summary>
    /// This machine's platform as OCI names it (linux/amd64, linux/arm64, linux/arm/v7, ...): the one answer for
    /// the device's platform (REQS, the images containerd picks from an index, the images the fleet agent pulls).
    /// </summary>
    public static string Machine() =>
        Of(OperatingSystem.IsLinux() ? "linux" : Environment.OSVersion.Platform.ToString().ToLowerInvariant(), RuntimeInformation.OSArchitecture);

    /// <summary>
    /// The OCI platform of an operating system and a processor architecture as .NET reports it. 32-bit Arm
    /// carries its variant as images do: .NET's <see cref="Architecture.Arm"/> runs on ARMv7 or later
    /// (linux/arm/v7), <see cref="Architecture.Armv6"/> is linux/arm/v6; the others are named by <see cref="NormalizeArch"/>.
    /// </summary>
    public static string Of(string os, Architecture architecture)
    {
        ArgumentNullException.ThrowIfNull(os);
        return architecture switch
        {
            Architecture.Arm => $"{os}/arm/v7",
            Architecture.Armv6 => $"{os}/arm/v6",
            var a => $"{os}/{NormalizeArch(a.ToString())}",
        };
    }
}
