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

    /// <summary>The OCI name of an architecture (x86_64 → amd64, aarch64 → arm64, armv7l → arm, i686 → 386).</summary>
    public static string NormalizeArch(string arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        return arch.ToLowerInvariant() switch
        {
            "x86_64" or "x86-64" or "x64" => "amd64",
            "aarch64" or "arm64" => "arm64",
            "armhf" or "armel" or "armv7l" or "armv7" or "armv6l" or "arm" => "arm",
            "i386" or "i686" or "x86" => "386",
            var a => a,
        };
    }

    /// <summary>This machine's platform (linux/amd64, linux/arm64, linux/arm, ...).</summary>
    public static string Machine() =>
        $"{(OperatingSystem.IsLinux() ? "linux" : Environment.OSVersion.Platform.ToString().ToLowerInvariant())}/{NormalizeArch(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString())}";
}
