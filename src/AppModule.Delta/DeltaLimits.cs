namespace AppModule.Delta;

/// <summary>
/// Bounds applied while decoding a delta, so that a hostile or corrupt input cannot make the
/// decoder allocate without limit. Every buffer the decoder allocates is bounded by one of these
/// values; <see cref="MaxMemoryBytes"/> is the resulting worst case.
/// </summary>
public sealed record DeltaLimits
{
    /// <summary>Largest target window (xdelta3's hard maximum is 16 MiB; its default window is 8 MiB).</summary>
    public int MaxTargetWindowSize { get; init; } = 16 << 20;

    /// <summary>Largest encoded window (sum of its data, instruction and address sections).</summary>
    public int MaxEncodedWindowSize { get; init; } = 40 << 20;

    /// <summary>Largest total output; exceeding it is an error.</summary>
    public long MaxTargetSize { get; init; } = 1L << 40;

    /// <summary>Largest application header (xdelta3 stores file names there).</summary>
    public int MaxAppHeaderSize { get; init; } = 64 << 10;

    /// <summary>Largest LZMA dictionary accepted from an lzma-compressed section stream.</summary>
    public int MaxLzmaDictionarySize { get; init; } = 64 << 20;

    /// <summary>Size of the read cache on the source (base) stream.</summary>
    public int SourceCacheSize { get; init; } = 1 << 20;

    /// <summary>Defaults suitable for xdelta3 output.</summary>
    public static DeltaLimits Default { get; } = new();

    /// <summary>
    /// Upper bound of the bytes the decoder holds at once: target window, encoded sections,
    /// decompressed sections, source cache, and three LZMA dictionaries (one per section kind).
    /// </summary>
    public long MaxMemoryBytes =>
        (long)MaxTargetWindowSize
        + MaxEncodedWindowSize
        + 3L * (MaxTargetWindowSize * 2L + 4096)
        + SourceCacheSize
        + 3L * (MaxLzmaDictionarySize + (1 << 20))
        + MaxAppHeaderSize;
}
