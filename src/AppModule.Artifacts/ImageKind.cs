namespace AppModule.Artifacts;

/// <summary>How an image travels in images.tar.gz (spec section 9).</summary>
public enum ImageKind
{
    /// <summary>url-current == url-new: image.img is a saved image (docker-archive or OCI tar).</summary>
    Full,
    /// <summary>urls differ, no deep_delta marker: image.img is a VCDIFF of the new saved tar against the current one.</summary>
    Delta,
    /// <summary>deep_delta marker present: image.img is a tar of the new image with layers replaced by deltas or references.</summary>
    DeepDelta,
}
