namespace AppModule.Artifacts;

/// <summary>Limits for extracting manifests.tar.gz.</summary>
public sealed record ExtractionLimits(int MaxEntries = 10_000, long MaxFileBytes = 64L << 20, long MaxTotalBytes = 256L << 20);
