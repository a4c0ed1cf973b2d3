using AppModule.Artifacts;
using Hardening.Tests.Corpus;

namespace Hardening.Tests;

/// <summary>An <see cref="ArtifactException"/> and the library layer that threw it.</summary>
public sealed class LayerError(Layer layer, ArtifactException inner)
{
    public Layer Layer { get; } = layer;

    public ArtifactException Inner { get; } = inner;

    public string Message => Inner.Message;

    public override string ToString() => $"{Layer}: {Inner.GetType().Name}: {Inner.Message}";
}

/// <summary>What the device does with an artifact before anything changes, layer by layer (the reader, meta-data, images payload, claims, manifests), using the library only.</summary>
public static class LibraryPipeline
{
    public static async Task<LayerError?> RunAsync(string artifact, string work, CancellationToken ct)
    {
        var tree = Path.Combine(work, "tree");
        ArtifactContents contents;
        try
        {
            contents = await FileApiTree.WriteAsync(artifact, tree, new DeviceState("v1", string.Empty, "test-device"), new ArtifactReadOptions(PayloadType: "app"), ct);
        }
        catch (ArtifactException e)
        {
            return new LayerError(Layer.ArtifactReader, e);
        }

        try
        {
            var meta = AppMetadata.Parse(contents.Header.MetaDataJson ?? "null");
            if (meta is null)
            {
                return null; // nothing for the library to check; the app refuses artifacts without meta-data
            }

            MetadataValidator.EnsureValid(meta);
        }
        catch (ArtifactException e)
        {
            return new LayerError(Layer.Metadata, e);
        }

        try
        {
            await ImagesPayload.ReadAsync(Path.Combine(tree, "files", "images.tar.gz"), (_, s, token) => s.CopyToAsync(Stream.Null, token), ct);
        }
        catch (ArtifactException e)
        {
            return new LayerError(Layer.ImagesPayload, e);
        }

        try
        {
            var meta = AppMetadata.Parse(contents.Header.MetaDataJson ?? "null")!;
            var path = Path.Combine(tree, "files", "images.tar.gz");
            var carried = new Dictionary<string, SavedImage?>(StringComparer.Ordinal);
            var images = await ImagesPayload.ScanAsync(() => File.OpenRead(path), path, ct, (id, s) =>
            {
                carried[id] = SavedImage.Read(s, ct);
                return Task.CompletedTask;
            });
            ArtifactClaims.Check(meta, images, carried, path);
        }
        catch (ArtifactException e)
        {
            return new LayerError(Layer.Claims, e);
        }

        var manifests = Path.Combine(tree, "files", "manifests.tar.gz");
        if (File.Exists(manifests))
        {
            try
            {
                await ManifestsPayload.ExtractAsync(manifests, Path.Combine(work, "sandbox", "dest"), null, ct);
            }
            catch (ArtifactException e)
            {
                return new LayerError(Layer.ManifestsPayload, e);
            }
        }

        return null;
    }

    /// <summary>Everything under <paramref name="work"/> is the artifact, the File API tree or the extraction destination; nothing escaped to well-known targets.</summary>
    public static void AssertNothingOutside(string work)
    {
        var allowed = new[] { Path.Combine(work, "tree"), Path.Combine(work, "sandbox", "dest") };
        foreach (var entry in Directory.EnumerateFileSystemEntries(work, "*", SearchOption.AllDirectories))
        {
            if (entry.EndsWith(".mender", StringComparison.Ordinal) && Path.GetDirectoryName(entry) == work)
            {
                continue;
            }

            if (entry == Path.Combine(work, "sandbox") || allowed.Any(a => entry == a || entry.StartsWith(a + "/", StringComparison.Ordinal)))
            {
                if (new FileInfo(entry).LinkTarget is { } target)
                {
                    Assert.False(target.StartsWith('/') || target.Split('/').Contains(".."), $"{entry} links to {target}");
                }

                continue;
            }

            Assert.Fail($"{entry} was written outside the tree and the extraction destination");
        }

        foreach (var escaped in new[] { "/tmp/evil", "/tmp/evil.yml", "/etc/cron.d/evil" })
        {
            Assert.False(File.Exists(escaped), $"{escaped} exists: something escaped");
        }
    }
}
