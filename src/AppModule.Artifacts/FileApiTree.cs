using System.Text;

namespace AppModule.Artifacts;

/// <summary>What the device contributes to the File API tree (spec section 3).</summary>
public sealed record DeviceState(string CurrentArtifactName, string CurrentArtifactGroup, string CurrentDeviceType);

/// <summary>
/// Produces the File API tree that the Mender client 3.4 hands to an Update Module (when the
/// module does not stream in Download): <c>version</c>, <c>current_*</c>, <c>header/*</c> with the
/// JSON re-serialized like the Go client (2-space indent; header-info and type-info in struct
/// order; meta-data keys sorted, float64 numbers, the 4 bytes <c>null</c> when absent), an empty
/// <c>tmp/</c> and <c>files/&lt;name&gt;</c>. Text files have no trailing newline; files are 0600,
/// directories 0700.
/// </summary>
public static class FileApiTree
{
    /// <summary>header/header-info as the client writes it.</summary>
    public static string ClientHeaderInfo(ArtifactHeader h) => GoJson.Serialize(h.HeaderInfo.ToJson(), sortKeys: false, indent: true);

    /// <summary>header/type-info as the client writes it.</summary>
    public static string ClientTypeInfo(ArtifactHeader h) => GoJson.Serialize(h.TypeInfo.ToJson(), sortKeys: false, indent: true);

    /// <summary>header/meta-data as the client writes it (<c>null</c> when absent).</summary>
    public static string ClientMetaData(ArtifactHeader h)
    {
        if (h.MetaDataJson is null) return "null";
        try
        {
            return GoJson.Serialize(JsonValue.Parse(h.MetaDataJson), sortKeys: true, indent: true);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ArtifactFormatException($"header/meta-data is not valid JSON ({AppModule.Core.RuntimeMessages.For(e)}): regenerate the artifact with app-gen");
        }
    }

    /// <summary>Reads <paramref name="artifactPath"/> (checksums and, with a verifier, the signature
    /// verified) and writes the tree into <paramref name="treeDir"/>, which must not exist or be empty.
    /// On any error the partly written tree is removed.</summary>
    public static async Task<ArtifactContents> WriteAsync(string artifactPath, string treeDir, DeviceState device,
        ArtifactReadOptions options, CancellationToken ct)
    {
        if (Directory.Exists(treeDir) && Directory.EnumerateFileSystemEntries(treeDir).Any())
            throw new ArtifactException($"tree directory {treeDir} is not empty: give a new or empty directory");
        bool created = !Directory.Exists(treeDir);
        try
        {
            MakeDir(treeDir);
            var files = Path.Combine(treeDir, "files");
            var contents = await ArtifactReader.ReadFileAsync(artifactPath, options, async (name, size, content, token) =>
            {
                MakeDir(files);
                var path = Path.Combine(files, name);
                await using var fs = Unix.CreateFile(path, UnixFileMode.UserRead | UnixFileMode.UserWrite, async: true);
                await content.CopyToAsync(fs, token).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);

            var h = contents.Header;
            Text(treeDir, "version", "3");
            Text(treeDir, "current_artifact_name", device.CurrentArtifactName);
            Text(treeDir, "current_artifact_group", device.CurrentArtifactGroup);
            Text(treeDir, "current_device_type", device.CurrentDeviceType);
            var header = Path.Combine(treeDir, "header");
            MakeDir(header);
            Text(header, "artifact_name", h.HeaderInfo.ArtifactName);
            Text(header, "artifact_group", h.HeaderInfo.ArtifactGroup ?? "");
            Text(header, "payload_type", h.TypeInfo.Type ?? "");
            Text(header, "header-info", ClientHeaderInfo(h));
            Text(header, "type-info", ClientTypeInfo(h));
            Text(header, "meta-data", ClientMetaData(h));
            MakeDir(Path.Combine(treeDir, "tmp"));
            return contents;
        }
        catch
        {
            try
            {
                if (created) Directory.Delete(treeDir, recursive: true);
                else foreach (var entry in Directory.EnumerateFileSystemEntries(treeDir))
                {
                    if (Directory.Exists(entry)) Directory.Delete(entry, true); else File.Delete(entry);
                }
            }
            catch (IOException) { }
            throw;
        }
    }

    private static void MakeDir(string path)
    {
        if (!Directory.Exists(path)) Unix.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static void Text(string dir, string name, string content)
    {
        var path = Path.Combine(dir, name);
        using var fs = Unix.CreateFile(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        fs.Write(Encoding.UTF8.GetBytes(content));
    }
}
