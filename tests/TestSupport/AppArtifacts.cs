using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TestSupport;

/// <summary>An image as it goes into an app artifact: a saved image file (docker save) and its reference and ID.</summary>
/// <param name="UrlCurrent">for a delta: the base reference (null: a full image)</param>
public sealed record AppImage(string UrlNew, string SavedPath, string Id, string? UrlCurrent = null, string? IdCurrent = null, bool DeepDelta = false);

/// <summary>What an app artifact holds. <paramref name="MetaDataJson"/> replaces the generated meta-data (bad meta-data tests);
/// <paramref name="PlainTar"/> writes images.tar and manifests.tar instead of the .tar.gz files; <paramref name="ExtraMetaData"/>
/// adds members to the generated meta-data (e.g. <c>"soak_seconds":30</c>).</summary>
public sealed record AppArtifactSpec(
    string ArtifactName,
    string Application,
    IReadOnlyList<AppImage> Images,
    IReadOnlyDictionary<string, string> Manifests,
    string Orchestrator = "docker-compose",
    string Platform = "linux/amd64",
    IReadOnlyDictionary<string, string>? Env = null,
    string? MetaDataJson = null,
    string DeviceType = "test-device",
    bool PlainTar = false,
    string? ExtraMetaData = null);

/// <summary>
/// Writes app artifacts for tests the way the reference generator lays them out (files/images.tar.gz
/// with images/&lt;id&gt;/{image.img,url-new.txt,url-current.txt,sums-new.txt,sums-current.txt},
/// files/manifests.tar.gz with manifests/..., meta-data), either as a .mender file made by the real
/// mender-artifact, or directly as the File API tree the client would hand over.
/// </summary>
public static class AppArtifacts
{
    public static string MetaData(AppArtifactSpec s)
    {
        if (s.MetaDataJson is not null)
        {
            return s.MetaDataJson;
        }

        var ids = s.Images.SelectMany(i => new[] { i.Id, i.IdCurrent ?? i.Id }).Distinct().Order(StringComparer.Ordinal).ToArray();
        var sb = new StringBuilder("{");
        sb.Append($"\"application_name\":{J(s.Application)},\"images\":[{string.Join(',', ids.Select(J))}],\"orchestrator\":{J(s.Orchestrator)},\"platform\":{J(s.Platform)},\"version\":\"1.0\"");
        if (s.Env is { Count: > 0 })
        {
            sb.Append(",\"env\":{").Append(string.Join(',', s.Env.Select(kv => $"{J(kv.Key)}:{J(kv.Value)}"))).Append('}');
        }

        if (s.ExtraMetaData is { Length: > 0 } extra)
        {
            sb.Append(',').Append(extra);
        }

        return sb.Append('}').ToString();
    }

    private static string J(string s) => JsonSerializer.Serialize(s);

    /// <summary>Writes images.tar.gz and manifests.tar.gz into <paramref name="dir"/>.</summary>
    public static (string Images, string Manifests) WritePayload(AppArtifactSpec s, string dir)
    {
        Directory.CreateDirectory(dir);
        var ext = s.PlainTar ? ".tar" : ".tar.gz";
        Stream Wrap(Stream fs) => s.PlainTar ? fs : new GZipStream(fs, CompressionLevel.Fastest);
        var images = Path.Combine(dir, "images" + ext);
        using (var fs = File.Create(images))
        using (var gz = Wrap(fs))
        using (var tar = new TarWriter(gz, TarEntryFormat.Gnu))
        {
            foreach (var i in s.Images)
            {
                var d = $"images/{i.Id}/";
                Text(tar, d + "url-new.txt", i.UrlNew + "\n");
                Text(tar, d + "url-current.txt", (i.UrlCurrent ?? i.UrlNew) + "\n");
                Text(tar, d + "sums-new.txt", i.Id + "\n");
                Text(tar, d + "sums-current.txt", (i.IdCurrent ?? i.Id) + "\n");
                if (i.DeepDelta)
                {
                    Text(tar, d + "deep_delta", string.Empty);
                }

                tar.WriteEntry(i.SavedPath, d + "image.img");
            }
        }

        var manifests = Path.Combine(dir, "manifests" + ext);
        using (var fs = File.Create(manifests))
        using (var gz = Wrap(fs))
        using (var tar = new TarWriter(gz, TarEntryFormat.Gnu))
        {
            foreach (var (name, content) in s.Manifests)
            {
                Text(tar, "manifests/" + name, content);
            }
        }

        return (images, manifests);
    }

    private static void Text(TarWriter tar, string name, string content)
    {
        var e = new GnuTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)), Mode = (UnixFileMode)0b110_100_100 };
        tar.WriteEntry(e);
    }

    /// <summary>Makes a .mender with the real mender-artifact (module-image, type app, software name = application).</summary>
    public static string WriteMender(AppArtifactSpec s, string dir)
    {
        var work = Path.Combine(dir, s.ArtifactName + ".work");
        var (images, manifests) = WritePayload(s, work);
        var meta = Path.Combine(work, "meta.json");
        File.WriteAllText(meta, MetaData(s));
        var output = Path.Combine(dir, s.ArtifactName + ".mender");
        Cmd.Ok(Tool.MenderArtifact, "write", "module-image", "-T", "app", "-n", s.ArtifactName, "-t", s.DeviceType,
            "-f", images, "-f", manifests, "--meta-data", meta, "--software-name", s.Application, "--compression", "none", "-o", output);
        return output;
    }

    /// <summary>Writes the File API tree the Mender client 3.4 would hand to the module for <paramref name="s"/> (files/ variant).</summary>
    public static string WriteTree(AppArtifactSpec s, string treeDir, string currentArtifact = "initial")
    {
        Directory.CreateDirectory(Path.Combine(treeDir, "header"));
        Directory.CreateDirectory(Path.Combine(treeDir, "tmp"));
        WritePayload(s, Path.Combine(treeDir, "files"));
        File.WriteAllText(Path.Combine(treeDir, "version"), "3");
        File.WriteAllText(Path.Combine(treeDir, "current_artifact_name"), currentArtifact);
        File.WriteAllText(Path.Combine(treeDir, "current_artifact_group"), string.Empty);
        File.WriteAllText(Path.Combine(treeDir, "current_device_type"), s.DeviceType);
        File.WriteAllText(Path.Combine(treeDir, "header", "artifact_name"), s.ArtifactName);
        File.WriteAllText(Path.Combine(treeDir, "header", "artifact_group"), string.Empty);
        File.WriteAllText(Path.Combine(treeDir, "header", "payload_type"), "app");
        File.WriteAllText(Path.Combine(treeDir, "header", "header-info"),
            $"{{\n  \"payloads\": [\n    {{\n      \"type\": \"app\"\n    }}\n  ],\n  \"artifact_provides\": {{\n    \"artifact_name\": {J(s.ArtifactName)}\n  }},\n  \"artifact_depends\": {{\n    \"device_type\": [\n      {J(s.DeviceType)}\n    ]\n  }}\n}}");
        File.WriteAllText(Path.Combine(treeDir, "header", "type-info"), "{\n  \"type\": \"app\"\n}");
        File.WriteAllText(Path.Combine(treeDir, "header", "meta-data"), MetaData(s));
        return treeDir;
    }

    /// <summary>
    /// A tiny synthetic "saved image" (docker-archive layout: manifest.json naming a config blob, one
    /// layer, whose sha256 the config lists as its diff ID) whose image ID is the sha256 of its config. Enough for sub-modules that do not talk to an engine.
    /// </summary>
    public static (string Path, string Id) SyntheticImage(string dir, string reference, string payload = "", string platform = "linux/amd64")
    {
        Directory.CreateDirectory(dir);
        var p = platform.Split('/');
        var variant = p.Length > 2 ? $",\"variant\":{J(p[2])}" : string.Empty;
        var layer = Encoding.UTF8.GetBytes(new string('x', 1000) + reference + payload);
        var diffId = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(layer));
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":{J(p[1])},\"os\":{J(p[0])}{variant},\"config\":{{\"Labels\":{{\"ref\":{J(reference)},\"payload\":{J(payload)}}}}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{J(diffId)}]}}}}");
        var id = Convert.ToHexStringLower(SHA256.HashData(config));
        var path = Path.Combine(dir, $"{id[..12]}.tar");
        using (var fs = File.Create(path))
        using (var tar = new TarWriter(fs, TarEntryFormat.Ustar))
        {
            void Add(string name, byte[] data) => tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            Add(id + ".json", config);
            Add("layer0/layer.tar", layer);
            Add("manifest.json", Encoding.UTF8.GetBytes($"[{{\"Config\":\"{id}.json\",\"RepoTags\":[{J(reference)}],\"Layers\":[\"layer0/layer.tar\"]}}]"));
        }

        return (path, id);
    }

    /// <summary>`docker save`s a real image into <paramref name="dir"/> under a unique tag; returns the file, the tag and the ID (hex).</summary>
    public static AppImage SaveDockerImage(string source, string uniqueReference, string dir)
    {
        Directory.CreateDirectory(dir);
        DockerEngine.DockerOk("tag", source, uniqueReference);
        var path = Path.Combine(dir, Uri.EscapeDataString(uniqueReference) + ".tar");
        DockerEngine.DockerOk("save", "-o", path, uniqueReference);
        var id = DockerEngine.ImageId(uniqueReference)!.Replace("sha256:", string.Empty, StringComparison.Ordinal);
        return new AppImage(uniqueReference, path, id);
    }
}
