using AppModule.Core.Compose;

namespace AppModule.Tests;

/// <summary>The one answer to "which compose files does Compose read here" (fleet agent, app-gen), checked against docker compose itself.</summary>
public sealed class ComposeFilesTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Writes each file with one service named after it (compose.override.yml: compose_override_yml).</summary>
    private void WriteEach(IEnumerable<string> names)
    {
        foreach (var n in names)
        {
            _dir.Write(n, $"services:\n  {Service(n)}:\n    image: busybox\n");
        }
    }

    private static string Service(string file) => file.Replace('.', '_').Replace('-', '_');

    [Fact]
    public void The_compose_file_is_the_first_present_in_compose_v2s_order_yaml_before_yml_then_docker_compose_yml_before_yaml()
    {
        Assert.Equal(["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"], ComposeFiles.Names);
        Assert.Equal(["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"], ComposeFiles.OverrideNames);
        Assert.Null(ComposeFiles.Find(_dir.Path));
        Assert.Empty(ComposeFiles.Merged(_dir.Path));
        WriteEach(ComposeFiles.Names);
        foreach (var expected in ComposeFiles.Names)
        {
            Assert.Equal(_dir.File(expected), ComposeFiles.Find(_dir.Path));
            File.Delete(_dir.File(expected));
        }
    }

    [Fact]
    public void An_override_file_is_merged_only_over_a_compose_file()
    {
        WriteEach(["docker-compose.override.yaml"]);
        Assert.Empty(ComposeFiles.Merged(_dir.Path));
        WriteEach(["compose.yaml"]);
        Assert.Equal([_dir.File("compose.yaml"), _dir.File("docker-compose.override.yaml")], ComposeFiles.Merged(_dir.Path));
    }

    [Fact]
    public void Docker_compose_v2_reads_the_same_files_as_each_is_removed_in_turn()
    {
        var docker = Tool.DockerComposeV2;
        WriteEach(ComposeFiles.Names.Concat(ComposeFiles.OverrideNames));
        for (var i = 0; i < ComposeFiles.Names.Count; i++)
        {
            var merged = ComposeFiles.Merged(_dir.Path);
            var r = Cmd.Run(docker, ["compose", "--project-directory", _dir.Path, "config", "--services"]);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal(merged.Select(f => Service(Path.GetFileName(f))).Order(StringComparer.Ordinal),
                r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
            File.Delete(merged[0]);
            File.Delete(merged[1]);
        }
    }
}
