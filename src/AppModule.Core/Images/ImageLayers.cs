using System.Security.Cryptography;
using System.Text;

namespace AppModule.Core.Images;

/// <summary>How an artifact brings one layer of an image.</summary>
public enum LayerSource
{
    /// <summary>The layer's tar is in the payload (a full image, or a layer a deep delta adds whole).</summary>
    Carried,

    /// <summary>A deep delta's VCDIFF against a layer of the base image: its size is known once rebuilt.</summary>
    Delta,

    /// <summary>A deep delta leaves it out: the base image on the device has it.</summary>
    FromBase,

    /// <summary>The engine pulls it from a registry (the fleet agent): its size is the compressed blob's, a lower bound of the unpacked layer.</summary>
    Pulled,
}

/// <summary>One layer of an image, as its config's <c>rootfs.diff_ids</c> names it.</summary>
/// <param name="DiffId">sha256 of the uncompressed layer tar ("sha256:...")</param>
/// <param name="Size">bytes of the uncompressed layer tar; null when not known (a deep delta's changed layer before it is rebuilt); for a <see cref="LayerSource.Pulled"/> layer the compressed blob's size</param>
public sealed record ImageLayer(string DiffId, long? Size, LayerSource Source = LayerSource.Carried);

/// <summary>
/// Layer identities as engines store them. An engine keeps a layer once per <em>chain</em>: the same
/// diff on another parent is another layer. The chain ID of the first layer is its diff ID; of each
/// next one, <c>sha256(chainID(parent) + " " + diffID)</c> (the OCI image spec, and what Docker's
/// layer store and containerd's snapshots are keyed by).
/// </summary>
public static class ImageLayers
{
    public static IReadOnlyList<string> ChainIds(IEnumerable<string> diffIds)
    {
        ArgumentNullException.ThrowIfNull(diffIds);
        var chains = new List<string>();
        foreach (var diff in diffIds)
        {
            chains.Add(chains.Count == 0
                ? diff
                : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(chains[^1] + " " + diff))));
        }

        return chains;
    }
}
