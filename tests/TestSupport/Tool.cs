namespace TestSupport;

/// <summary>
/// The external programs tests run, each found on PATH through <see cref="Requires.Program"/>: a missing one
/// skips the test with its name and how to install it, and fails it under <c>CI=true</c>, instead of
/// surfacing as a "file not found" from deep inside a test. build/deps.sh installs every one of them.
/// </summary>
public static class Tool
{
    private const string Deps = "(build/deps.sh does it)";

    /// <summary>mender-artifact, the reference artifact writer and reader.</summary>
    public static string MenderArtifact => Requires.Program("mender-artifact", "mender-artifact", $"`apt-get install mender-artifact` {Deps}");

    /// <summary>xdelta3, the reference VCDIFF encoder and decoder.</summary>
    public static string Xdelta3 => Requires.Program("xdelta3", "xdelta3", $"`apt-get install xdelta3` {Deps}");

    /// <summary>skopeo, which writes OCI layouts from the engine's images.</summary>
    public static string Skopeo => Requires.Program("skopeo", "skopeo", $"`apt-get install skopeo` {Deps}");

    /// <summary>openssl, which makes the signing keys.</summary>
    public static string Openssl => Requires.Program("openssl", "openssl", $"`apt-get install openssl` {Deps}");

    /// <summary>file, which names an executable's format and architecture.</summary>
    public static string File => Requires.Program("file", "file", $"`apt-get install file` {Deps}");

    /// <summary>lintian, the Debian package checker.</summary>
    public static string Lintian => Requires.Program("lintian", "lintian", $"`apt-get install lintian` {Deps}");

    /// <summary>gcc, which compiles the fault-injection shims.</summary>
    public static string Gcc => Requires.Program("gcc", "gcc", $"`apt-get install gcc libc6-dev` {Deps}");

    /// <summary>qemu-aarch64-static, which runs the linux-arm64 binaries here.</summary>
    public static string QemuAarch64 => Requires.Program("qemu-user-static", "qemu-aarch64-static", $"`apt-get install qemu-user-static` {Deps}");

    /// <summary>podman (Debian 12: 4.3) with catatonit, from which it builds the pause image of its pods; returns podman's path.</summary>
    public static string Podman
    {
        get
        {
            var podman = Requires.Program("podman", "podman", $"`apt-get install podman catatonit` {Deps}");
            Requires.Component("catatonit", System.IO.File.Exists("/usr/libexec/podman/catatonit") || Requires.Which("catatonit") is not null
                ? null
                : $"podman builds its pods' pause image from catatonit, which is not installed: `apt-get install podman catatonit` {Deps}");
            return podman;
        }
    }

    /// <summary>Compose v1 (Debian's <c>docker-compose</c> 1.29, the Python one); returns its path.</summary>
    public static string DockerComposeV1 => Requires.Program("Compose v1", "docker-compose", $"`apt-get install docker-compose` {Deps}");

    /// <summary>The docker CLI with the Compose v2 plugin (<c>docker compose</c>); returns the docker CLI's path.</summary>
    public static string DockerComposeV2
    {
        get
        {
            var docker = Requires.Program("docker CLI", "docker", $"`apt-get install docker.io` {Deps}");
            Requires.Component("Compose v2", Cmd.Run(docker, ["compose", "version"]).ExitCode == 0
                ? null
                : $"`{docker} compose version` fails: build/deps.sh installs Debian 13's docker-compose as the CLI plugin");
            return docker;
        }
    }
}
