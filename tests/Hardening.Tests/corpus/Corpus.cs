using System.Formats.Tar;
using System.Text;

namespace Hardening.Tests.Corpus;

/// <summary>What a corpus case starts from: a valid app artifact for <see cref="App"/> that would
/// replace the running v1 with <see cref="Image"/>, and a second image for cases that need one.</summary>
public sealed record CorpusBase(string App, CorpusImage Image, CorpusImage Other, Func<string, string> Compose)
{
    public ArtifactParts Valid(string artifactName) => ArtifactParts.Valid(artifactName, App, Image, Compose(Image.Url));

    public string ImageDir => $"images/{Image.Id}/";
}

/// <summary>Who rejects a hostile artifact first.</summary>
public enum Layer
{
    /// <summary>ArtifactReader (outer tar, manifest, checksums, header.tar, data/0000.tar): also the Mender client's own reader.</summary>
    ArtifactReader,

    /// <summary>AppMetadata.Parse / MetadataValidator.</summary>
    Metadata,

    /// <summary>ImagesPayload (images.tar.gz).</summary>
    ImagesPayload,

    /// <summary>ManifestsPayload (manifests.tar.gz, safe extraction).</summary>
    ManifestsPayload,

    /// <summary>ArtifactClaims: meta-data's image list and platform against what the images payload carries.</summary>
    Claims,

    /// <summary>the app module's pre-checks (beyond the library).</summary>
    App,

    /// <summary>the docker-compose sub-module (ROLLOUT).</summary>
    SubModule,
}

/// <param name="Name">short kebab-case id, also the artifact's name</param>
/// <param name="RejectedBy">the first layer that rejects it</param>
/// <param name="Error">the exception class the library throws (null when the library accepts it and a later layer rejects)</param>
/// <param name="Fragment">a fragment of the error message (at the rejecting layer); "{image}" stands for the base's image reference</param>
/// <param name="ClientFragment">what the Mender client's output shows, when the client's own reader rejects it first</param>
/// <param name="SubModuleConfig">extra lines for mender-app-docker-compose.conf</param>
/// <param name="DeviceFragment">what the device's output shows when it differs from the library's message (the client changed the artifact on the way)</param>
public sealed record CorpusCase(
    string Name,
    Layer RejectedBy,
    string? Error,
    string Fragment,
    Func<CorpusBase, ArtifactParts> Build,
    string? ClientFragment = null,
    string? SubModuleConfig = null,
    string? DeviceFragment = null)
{
    public override string ToString() => Name;

    /// <summary>The fragment as it reads for <paramref name="b"/> (its image reference filled in).</summary>
    public string FragmentFor(CorpusBase b) => Fragment.Replace("{image}", b.Image.Url, StringComparison.Ordinal);
}

/// <summary>The attack corpus: every case is generated here from a valid artifact by breaking one thing.</summary>
public static class HostileArtifacts
{
    private const string Format = "ArtifactFormatException";
    private const string Checksum = "ArtifactChecksumException";
    private const string Unsafe = "UnsafeArchiveEntryException";

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static ArtifactParts V(CorpusBase b, string name) => b.Valid(name);

    private static IReadOnlyList<TarSpec> With(IReadOnlyList<TarSpec> entries, params TarSpec[] extra) => [.. entries, .. extra];

    private static IReadOnlyList<TarSpec> Without(IReadOnlyList<TarSpec> entries, string suffix) => entries.Where(e => !e.Name.EndsWith(suffix, StringComparison.Ordinal)).ToList();

    private static IReadOnlyList<TarSpec> Replace(IReadOnlyList<TarSpec> entries, string suffix, TarSpec by) =>
        entries.Select(e => e.Name.EndsWith(suffix, StringComparison.Ordinal) ? by : e).ToList();

    private static string FlipFirstSumOf(string manifest, string path) =>
        string.Join('\n', manifest.Split('\n').Select(l => l.EndsWith("  " + path, StringComparison.Ordinal) ? (l[0] == '0' ? "1" : "0") + l[1..] : l));

    private static string FirstLinePerPath(string manifest) =>
        string.Concat(manifest.Split('\n', StringSplitOptions.RemoveEmptyEntries).DistinctBy(l => l[66..]).Select(l => l + "\n"));

    private static List<TarSpec> Member(List<TarSpec> outer, string name, Func<TarSpec, TarSpec> edit) =>
        outer.Select(o => o.Name == name ? edit(o) : o).ToList();

    /// <summary>The meta-data of the valid artifact with <paramref name="edit"/> applied to its fields.</summary>
    private static ArtifactParts Meta(CorpusBase b, string name, string? app = null, string? orchestrator = null, IReadOnlyDictionary<string, string>? env = null) =>
        V(b, name) with { MetaData = ArtifactParts.Meta(app ?? b.App, [b.Image.Id], orchestrator ?? "docker-compose", env: env) };

    public static IReadOnlyList<CorpusCase> All { get; } = Build();

    private static List<CorpusCase> Build()
    {
        var c = new List<CorpusCase>();
        void Add(string name, Layer layer, string? error, string fragment, Func<CorpusBase, ArtifactParts> build, string? client = null, string? config = null, string? device = null) =>
            c.Add(new CorpusCase(name, layer, error, fragment, b => build(b) with { ArtifactName = name }, client, config, device));

        // ------------------------------------------------ outer tar, manifest, checksums (ArtifactReader; the client rejects these first)
        Add("empty-file", Layer.ArtifactReader, Format, "is empty or not a tar file",
            b => V(b, "x") with { EditFile = _ => [] }, client: "can not read version file: readNext: Failed to get next header: EOF");
        Add("not-a-tar", Layer.ArtifactReader, Format, "cannot be read",
            b => V(b, "x") with { EditFile = _ => B(new string('x', 3000)) }, client: "archive/tar: invalid tar header");
        Add("truncated-outer-tar-in-payload", Layer.ArtifactReader, Format, "is truncated",
            b => V(b, "x") with { EditFile = f => f[..(f.Length - 4096)] }, client: "images.tar.gz: Unable to stream into");
        // The client names both missing files in Go map order, which differs from run to run
        // ("data/0000/manifests.tar.gz, data/0000/images.tar.gz" or the other way round): match the list's start only.
        Add("truncated-outer-tar-after-header", Layer.ArtifactReader, Format, "ends before its data member",
            b => V(b, "x") with { EditOuter = o => o.Where(m => m.Name != "data/0000.tar").ToList() }, client: "that were not part of artifact: data/0000/");
        Add("truncated-outer-tar-in-manifest", Layer.ArtifactReader, Format, "member \"manifest\" is truncated",
            b => V(b, "x") with { EditFile = f => f[..(512 + 512 + 512 + 100)] }, client: "from the tar reader: unexpected EOF");
        Add("wrong-manifest-checksum-of-images", Layer.ArtifactReader, Checksum, "\"data/0000/images.tar.gz\" has sha256",
            b => V(b, "x") with { EditManifest = m => FlipFirstSumOf(m, "data/0000/images.tar.gz") }, client: "invalid checksum; expected:");
        Add("wrong-manifest-checksum-of-header", Layer.ArtifactReader, Checksum, "\"header.tar\" has sha256",
            b => V(b, "x") with { EditManifest = m => FlipFirstSumOf(m, "header.tar") }, client: "can not read artifact header file");
        Add("wrong-manifest-checksum-of-version", Layer.ArtifactReader, Checksum, "\"version\" has sha256",
            b => V(b, "x") with { EditManifest = m => FlipFirstSumOf(m, "version") }, client: "readHeaderV3: invalid checksum; expected:");
        Add("payload-file-not-in-manifest", Layer.ArtifactReader, Checksum, "is not listed in the manifest",
            b => V(b, "x") with { EditManifest = m => string.Join('\n', m.Split('\n').Where(l => !l.EndsWith("manifests.tar.gz", StringComparison.Ordinal))) }, client: "can not find data file: manifests.tar.gz");
        Add("manifest-lists-a-missing-payload-file", Layer.ArtifactReader, Checksum, "listed in the manifest but missing",
            b => V(b, "x") with { EditManifest = m => m + new string('a', 64) + "  data/0000/extra.bin\n" }, client: "that were not part of artifact: data/0000/extra.bin");
        Add("manifest-line-malformed", Layer.ArtifactReader, Format, "is not \"<sha256>  <path>\"",
            b => V(b, "x") with { EditManifest = m => m + "not a checksum line\n" }, client: "checksum: malformed checksum line");
        Add("manifest-lists-a-path-twice", Layer.ArtifactReader, Format, "lists \"version\" twice",
            b => V(b, "x") with { EditManifest = m => m + m.Split('\n').First(l => l.EndsWith("  version", StringComparison.Ordinal)) + "\n" }, client: "checksum store: file already exists");
        Add("version-not-first", Layer.ArtifactReader, Format, "first member is \"manifest\"",
            b => V(b, "x") with { EditOuter = o => [o[1], o[0], .. o.Skip(2)] }, client: "can not read version file: invalid argument");
        Add("version-2-format", Layer.ArtifactReader, Format, "only version 3 is supported",
            b => V(b, "x") with { VersionJson = "{\"format\":\"mender\",\"version\":2}" }, client: "Required field 'CompatibleDevices' not found");
        Add("duplicate-outer-data-member", Layer.ArtifactReader, Format, "unexpected member \"data/0000.tar\" after data/0000",
            b => V(b, "x") with { EditOuter = o => [.. o, o[^1]] }, client: "can not install Payload: images.tar.gz");
        Add("augmented-artifact", Layer.ArtifactReader, Format, "augmented artifacts",
            b => V(b, "x") with { EditOuter = o => [o[0], o[1], new TarSpec("manifest-augment", Data: B("x")), .. o.Skip(2)] }, client: "Garbled entry in manifest: 'x'");
        Add("huge-declared-size-of-manifest-member", Layer.ArtifactReader, Unsafe, "more than the limit",
            b => V(b, "x") with { EditOuter = o => Member(o, "manifest", m => m with { DeclaredSize = 1L << 40 }) }, client: "from the tar reader: unexpected EOF");
        Add("header-gzip-bomb", Layer.ArtifactReader, Unsafe, "header.tar holds more than",
            b => V(b, "x") with
            {
                HeaderMember = tar => ("header.tar.gz", ArtifactParts.GzipBomb(ArtifactParts.RawHeader("header-info", 1L << 30, (byte)'0'), 1024)),
            }, client: "Could not parse header element header-info");
        Add("header-entry-is-a-symlink", Layer.ArtifactReader, Unsafe, "header.tar: entry \"headers/0000/meta-data\" is a symbolic link (tar type '2')",
            b => V(b, "x") with { MetaData = null, ExtraHeaderEntries = [new TarSpec("headers/0000/meta-data", TarEntryType.SymbolicLink, Link: "/etc/shadow")] }, device: "the artifact has no meta-data");
        Add("header-info-invalid-json", Layer.ArtifactReader, Format, "header-info is not valid JSON",
            b => V(b, "x") with { HeaderInfo = "{\"payloads\": [" }, client: "Could not parse header element header-info: unexpected EOF");
        Add("payload-entry-with-dotdot", Layer.ArtifactReader, Unsafe, "is not a plain file name",
            b => V(b, "x") with { ExtraPayloadFiles = [("../../../tmp/evil", B("x"))] }, client: "Malformed manifest entry: 'data/0000/../../../tmp/evil'");
        Add("payload-entry-absolute", Layer.ArtifactReader, Unsafe, "is not a plain file name",
            b => V(b, "x") with { ExtraPayloadFiles = [("/tmp/evil", B("x"))] }, client: "Malformed manifest entry: 'data/0000//tmp/evil'");
        Add("payload-duplicate-entry", Layer.ArtifactReader, Unsafe, "payload file \"images.tar.gz\" appears twice",
            b => V(b, "x") with { ExtraPayloadFiles = [("images.tar.gz", B("x"))], EditManifest = FirstLinePerPath }, client: "images.tar.gz: file exists");
        Add("truncated-payload", Layer.ArtifactReader, Format, "damaged, truncated or not a Mender artifact",
            b => V(b, "x") with
            {
                EditOuter = o => Member(o, "data/0000.tar", d => d with { Data = d.Data![..(d.Data!.Length / 2)] }),
            }, client: "images.tar.gz: Unable to stream into");

        Add("header-entry-with-dotdot", Layer.ArtifactReader, Format, "header.tar holds the unknown entry \"../evil\"",
            b => V(b, "x") with { ExtraHeaderEntries = [TarSpec.File("../evil", "x")] }, client: "can not get Payload order from tar path");
        Add("header-entry-unknown-in-headers", Layer.ArtifactReader, Format, "header.tar holds the unknown entry \"headers/0000/evil\"",
            b => V(b, "x") with { ExtraHeaderEntries = [TarSpec.File("headers/0000/evil", "x")] }, client: "Payload: unsupported file: headers/0000/evil");
        Add("header-entry-unknown-top-level", Layer.ArtifactReader, Format, "header.tar holds the unknown entry \"evil.sh\"",
            b => V(b, "x") with { ExtraHeaderEntries = [TarSpec.File("evil.sh", "#!/bin/sh\nreboot\n")] }, client: "can not get Payload order from tar path");
        Add("header-script-in-a-subdirectory", Layer.ArtifactReader, Format, "header.tar holds the unknown entry \"scripts/../../evil\"",
            b => V(b, "x") with { ExtraHeaderEntries = [TarSpec.File("scripts/../../evil", "x")] }, client: "error getting header Payload number");
        Add("payload-type-not-app", Layer.ArtifactReader, Format, "the artifact's payload type is \"single-file\"",
            b => V(b, "x") with
            {
                TypeInfo = "{\"type\":\"single-file\"}",
                HeaderInfo = $"{{\"payloads\":[{{\"type\":\"single-file\"}}],\"artifact_provides\":{{\"artifact_name\":\"payload-type-not-app\"}},\"artifact_depends\":{{\"device_type\":[\"test-device\"]}}}}",
            }, client: "Artifact Payload type 'single-file' is not supported by this Mender Client");
        Add("payload-type-differs-between-headers", Layer.ArtifactReader, Format, "not \"app\"",
            b => V(b, "x") with { TypeInfo = "{\"type\":\"single-file\"}" });

        // ------------------------------------------------ meta-data (AppMetadata / MetadataValidator)
        Add("meta-data-invalid-json", Layer.ArtifactReader, Format, "header/meta-data is not valid JSON",
            b => V(b, "x") with { MetaData = "{\"application_name\": \"x\"," }, client: "error reading meta-data: unexpected EOF");
        Add("meta-data-not-an-object", Layer.Metadata, Format, "must be a JSON object",
            b => V(b, "x") with { MetaData = "[1,2,3]" }, client: "Top level object in meta-data must be a JSON object");
        Add("meta-data-wrong-type", Layer.Metadata, Format, "meta-data field \"images\" must be a list",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, []).Replace("\"images\":[]", "\"images\":\"all\"", StringComparison.Ordinal) });
        Add("orchestrator-with-slash", Layer.Metadata, Format, "meta-data field \"orchestrator\" is \"/bin/sh\"",
            b => Meta(b, "x", orchestrator: "/bin/sh"));
        Add("orchestrator-with-dotdot", Layer.Metadata, Format, "meta-data field \"orchestrator\" is \"../../../bin/sh\"",
            b => Meta(b, "x", orchestrator: "../../../bin/sh"));
        Add("orchestrator-dotdot-only", Layer.Metadata, Format, "meta-data field \"orchestrator\" is \"..\"",
            b => Meta(b, "x", orchestrator: ".."));
        Add("app-name-with-semicolon", Layer.Metadata, Format, "meta-data field \"application_name\" is \"web; rm -rf /\"",
            b => Meta(b, "x", app: "web; rm -rf /"));
        Add("app-name-with-command-substitution", Layer.Metadata, Format, "meta-data field \"application_name\" is \"$(reboot)\"",
            b => Meta(b, "x", app: "$(reboot)"));
        Add("app-name-with-backticks", Layer.Metadata, Format, "meta-data field \"application_name\" is \"`id`\"",
            b => Meta(b, "x", app: "`id`"));
        Add("app-name-with-path", Layer.Metadata, Format, "meta-data field \"application_name\" is \"../other\"",
            b => Meta(b, "x", app: "../other"));
        Add("app-name-with-newline", Layer.Metadata, Format, "meta-data field \"application_name\" is \"web\\nx\"",
            b => Meta(b, "x", app: "web\nx"));
        Add("app-name-with-trailing-newline", Layer.Metadata, Format, "meta-data field \"application_name\" is \"web\\n\"",
            b => Meta(b, "x", app: "web\n"));
        Add("orchestrator-with-trailing-newline", Layer.Metadata, Format, "meta-data field \"orchestrator\" is \"docker-compose\\n\"",
            b => Meta(b, "x", orchestrator: "docker-compose\n"));
        Add("env-key-with-trailing-newline", Layer.Metadata, Format, "has the key \"TAG\\n\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["TAG\n"] = "1" }));
        Add("env-key-with-shell-injection", Layer.Metadata, Format, "has the key \"X;reboot\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["X;reboot"] = "1" }));
        Add("env-key-with-equals", Layer.Metadata, Format, "has the key \"A=B\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["A=B"] = "1" }));
        Add("env-value-with-nul", Layer.Metadata, Format, "contains a NUL character",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["TAG"] = "1\0; reboot" }));
        Add("env-key-ld-preload", Layer.Metadata, Format, "has the key \"LD_PRELOAD\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["LD_PRELOAD"] = "/data/mender-app/x/c-000002/manifests/evil.so" }));
        Add("env-key-path", Layer.Metadata, Format, "has the key \"PATH\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["PATH"] = "/tmp/evil-bin" }));
        Add("env-key-docker-host", Layer.Metadata, Format, "has the key \"DOCKER_HOST\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["DOCKER_HOST"] = "tcp://attacker.example:2375" }));
        Add("env-key-submodule-config", Layer.Metadata, Format, "has the key \"MENDER_APP_DOCKER_COMPOSE_CONF\"",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["MENDER_APP_DOCKER_COMPOSE_CONF"] = "/tmp/evil.conf" }));
        Add("env-value-with-newline-declaring-variables", Layer.Metadata, Format, "meta-data field \"env.GREETING\" contains a line break",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["GREETING"] = "x\nDOCKER_HOST=tcp://attacker.example:2375\nLD_PRELOAD=/tmp/evil.so" }));
        Add("env-value-with-trailing-newline", Layer.Metadata, Format, "meta-data field \"env.TAG\" contains a line break",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["TAG"] = "1.0\n" }));
        Add("env-value-with-carriage-return", Layer.Metadata, Format, "meta-data field \"env.TAG\" contains a line break",
            b => Meta(b, "x", env: new Dictionary<string, string> { ["TAG"] = "1.0\rPATH=/tmp" }));
        Add("env-not-an-object", Layer.Metadata, Format, "meta-data field \"env\" must be an object",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [b.Image.Id])[..^1] + ",\"env\":[\"A=1\"]}" });

        // ------------------------------------------------ images.tar.gz (ImagesPayload)
        Add("images-entry-with-dotdot", Layer.ImagesPayload, Unsafe, "is outside images/<id>/",
            b => V(b, "x") with { Images = With(V(b, "x").Images, TarSpec.File("images/../../etc/passwd", "x")) });
        Add("images-entry-absolute", Layer.ImagesPayload, Unsafe, "is outside images/<id>/",
            b => V(b, "x") with { Images = With(V(b, "x").Images, TarSpec.File("/" + b.ImageDir + "url-new.txt", "evil:1\n")) });
        Add("images-symlink-outside", Layer.ImagesPayload, Unsafe, "image.img\" is a symbolic link (tar type '2')",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", TarEntryType.SymbolicLink, Link: "/etc/shadow")) });
        Add("images-hardlink-outside", Layer.ImagesPayload, Unsafe, "image.img\" is a hard link (tar type '1')",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", TarEntryType.HardLink, Link: "/etc/shadow")) });
        Add("images-device-node", Layer.ImagesPayload, Unsafe, "image.img\" is a character device (tar type '3')",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", TarEntryType.CharacterDevice)) });
        Add("images-duplicate-image", Layer.ImagesPayload, Unsafe, "image.img appears twice",
            b => V(b, "x") with { Images = With(V(b, "x").Images, new TarSpec(b.ImageDir + "image.img", Data: B("second"))) });
        Add("images-missing-url-new", Layer.ImagesPayload, Format, "has no url-new.txt",
            b => V(b, "x") with { Images = Without(V(b, "x").Images, "/url-new.txt") });
        Add("images-sums-new-mismatch", Layer.ImagesPayload, Format, "sums-new.txt is \"" + new string('e', 64) + "\" but the directory is named",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/sums-new.txt", TarSpec.File(b.ImageDir + "sums-new.txt", new string('e', 64) + "\n")) });
        Add("images-url-new-two-lines", Layer.ImagesPayload, Format, "url-new.txt is",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/url-new.txt", TarSpec.File(b.ImageDir + "url-new.txt", b.Image.Url + "\nevil:1\n")) });
        Add("images-huge-declared-size", Layer.ImagesPayload, Unsafe, "url-new.txt is 1099511627776 bytes, more than 4096",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/url-new.txt", new TarSpec(b.ImageDir + "url-new.txt", Data: B(b.Image.Url), DeclaredSize: 1L << 40)) });
        Add("images-gzip-bomb", Layer.ImagesPayload, Unsafe, "url-new.txt is 2147483648 bytes, more than 4096",
            b => V(b, "x") with
            {
                ImagesBytes = _ => ArtifactParts.GzipBomb(ArtifactParts.RawHeader(b.ImageDir + "url-new.txt", 2L << 30, (byte)'0'), 2048, new byte[1024]),
            });
        Add("images-dir-not-an-id", Layer.ImagesPayload, Unsafe, "is not named by a 64-hex image ID",
            b => V(b, "x") with { Images = With(V(b, "x").Images, TarSpec.File("images/evil/url-new.txt", "x\n")) });
        Add("images-unknown-file", Layer.ImagesPayload, Unsafe, "unexpected file",
            b => V(b, "x") with { Images = With(V(b, "x").Images, TarSpec.File(b.ImageDir + "run.sh", "#!/bin/sh\nreboot\n")) });
        Add("images-truncated-gzip", Layer.ImagesPayload, Format, "cannot be read",
            b => V(b, "x") with { ImagesBytes = g => g[..(g.Length / 2)] });

        Add("images-tar-truncated-inside-gzip", Layer.ImagesPayload, Format, "cannot be read",
            b => V(b, "x") with { ImagesBytes = _ => ArtifactParts.Gzip(ArtifactParts.TarBytes(V(b, "x").Images)[..2600]) });
        Add("images-tar-truncated-in-image-data", Layer.ImagesPayload, Format, "cannot be read",
            b => V(b, "x") with { ImagesBytes = _ => { var t = ArtifactParts.TarBytes(V(b, "x").Images); return ArtifactParts.Gzip(t[..(t.Length - 1024 - 700)]); } });
        Add("image-img-truncated-saved-image", Layer.Claims, Format, "is not a saved image",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", Data: File.ReadAllBytes(b.Image.SavedPath)[..1500])) });

        // ------------------------------------------------ manifests.tar.gz (ManifestsPayload)
        IReadOnlyList<TarSpec> M(CorpusBase b, params TarSpec[] extra) => With(V(b, "x").Manifests, extra);
        Add("manifests-entry-with-dotdot", Layer.ManifestsPayload, Unsafe, "contains '..'",
            b => V(b, "x") with { Manifests = M(b, TarSpec.File("manifests/../../../../tmp/evil.yml", "x")) });
        Add("manifests-entry-absolute", Layer.ManifestsPayload, Unsafe, "has an absolute path",
            b => V(b, "x") with { Manifests = M(b, TarSpec.File("/etc/cron.d/evil", "* * * * * root reboot\n")) });
        Add("manifests-symlink-absolute", Layer.ManifestsPayload, Unsafe, "which is absolute or leaves its directory",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/etc", TarEntryType.SymbolicLink, Link: "/etc")) });
        Add("manifests-symlink-dotdot", Layer.ManifestsPayload, Unsafe, "which is absolute or leaves its directory",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/up", TarEntryType.SymbolicLink, Link: "../../../..")) });
        Add("manifests-hardlink-outside", Layer.ManifestsPayload, Unsafe, "outside manifests/",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/passwd", TarEntryType.HardLink, Link: "/etc/passwd")) });
        Add("manifests-character-device", Layer.ManifestsPayload, Unsafe, "\"manifests/mem\" is a character device (tar type '3')",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/mem", TarEntryType.CharacterDevice)) });
        Add("manifests-block-device", Layer.ManifestsPayload, Unsafe, "\"manifests/sda\" is a block device (tar type '4')",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/sda", TarEntryType.BlockDevice)) });
        Add("manifests-fifo", Layer.ManifestsPayload, Unsafe, "\"manifests/pipe\" is a FIFO (tar type '6')",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/pipe", TarEntryType.Fifo)) });
        Add("manifests-duplicate-entry", Layer.ManifestsPayload, Unsafe, "appears twice",
            b => V(b, "x") with { Manifests = M(b, TarSpec.File("manifests/docker-compose.yml", "services: {}\n")) });
        Add("manifests-huge-declared-size", Layer.ManifestsPayload, Unsafe, "is 109951162777600 bytes, more than the limit",
            b => V(b, "x") with { Manifests = M(b, new TarSpec("manifests/big.yml", Data: B("x"), DeclaredSize: 100L << 40)) });
        Add("manifests-gzip-bomb", Layer.ManifestsPayload, Unsafe, "more than the limit",
            b => V(b, "x") with
            {
                ManifestsBytes = _ => ArtifactParts.GzipBomb(
                    [.. ArtifactParts.RawTar([TarSpec.File("manifests/docker-compose.yml", b.Compose(b.Image.Url))], endMarker: false), .. ArtifactParts.RawHeader("manifests/bomb.yml", 1L << 30, (byte)'0')],
                    1024, new byte[1024]),
            });
        Add("manifests-too-many-entries", Layer.ManifestsPayload, Unsafe, "has more than 10000 entries",
            b => V(b, "x") with { Manifests = M(b, Enumerable.Range(0, 10_001).Select(i => TarSpec.File($"manifests/f{i}.yml", "")).ToArray()) });
        Add("manifests-tar-truncated-inside-gzip", Layer.ManifestsPayload, Format, "cannot be read",
            b => V(b, "x") with { ManifestsBytes = _ => ArtifactParts.Gzip(ArtifactParts.TarBytes(V(b, "x").Manifests)[..700]) });
        Add("manifests-entry-outside-manifests", Layer.ManifestsPayload, Unsafe, "is outside manifests/",
            b => V(b, "x") with { Manifests = M(b, TarSpec.File("etc/passwd", "root::0:0::/:/bin/sh\n")) });

        // ------------------------------------------------ claims against the payload (ArtifactClaims, library and app pre-check)
        Add("image-not-listed-in-meta-data", Layer.Claims, Format, "is not listed in meta-data \"images\"",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [b.Other.Id]) });
        Add("image-payload-is-another-image", Layer.Claims, Format, "but sums-new.txt says",
            b => V(b, "x") with
            {
                Images = ArtifactParts.ImageEntries(b.Other with { Id = b.Image.Id }),
            });
        Add("image-payload-not-a-saved-image", Layer.Claims, Format, "is not a saved image",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", Data: B("MZ not an image"))) });
        Add("meta-data-images-empty", Layer.Claims, Format, "meta-data \"images\" is empty, but",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, []) });
        Add("meta-data-images-empty-and-no-images", Layer.Claims, Format, "meta-data \"images\" is empty and",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, []), Images = [TarSpec.Dir("images/")] });
        Add("meta-data-lists-an-image-the-payload-lacks", Layer.Claims, Format, $"carries no image directory for it",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [b.Image.Id, b.Other.Id]) });
        Add("images-payload-zero-bytes", Layer.Claims, Format, "but images.tar.gz carries no image",
            b => V(b, "x") with { ImagesBytes = _ => [] });
        Add("images-payload-empty-tar", Layer.Claims, Format, "but images.tar.gz carries no image",
            b => V(b, "x") with { Images = [TarSpec.Dir("images/")] });
        Add("image-img-zero-bytes", Layer.Claims, Format, "/image.img (" + "{image}) is empty (0 bytes)",
            b => V(b, "x") with { Images = Replace(V(b, "x").Images, "/image.img", new TarSpec(b.ImageDir + "image.img", Data: [])) });
        Add("platform-arm64-declared-for-an-amd64-image", Layer.Claims, Format, "is built for linux/amd64, but the artifact declares platform linux/arm64",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [b.Image.Id], platform: "linux/arm64") });
        Add("platform-arm-v7-declared-for-an-amd64-image", Layer.Claims, Format, "is built for linux/amd64, but the artifact declares platform linux/arm/v7",
            b => V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [b.Image.Id], platform: "linux/arm/v7") });
        Add("image-built-for-arm64-in-an-amd64-artifact", Layer.Claims, Format, "is built for linux/arm64, but the artifact declares platform linux/amd64",
            b =>
            {
                var (id, bytes) = SyntheticImage.Bytes(b.Image.Url, "\"architecture\":\"arm64\",\"os\":\"linux\"");
                return V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [id]), Images = ArtifactParts.ImageEntries(b.Image.Url, id, bytes) };
            });
        Add("image-built-for-windows-in-a-linux-artifact", Layer.Claims, Format, "is built for windows/amd64, but the artifact declares platform linux/amd64",
            b =>
            {
                var (id, bytes) = SyntheticImage.Bytes(b.Image.Url, "\"architecture\":\"amd64\",\"os\":\"windows\"");
                return V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [id]), Images = ArtifactParts.ImageEntries(b.Image.Url, id, bytes) };
            });
        Add("image-config-without-platform", Layer.Claims, Format, "does not declare its platform",
            b =>
            {
                var (id, bytes) = SyntheticImage.Bytes(b.Image.Url, string.Empty);
                return V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [id]), Images = ArtifactParts.ImageEntries(b.Image.Url, id, bytes) };
            });
        Add("delta-base-not-listed-in-meta-data", Layer.Claims, Format, "is not listed in meta-data \"images\"",
            b => V(b, "x") with { Images = ArtifactParts.ImageEntries(b.Image, urlCurrent: "appmodule/no-such-base:0", sumsCurrent: new string('b', 64)) });
        Add("two-image-directories-for-one-reference", Layer.Claims, Format, "two image directories load the same reference",
            b => V(b, "x") with
            {
                MetaData = ArtifactParts.Meta(b.App, [b.Image.Id, b.Other.Id]),
                Images = [.. V(b, "x").Images, .. ArtifactParts.ImageEntries(b.Other with { Url = b.Image.Url }).Skip(1)],
            });

        // ------------------------------------------------ accepted by the library, rejected by the app's pre-checks
        Add("null-meta-data", Layer.App, null, "the artifact has no meta-data",
            b => V(b, "x") with { MetaData = "null" }, client: "Top level object in meta-data must be a JSON object");
        Add("no-meta-data", Layer.App, null, "the artifact has no meta-data",
            b => V(b, "x") with { MetaData = null });
        Add("orchestrator-not-installed", Layer.App, null, "no executable sub-module",
            b => Meta(b, "x", orchestrator: "no-such-orchestrator"));
        Add("missing-manifests-payload", Layer.App, null, "has no payload file manifests.tar.gz",
            b => V(b, "x") with { OmitManifestsPayload = true });
        Add("empty-manifests", Layer.App, null, "holds no manifest files",
            b => V(b, "x") with { Manifests = [TarSpec.Dir("manifests/")] });
        Add("delta-base-missing", Layer.App, null, "is not on the device",
            b => V(b, "x") with { Images = ArtifactParts.ImageEntries(b.Image, urlCurrent: "appmodule/no-such-base:0", sumsCurrent: new string('b', 64)), MetaData = ArtifactParts.Meta(b.App, [b.Image.Id, new string('b', 64)]) });

        // ------------------------------------------------ accepted by app, rejected by the docker-compose sub-module's ROLLOUT
        // The device's host-access policy (default: none allowed), at the pre-check REQS and again at ROLLOUT.
        string Service(CorpusBase b, string extra) => b.Compose(b.Image.Url) + extra;
        Add("compose-mounts-host-root", Layer.SubModule, null, "mounts the host's root directory (/)",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - /:/host\n")) });
        Add("compose-mounts-host-root-long-syntax", Layer.SubModule, null, "mounts the host's root directory",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - type: bind\n        source: /\n        target: /host\n")) });
        Add("compose-mounts-host-root-through-dotdot", Layer.SubModule, null, "mounts the host's root directory",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - /etc/..:/host\n")) });
        Add("compose-mounts-docker-sock", Layer.SubModule, null, "mounts the engine socket or its directory /var/run/docker.sock",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n")) });
        Add("compose-mounts-run-directory", Layer.SubModule, null, "mounts the engine socket or its directory /run",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - /run:/hostrun\n")) });
        Add("compose-mounts-containerd-sock", Layer.SubModule, null, "mounts the engine socket or its directory /run/containerd/containerd.sock",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    volumes:\n      - /run/containerd/containerd.sock:/c.sock\n")) });
        Add("compose-privileged", Layer.SubModule, null, "is privileged (privileged: true): host access \"privileged\" is refused",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    privileged: true\n")) });
        Add("compose-host-pid", Layer.SubModule, null, "shares the host's PID namespace (pid: host)",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(Service(b, "    pid: host\n")) });
        Add("compose-host-network", Layer.SubModule, null, "shares the host's network namespace (network_mode: host)",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(b.Compose(b.Image.Url).Replace("    ports:\n      - \"127.0.0.1:", "    network_mode: host\n    expose:\n      - \"", StringComparison.Ordinal).Replace(":8080\"", "\"", StringComparison.Ordinal)) });
        Add("platform-arm64-artifact-on-an-amd64-engine", Layer.SubModule, null, "but the engine at",
            b =>
            {
                var (id, bytes) = SyntheticImage.Bytes(b.Image.Url, "\"architecture\":\"arm64\",\"os\":\"linux\"");
                return V(b, "x") with { MetaData = ArtifactParts.Meta(b.App, [id], platform: "linux/arm64"), Images = ArtifactParts.ImageEntries(b.Image.Url, id, bytes) };
            });
        Add("compose-image-not-in-artifact", Layer.SubModule, null, "ROLLOUT never pulls",
            b => V(b, "x") with { Manifests = ArtifactParts.ComposeManifests(b.Compose("appmodule/not-in-artifact:6.6")) });
        return c;
    }
}
