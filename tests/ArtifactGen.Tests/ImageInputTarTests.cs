using System.Text;

namespace ArtifactGen.Tests;

/// <summary>
/// app-gen's image inputs follow the project's one tar entry type rule (TarEntryPolicy): an --image-file
/// whose tar holds an entry no saved image holds is refused as invalid input (exit 3), naming the file,
/// the entry and its type, and no artifact is written. The engine is not needed.
/// </summary>
public sealed class ImageInputTarTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData('S', "GNU sparse file")]
    [InlineData('3', "character device")]
    [InlineData('4', "block device")]
    [InlineData('6', "FIFO")]
    [InlineData('V', "GNU tape volume header")]
    [InlineData('Z', "entry of unknown type")]
    public void An_image_file_with_an_entry_no_saved_image_holds_is_invalid_input_naming_it(char flag, string words)
    {
        _dir.Write("m/docker-compose.yml", "services:\n  a:\n    image: offline/one:1\n");
        var image = _dir["one.tar"];
        File.WriteAllBytes(image, [.. Header("blobs/", '5'), .. Header("blobs/odd", flag), .. new byte[1024]]);
        var output = _dir["out.mender"];

        var r = Tools.Run(Tools.AppGen, ["-n", "tar-1", "-t", "d", "-a", "app", "-r", "docker-compose", "-p", "linux/amd64", "-m", _dir["m"], "-o", output,
            "--image-file", image], env: new Dictionary<string, string> { ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock" });

        Assert.True(r.ExitCode == 3, "invalid input (exit 3) expected: " + r);
        Assert.Contains($"{image}: entry \"blobs/odd\" is a {words} (tar type '{flag}')", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output), "no artifact may be written");
    }

    /// <summary>A ustar header for an empty entry of type <paramref name="flag"/>.</summary>
    private static byte[] Header(string name, char flag)
    {
        var h = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Encoding.ASCII.GetBytes("0000644\0").CopyTo(h, 100);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 108);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 116);
        Encoding.ASCII.GetBytes("00000000000\0").CopyTo(h, 124);
        Encoding.ASCII.GetBytes("00000000000\0").CopyTo(h, 136);
        h[156] = (byte)flag;
        Encoding.ASCII.GetBytes("ustar\0" + "00").CopyTo(h, 257);
        h.AsSpan(148, 8).Fill((byte)' ');
        var sum = h.Sum(b => (int)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
        return h;
    }
}
