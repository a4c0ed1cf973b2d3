namespace AppModule.Artifacts;

/// <summary>One <c>images/&lt;id&gt;/</c> directory of images.tar.gz.</summary>
/// <param name="BaseTarSha256">sha256 of the current image's saved tar a whole-image delta was made against
/// (file <c>image-current.sha256</c>, written by app-gen; absent in reference artifacts).</param>
public sealed record ImageEntry(
    string Id,
    string UrlNew,
    string UrlCurrent,
    string SumsNew,
    string SumsCurrent,
    bool DeepDeltaMarker,
    long ImageSize,
    string? BaseTarSha256 = null)
{
    public ImageKind Kind => DeepDeltaMarker ? ImageKind.DeepDelta : UrlNew == UrlCurrent ? ImageKind.Full : ImageKind.Delta;
}
