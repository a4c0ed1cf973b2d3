using AppModule.Artifacts;
using AppModule.Delta;

namespace AppModule;

/// <summary>
/// Rebuilds the new saved image on the device from the saved current image (the base) and the
/// artifact's payload, with the native decoders of AppModule.Delta: a whole-image VCDIFF (xdelta3)
/// delta, or a deep delta (per-layer deltas; unchanged layers taken from the base).
/// </summary>
public static class DeltaApplier
{
    public static void Apply(ImageKind kind, string basePath, string payloadPath, string targetPath, CancellationToken ct)
    {
        if (kind == ImageKind.DeepDelta)
        {
            DeepDelta.ReconstructFile(payloadPath, basePath, targetPath, null, ct);
        }
        else
        {
            VcdiffDecoder.DecodeFile(basePath, payloadPath, targetPath, null, ct);
        }
    }
}
