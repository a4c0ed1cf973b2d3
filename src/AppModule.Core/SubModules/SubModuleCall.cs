namespace AppModule.Core.SubModules;

/// <summary>
/// One call of the orchestrator sub-module API, as the archived shell reference passes it on the
/// command line (see docs/sub-module-api.md): <c>&lt;sub-module&gt; &lt;CALL&gt; args...</c>.
/// The same records are built by the <c>app</c> module and parsed by the sub-modules, so the argv
/// contract lives in one place.
/// </summary>
public abstract record SubModuleCall
{
    public abstract string Name { get; }

    /// <summary>The argv after the executable name.</summary>
    public abstract IReadOnlyList<string> ToArgs();

    public override string ToString() => string.Join(' ', ToArgs());

    /// <summary>All call names, in the order of the seed's API list.</summary>
    public static readonly IReadOnlyList<string> Names =
        ["LOAD", "SAVE", "LS_COMPONENTS", "DELETE", "ROLLOUT", "ROLLBACK", "STOP", "START", "PURGE", "EXPORT_MANIFEST", "ALIVE", "HEALTHY", "REQS", "STORAGE"];

    /// <summary>
    /// Parses argv (after the executable name). Throws <see cref="SubModuleUsageException"/> with the
    /// expected form when the call is unknown or has the wrong number of arguments.
    /// </summary>
    public static SubModuleCall Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0)
        {
            throw new SubModuleUsageException($"no call given; expected one of {string.Join(", ", Names)}");
        }

        var call = args[0];
        var a = args.Skip(1).ToArray();
        return call switch
        {
            "LOAD" => Need(call, a, 3, 4, "<application> <url-new> <file> [<url-current>]", x => new Load(x[0], x[1], x[2], x.Length > 3 ? x[3] : x[1])),
            "SAVE" => Need(call, a, 3, 3, "<application> <url> <output-file>", x => new Save(x[0], x[1], x[2])),
            "DELETE" => Need(call, a, 1, 2, "<url> [<application>]", x => new Delete(x[0], x.Length > 1 ? x[1] : null)),
            "ROLLOUT" => Need(call, a, 2, 2, "<application> <manifests-dir>", x => new Rollout(x[0], x[1])),
            "ROLLBACK" => Need(call, a, 2, 3, "<application> <rollback-dir> [<failed-dir>]", x => new Rollback(x[0], x[1], x.Length > 2 ? x[2] : null)),
            "STOP" => Need(call, a, 1, 2, "<application> [<manifests-dir>]", x => new Stop(x[0], x.Length > 1 ? x[1] : null)),
            "START" => Need(call, a, 1, 2, "<application> [<manifests-dir>]", x => new Start(x[0], x.Length > 1 ? x[1] : null)),
            "ALIVE" => Need(call, a, 1, 1, "<application>", x => new Alive(x[0])),
            "HEALTHY" => Need(call, a, 1, 1, "<application>", x => new Healthy(x[0])),
            "LS_COMPONENTS" => Need(call, a, 1, 1, "<application>", x => new LsComponents(x[0])),
            "EXPORT_MANIFEST" => Need(call, a, 2, 2, "<application> <output-dir>", x => new ExportManifest(x[0], x[1])),
            "PURGE" => Need(call, a, 1, 1, "<application>", x => new Purge(x[0])),
            "REQS" => Need(call, a, 0, 0, string.Empty, _ => new Reqs()),
            "STORAGE" => Need(call, a, 0, 0, string.Empty, _ => new Storage()),
            _ => throw new SubModuleUsageException($"unknown call \"{call}\"; expected one of {string.Join(", ", Names)}"),
        };
    }

    private static SubModuleCall Need(string call, string[] a, int min, int max, string form, Func<string[], SubModuleCall> make)
    {
        if (a.Length < min || a.Length > max)
        {
            throw new SubModuleUsageException($"{call} takes {form}".TrimEnd() + $"; got {a.Length} argument(s)");
        }

        return make(a);
    }

    /// <summary>Load a component (image) from a file. <c>UrlCurrent</c> equals <c>UrlNew</c> for a full image.</summary>
    public sealed record Load(string Application, string UrlNew, string File, string UrlCurrent) : SubModuleCall
    {
        public override string Name => "LOAD";

        public override IReadOnlyList<string> ToArgs() => [Name, Application, UrlNew, File, UrlCurrent];
    }

    public sealed record Save(string Application, string Url, string OutputFile) : SubModuleCall
    {
        public override string Name => "SAVE";

        public override IReadOnlyList<string> ToArgs() => [Name, Application, Url, OutputFile];
    }

    /// <summary>The reference passes only the url; the application name is optional after it.</summary>
    public sealed record Delete(string Url, string? Application) : SubModuleCall
    {
        public override string Name => "DELETE";

        public override IReadOnlyList<string> ToArgs() => Application is null ? [Name, Url] : [Name, Url, Application];
    }

    public sealed record Rollout(string Application, string ManifestsDirectory) : SubModuleCall
    {
        public override string Name => "ROLLOUT";

        public override IReadOnlyList<string> ToArgs() => [Name, Application, ManifestsDirectory];
    }

    public sealed record Rollback(string Application, string RollbackDirectory, string? FailedDirectory) : SubModuleCall
    {
        public override string Name => "ROLLBACK";

        public override IReadOnlyList<string> ToArgs() =>
            FailedDirectory is null ? [Name, Application, RollbackDirectory] : [Name, Application, RollbackDirectory, FailedDirectory];
    }

    public sealed record Stop(string Application, string? ManifestsDirectory) : SubModuleCall
    {
        public override string Name => "STOP";

        public override IReadOnlyList<string> ToArgs() => ManifestsDirectory is null ? [Name, Application] : [Name, Application, ManifestsDirectory];
    }

    public sealed record Start(string Application, string? ManifestsDirectory) : SubModuleCall
    {
        public override string Name => "START";

        public override IReadOnlyList<string> ToArgs() => ManifestsDirectory is null ? [Name, Application] : [Name, Application, ManifestsDirectory];
    }

    public sealed record Alive(string Application) : SubModuleCall
    {
        public override string Name => "ALIVE";

        public override IReadOnlyList<string> ToArgs() => [Name, Application];
    }

    public sealed record Healthy(string Application) : SubModuleCall
    {
        public override string Name => "HEALTHY";

        public override IReadOnlyList<string> ToArgs() => [Name, Application];
    }

    public sealed record LsComponents(string Application) : SubModuleCall
    {
        public override string Name => "LS_COMPONENTS";

        public override IReadOnlyList<string> ToArgs() => [Name, Application];
    }

    public sealed record ExportManifest(string Application, string OutputDirectory) : SubModuleCall
    {
        public override string Name => "EXPORT_MANIFEST";

        public override IReadOnlyList<string> ToArgs() => [Name, Application, OutputDirectory];
    }

    public sealed record Purge(string Application) : SubModuleCall
    {
        public override string Name => "PURGE";

        public override IReadOnlyList<string> ToArgs() => [Name, Application];
    }

    public sealed record Reqs : SubModuleCall
    {
        public override string Name => "REQS";

        public override IReadOnlyList<string> ToArgs() => [Name];
    }

    /// <summary>
    /// Ours (the reference shell sub-modules answer "unknown call"): prints <see cref="EngineStorage"/> as
    /// JSON on stdout: the engine's data root, its free space, the layers and images it holds. Read-only.
    /// </summary>
    public sealed record Storage : SubModuleCall
    {
        public override string Name => "STORAGE";

        public override IReadOnlyList<string> ToArgs() => [Name];
    }
}

/// <summary>The command line does not follow the sub-module argv contract.</summary>
public sealed class SubModuleUsageException(string message) : Exception(message);

/// <summary>One entry of LS_COMPONENTS output (seed 004): type image|binary|deb-package, url, optional extra data.</summary>
public sealed record Component(string Type, string Url, IReadOnlyDictionary<string, string>? AdditionalData = null);
