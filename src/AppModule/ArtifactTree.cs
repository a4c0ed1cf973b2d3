using AppModule.Artifacts;
using AppModule.Core.Install;

namespace AppModule;

/// <summary>The File API tree the Mender client hands over (<c>app &lt;State&gt; &lt;tree&gt;</c>).</summary>
public sealed class ArtifactTree(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public string FilesDir => System.IO.Path.Combine(Path, "files");

    public string TmpDir => System.IO.Path.Combine(Path, "tmp");

    /// <summary>header/artifact_name (3.4 writes no newline, 4.x one: trimmed).</summary>
    public string ArtifactName => Read("header/artifact_name") ?? "(unknown artifact)";

    public string? Read(string relative)
    {
        var p = System.IO.Path.Combine(Path, relative);
        return File.Exists(p) ? File.ReadAllText(p).Trim() : null;
    }

    /// <summary>
    /// The validated meta-data. Throws <see cref="ArtifactException"/> (one line: field, value, fix)
    /// when it is missing or invalid.
    /// </summary>
    public AppMetadata Metadata()
    {
        var text = Read("header/meta-data")
                   ?? throw new ArtifactFormatException($"{Path}/header/meta-data does not exist: this is not a File API tree of an app artifact");
        RequireAppPayload();
        var meta = AppMetadata.Parse(text)
                   ?? throw new ArtifactFormatException("the artifact has no meta-data: generate app artifacts with app-gen (mender-artifact write module-image -T app ... --meta-data meta.json)");
        MetadataValidator.EnsureValid(meta);
        return meta;
    }

    /// <summary>The meta-data's application name when it is readable and valid, else null (used by states after a failed install).</summary>
    public AppMetadata? TryMetadata()
    {
        try
        {
            return Metadata();
        }
        catch (ArtifactException)
        {
            return null;
        }
    }

    /// <summary>
    /// The payload must be of type app in header-info and in type-info (a client hands a payload to the
    /// module its type-info names, so an artifact whose two headers disagree could reach this module).
    /// </summary>
    private void RequireAppPayload()
    {
        var headerInfo = Read("header/header-info")
                         ?? throw new ArtifactFormatException($"{Path}/header/header-info does not exist: this is not a File API tree of an artifact");
        var typeInfo = Read("header/type-info")
                       ?? throw new ArtifactFormatException($"{Path}/header/type-info does not exist: this is not a File API tree of an artifact");
        ArtifactReader.RequirePayloadType(HeaderInfo.Parse(headerInfo).PayloadTypes, TypeInfo.Parse(typeInfo).Type, "app");
    }

    public string ImagesArchive() => global::AppModule.ImagesArchive.Locate(FilesDir, "images");

    public string ManifestsArchive() => global::AppModule.ImagesArchive.Locate(FilesDir, "manifests");

    public void EnsureTmp()
    {
        Directory.CreateDirectory(TmpDir);
    }

    public override string ToString() => Path;

    /// <summary>Fails with the step when files/ is missing (e.g. a module that streamed in Download).</summary>
    public void RequireFiles()
    {
        if (!Directory.Exists(FilesDir))
        {
            throw new InstallException("pre-check", "files/", $"{FilesDir} does not exist: the client did not store the payload (the app module never reads streams in Download)");
        }
    }
}
