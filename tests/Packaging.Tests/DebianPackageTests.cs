namespace Packaging.Tests;

/// <summary>The .deb packages built from the published linux-x64 binaries.</summary>
public sealed class DebianPackageTests : IClassFixture<DebianPackageTests.Packages>
{
    private readonly Packages _packages;

    public DebianPackageTests(Packages packages) => _packages = packages;

    /// <summary>Builds the packages once for the class.</summary>
    public sealed class Packages : IDisposable
    {
        private readonly TempDir _dir = new("debs");

        public Packages()
        {
            var r = Cmd.Run(Repo.Script("packaging/build-debs.sh"), ["linux-x64", _dir.Path], timeout: TimeSpan.FromMinutes(5));
            Build = r;
            Files = r.ExitCode == 0 ? r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries) : [];
        }

        public CmdResult Build { get; }

        public IReadOnlyList<string> Files { get; }

        public string Deb(string name) => Files.Single(f => Path.GetFileName(f).StartsWith(name + "_", StringComparison.Ordinal));

        public void Dispose() => _dir.Dispose();
    }

    [Fact]
    public void Four_packages_are_built()
    {
        Assert.True(_packages.Build.ExitCode == 0, _packages.Build.ToString());
        Assert.Equal(
            ["appmodule-fleet-agent", "appmodule-fleet-updater", "mender-app-gen", "mender-app-modules"],
            _packages.Files.Select(f => Path.GetFileName(f).Split('_')[0]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Lintian_reports_no_errors()
    {
        var r = Cmd.Run(Tool.Lintian, new[] { "--tag-display-limit", "0" }.Concat(_packages.Files), timeout: TimeSpan.FromMinutes(5));
        var errors = r.Stdout.Split('\n').Where(l => l.StartsWith("E: ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [Fact]
    public void The_device_package_puts_every_file_where_the_Mender_client_looks_and_marks_configs_as_conffiles()
    {
        var deb = _packages.Deb("mender-app-modules");
        var listing = Cmd.Ok("dpkg-deb", "-c", deb);
        foreach (var path in new[] { "./usr/share/mender/modules/v3/app", "./usr/share/mender/app-modules/v1/docker-compose", "./usr/share/mender/app-modules/v1/k8s", "./usr/share/mender/app-modules/v1/podman" })
        {
            Assert.Matches(@"-rwxr-xr-x root/root .* " + System.Text.RegularExpressions.Regex.Escape(path) + "\n", listing);
        }

        var conffiles = Cmd.Ok("dpkg-deb", "-f", deb, "Package") + Cmd.Ok("sh", "-c", $"dpkg-deb --ctrl-tarfile {deb} | tar -xO ./conffiles");
        Assert.Contains("/etc/mender/mender-app.conf", conffiles, StringComparison.Ordinal);
        Assert.Contains("/etc/mender/mender-app-docker-compose.conf", conffiles, StringComparison.Ordinal);
        Assert.Contains("/etc/mender/mender-app-k8s.conf", conffiles, StringComparison.Ordinal);
        Assert.Contains("/etc/mender/mender-app-podman.conf", conffiles, StringComparison.Ordinal);
        Assert.Contains("libssl3", Cmd.Ok("dpkg-deb", "-f", deb, "Depends"), StringComparison.Ordinal);
    }

    [Fact]
    public void The_fleet_agent_package_depends_on_the_device_package_whose_engine_it_installs_through()
    {
        var depends = Cmd.Ok("dpkg-deb", "-f", _packages.Deb("appmodule-fleet-agent"), "Depends");
        var version = Cmd.Ok("dpkg-deb", "-f", _packages.Deb("mender-app-modules"), "Version").Trim();
        Assert.Contains($"mender-app-modules (= {version})", depends, StringComparison.Ordinal);
    }

    [Fact]
    public void Installing_into_a_root_then_upgrading_keeps_a_locally_edited_config()
    {
        using var root = new TempDir("dpkg-root");
        var admin = root.Dir("var/lib/dpkg");
        Directory.CreateDirectory(Path.Combine(admin, "info"));
        Directory.CreateDirectory(Path.Combine(admin, "updates"));
        File.WriteAllText(Path.Combine(admin, "status"), string.Empty);
        var deb = _packages.Deb("mender-app-gen");
        var install = Cmd.Run("dpkg", ["--root", root.Path, "--force-depends", "--force-not-root", "--log=/dev/null", "-i", deb]);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.True(File.Exists(Path.Combine(root.Path, "usr/bin/app-gen")));

        var modules = _packages.Deb("mender-app-modules");
        Assert.Equal(0, Cmd.Run("dpkg", ["--root", root.Path, "--force-depends", "--log=/dev/null", "-i", modules]).ExitCode);
        var conf = Path.Combine(root.Path, "etc/mender/mender-app.conf");
        File.AppendAllText(conf, "\n# local edit\nsoak_seconds = 5\n");
        var again = Cmd.Run("dpkg", ["--root", root.Path, "--force-depends", "--force-confold", "--log=/dev/null", "-i", modules]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("# local edit", File.ReadAllText(conf), StringComparison.Ordinal);
    }
}
