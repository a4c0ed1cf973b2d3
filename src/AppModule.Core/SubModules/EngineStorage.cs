using System.Text.Json;
using System.Text.Json.Serialization;

namespace AppModule.Core.SubModules;

/// <summary>
/// The answer of a sub-module's <c>STORAGE</c> call: where the engine keeps its data and what it already
/// holds, so that <c>app</c> can tell, before anything stops, how much of an artifact's images the
/// engine still needs and whether that fits (<see cref="Install.InstallPlanner"/>).
/// </summary>
/// <param name="Engine">the engine and its version ("docker 20.10.24", "containerd 1.6.20")</param>
/// <param name="DataRoot">where the engine keeps images (Docker's DockerRootDir; containerd's snapshotter root)</param>
/// <param name="FreeBytes">bytes available to the engine on the filesystem of <paramref name="DataRoot"/>; null when the sub-module cannot see it (a remote engine)</param>
/// <param name="Layers">chain IDs of the layers the engine holds</param>
/// <param name="Images">IDs (config digests, "sha256:...") of the images the engine holds</param>
/// <param name="StagesArchive">true when the engine unpacks a loaded archive whole under its data root before it stores the layers (Docker's <c>docker load</c>): a LOAD then also needs the archive's size there</param>
/// <param name="CopiesPerLayer">how often a new layer's bytes are stored (Docker: once, unpacked; containerd: the blob in its content store and the unpacked snapshot)</param>
public sealed record EngineStorage(
    string Engine,
    string DataRoot,
    long? FreeBytes,
    IReadOnlyList<string> Layers,
    IReadOnlyList<string> Images,
    bool StagesArchive,
    int CopiesPerLayer)
{
    public string ToJson() => JsonSerializer.Serialize(this, EngineStorageJson.Default.EngineStorage);

    /// <summary>Reads a STORAGE answer; a <see cref="FormatException"/> names what is wrong.</summary>
    public static EngineStorage Parse(string json)
    {
        try
        {
            var s = JsonSerializer.Deserialize(json, EngineStorageJson.Default.EngineStorage);
            if (s is null || string.IsNullOrEmpty(s.DataRoot) || s.Layers is null || s.Images is null || s.CopiesPerLayer < 1)
            {
                throw new FormatException("it lacks data_root, layers, images or copies_per_layer");
            }

            return s;
        }
        catch (JsonException e)
        {
            throw new FormatException($"it is not the STORAGE JSON object ({e.Message})", e);
        }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(EngineStorage))]
internal sealed partial class EngineStorageJson : JsonSerializerContext;
