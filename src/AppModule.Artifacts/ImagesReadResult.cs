namespace AppModule.Artifacts;

/// <summary>The images read, and how many passes over the archive it took (1 or 2).</summary>
public sealed record ImagesReadResult(IReadOnlyList<ImageEntry> Images, int Passes);
