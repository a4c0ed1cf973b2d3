using AppModule.Artifacts;

namespace ArtifactGen;

/// <summary>A requested image: <c>--image [current,]new</c>. Current == New for a full image.</summary>
public sealed record ImageRequest(string Current, string New)
{
    public bool IsDelta => Current != New;
}

public sealed record GenOptions
{
    public string ArtifactName { get; init; } = "";
    public List<string> DeviceTypes { get; } = [];
    public string OutputPath { get; init; } = "app-artifact.mender";
    public List<ImageRequest> Images { get; } = [];
    public bool DeepDelta { get; init; }

    /// <summary>A delta (of a layer, or of a whole image) is shipped only when it is smaller than this fraction
    /// of what it replaces; otherwise the layer or image goes whole (no base needed, nothing to decode on the device).</summary>
    public double DeltaMaxRatio { get; init; } = 1.0;
    public bool SkipImages { get; init; }
    public string Platform { get; init; } = "";
    public string Orchestrator { get; init; } = "";
    public string ManifestsDir { get; init; } = "";
    public string ApplicationName { get; init; } = "";
    public string? K8sNamespace { get; init; }
    public string? K8sCtrAddress { get; init; }
    public List<KeyValuePair<string, string>> Provides { get; } = [];
    public List<KeyValuePair<string, string>> Depends { get; } = [];
    public List<string> ClearsProvides { get; } = [];
    public string? SoftwareName { get; init; }
    public string? SoftwareVersion { get; init; }
    public bool NoDefaultSoftwareVersion { get; init; }
    public bool NoDefaultClearsProvides { get; init; }
    public string? ArtifactGroup { get; init; }
    public ArtifactCompression Compression { get; init; } = ArtifactCompression.Gzip;
    public string? KeyPath { get; init; }
    public List<string> ImageFiles { get; } = [];
    public bool Json { get; init; }
    public bool Quiet { get; init; }
    public bool Help { get; init; }

    public const string Usage = """
        app-gen: write a Mender artifact for the App Update Module (payload type "app"), natively and offline.

        Usage: app-gen [options]

          -n, --artifact-name NAME        artifact name (required)
          -t, --device-type TYPE          compatible device type (required, repeatable)
          -o, --output-path FILE          output file (default: app-artifact.mender); written atomically
          -a, --application-name NAME     application name on the device: letters, digits, '_' and '-' (required)
          -r, --orchestrator NAME         sub-module name: docker-compose, k8s or podman (required)
          -p, --platform OS/ARCH[/VAR]    platform of the images, e.g. linux/amd64 (required)
          -m, --manifests-dir DIR         compose file or Kubernetes manifests (k8s, podman) of the application (required)
          -i, --image [CURRENT,]NEW       image to ship (repeatable); with CURRENT, a delta against it.
                                          Without --image, the images come from the manifests.
          -d, --deep-delta                per-layer deltas instead of whole-image deltas (docker-compose)
              --delta-max-ratio R         ship a layer (deep delta) or image (whole-image delta) whole unless its
                                          delta is smaller than R times its size (0 < R <= 1, default 1: a delta
                                          is never bigger than what it replaces); --json reports each choice
              --skip-images               ship manifests only
              --image-file PATH           take images from a docker-archive tar or OCI layout dir (repeatable)
                                          before asking the local Docker engine
          -s, --k8s-namespace NS          k8s: target namespace (meta-data env K8S_NAMESPACE)
          -c, --k8s-ctr-address SOCK      k8s: containerd address (meta-data env K8S_CTR_ADDRESS)
              --software-name NAME        provides rootfs-image.NAME.version (default: application name)
              --software-version VER      its value (default: the artifact name)
              --no-default-software-version, --no-default-clears-provides
              --provides KEY:VALUE        extra type-info provides (repeatable)
              --depends KEY:VALUE         type-info depends (repeatable)
              --clears-provides PATTERN   extra clears_artifact_provides (repeatable)
          -g, --artifact-group GROUP      artifact group (provides)
              --compression none|gzip|lzma   header and data compression (default gzip)
          -k, --key PEM                   sign with an RSA (PKCS#1) or EC P-256 (SEC1) private key
              --json                      print a JSON summary on stdout
          -q, --quiet                     no progress on stderr
          -h, --help                      this help

        Exit codes: 0 ok, 2 usage, 3 invalid input, 4 image unavailable, 5 delta failed,
        6 output not writable, 1 internal error, 130 cancelled.
        """;

    public static GenOptions Parse(string[] args)
    {
        var o = new GenOptions();
        string? artifactName = null, output = null, platform = null, orchestrator = null, manifests = null, app = null,
            ns = null, ctr = null, swName = null, swVersion = null, group = null, key = null;
        bool deep = false, skip = false, json = false, quiet = false, help = false, noSw = false, noClears = false;
        var compression = ArtifactCompression.Gzip;
        double deltaMaxRatio = 1.0;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string? inline = null;
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Contains('='))
            {
                inline = a[(a.IndexOf('=') + 1)..];
                a = a[..a.IndexOf('=')];
            }
            string Value()
            {
                if (inline is not null) return inline;
                if (i + 1 >= args.Length || args[i + 1].Length == 0)
                    throw new UsageException($"option {a} needs a value (see app-gen --help)");
                return args[++i];
            }
            switch (a)
            {
                case "-n": case "--artifact-name": artifactName = Value(); break;
                case "-t": case "--device-type": o.DeviceTypes.Add(Value()); break;
                case "-o": case "--output-path": case "--output_path": output = Value(); break;
                case "-a": case "--application-name": app = Value(); break;
                case "-r": case "--orchestrator": orchestrator = Value(); break;
                case "-p": case "--platform": platform = Value(); break;
                case "-m": case "--manifests-dir": manifests = Value(); break;
                case "-i":
                case "--image":
                    {
                        var v = Value();
                        var parts = v.Split(',');
                        if (parts.Length > 2 || parts.Any(p => p.Trim().Length == 0))
                            throw new UsageException($"--image {v}: give NEW or CURRENT,NEW (image references, no spaces)");
                        o.Images.Add(parts.Length == 2 ? new ImageRequest(parts[0].Trim(), parts[1].Trim()) : new ImageRequest(parts[0].Trim(), parts[0].Trim()));
                        break;
                    }
                case "-d": case "--deep-delta": deep = true; break;
                case "--delta-max-ratio":
                    {
                        var v = Value();
                        if (!double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out deltaMaxRatio)
                            || !(deltaMaxRatio > 0 && deltaMaxRatio <= 1))
                            throw new UsageException($"--delta-max-ratio {v}: give a number above 0 and at most 1, e.g. 0.8");
                        break;
                    }
                case "--skip-images": skip = true; break;
                case "--image-file": o.ImageFiles.Add(Value()); break;
                case "-s": case "--k8s-namespace": ns = Value(); break;
                case "-c": case "--k8s-ctr-address": ctr = Value(); break;
                case "--software-name": swName = Value(); break;
                case "--software-version": swVersion = Value(); break;
                case "--no-default-software-version": noSw = true; break;
                case "--no-default-clears-provides": noClears = true; break;
                case "--provides": o.Provides.Add(KeyValue(a, Value())); break;
                case "--depends": o.Depends.Add(KeyValue(a, Value())); break;
                case "--clears-provides": o.ClearsProvides.Add(Value()); break;
                case "-g": case "--artifact-group": group = Value(); break;
                case "--compression":
                    {
                        var v = Value();
                        if (!AppModule.Artifacts.Compression.TryParse(v, out compression))
                            throw new UsageException($"--compression {v}: use none, gzip or lzma");
                        break;
                    }
                case "-k": case "--key": key = Value(); break;
                case "--json": json = true; break;
                case "-q": case "--quiet": quiet = true; break;
                case "-h": case "--help": help = true; break;
                case "--":
                    throw new UsageException("passing options through to mender-artifact ('--') is not supported: app-gen writes the artifact itself; use --provides, --depends, --clears-provides, --software-name/--software-version, --compression or --key");
                default:
                    throw new UsageException(a.StartsWith('-') ? $"unknown option {a} (see app-gen --help)" : $"unexpected argument \"{a}\" (see app-gen --help)");
            }
        }
        var opts = o with
        {
            ArtifactName = artifactName ?? "",
            OutputPath = output ?? o.OutputPath,
            Platform = platform ?? "",
            Orchestrator = orchestrator ?? "",
            ManifestsDir = manifests ?? "",
            ApplicationName = app ?? "",
            K8sNamespace = ns,
            K8sCtrAddress = ctr,
            SoftwareName = swName,
            SoftwareVersion = swVersion,
            ArtifactGroup = group,
            DeepDelta = deep,
            DeltaMaxRatio = deltaMaxRatio,
            SkipImages = skip,
            Json = json,
            Quiet = quiet,
            Help = help,
            Compression = compression,
            KeyPath = key,
            NoDefaultSoftwareVersion = noSw,
            NoDefaultClearsProvides = noClears,
        };
        // `with` copies the list references, so the lists filled above carry over.
        if (opts.Help) return opts;
        if (opts.ArtifactName.Length == 0) throw new UsageException("artifact name not specified: add --artifact-name NAME");
        if (opts.DeviceTypes.Count == 0) throw new UsageException("device type not specified: add --device-type TYPE (repeatable)");
        if (opts.Orchestrator.Length == 0) throw new UsageException("orchestrator not specified: add --orchestrator docker-compose (or k8s)");
        if (opts.Platform.Length == 0) throw new UsageException("platform not specified: add --platform linux/amd64 (the devices' OS/architecture)");
        if (opts.ManifestsDir.Length == 0) throw new UsageException("directory containing manifests not specified: add --manifests-dir DIR");
        if (opts.ApplicationName.Length == 0) throw new UsageException("application name not specified: add --application-name NAME");
        if (opts.SkipImages && opts.Images.Count > 0) throw new UsageException("--skip-images and --image contradict each other: drop one");
        return opts;
    }

    private static KeyValuePair<string, string> KeyValue(string opt, string v)
    {
        int c = v.IndexOf(':');
        if (c <= 0) throw new UsageException($"{opt} {v}: give KEY:VALUE");
        return new(v[..c], v[(c + 1)..]);
    }
}
