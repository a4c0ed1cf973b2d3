namespace AppModule.Artifacts;

/// <summary>One image to put into images.tar.gz.</summary>
/// <param name="ImagePath">the file that becomes image.img (saved image, VCDIFF or deep-delta tar).</param>
public sealed record ImageToWrite(ImageEntry Entry, string ImagePath);
