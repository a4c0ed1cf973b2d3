using System.Text;
using AppModule.Core.Compose;
using Kubernetes;
using SubModule.Hosting;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ArtifactGen;

/// <summary>Finds the images an application's manifests use (compose services or k8s container specs).</summary>
public static class ManifestImages
{
    /// <summary>The images of the services in the files Compose reads in <paramref name="dir"/> (<see cref="ComposeFiles.Merged"/>).</summary>
    public static IReadOnlyList<string> FromCompose(string dir)
    {
        var files = ComposeFiles.Merged(dir);
        if (files.Count == 0)
            throw new InputException($"no compose file in {dir}: add docker-compose.yml (or compose.yaml), or name the images with --image");
        var vars = Variables(dir);
        var services = new List<(string Service, string? Image)>();
        foreach (var f in files)
        {
            foreach (var doc in Load(f))
            {
                if (doc.RootNode is not YamlMappingNode root) continue;
                if (!root.Children.TryGetValue(new YamlScalarNode("services"), out var s) || s is not YamlMappingNode svcs) continue;
                foreach (var (k, v) in svcs.Children)
                {
                    var name = ((YamlScalarNode)k).Value ?? "";
                    string? image = v is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode("image"), out var i) && i is YamlScalarNode si ? si.Value : null;
                    var idx = services.FindIndex(x => x.Service == name);
                    if (idx >= 0) { if (image is not null) services[idx] = (name, image); }
                    else services.Add((name, image));
                }
            }
        }
        var result = new List<string>();
        foreach (var (svc, image) in services)
        {
            if (image is null)
                throw new InputException($"service \"{svc}\" in {dir} has no image: devices cannot build; build and tag the image, set image: in the compose file, or pass --image");
            var resolved = Interpolate(image, vars, $"service \"{svc}\" image");
            if (!result.Contains(resolved)) result.Add(resolved);
        }
        if (result.Count == 0)
            throw new InputException($"the compose files in {dir} define no services with images: add services or pass --image");
        return result;
    }

    /// <summary>
    /// The container images of the Kubernetes manifests under <paramref name="dir"/> (k8s, podman), read as the
    /// sub-modules read them: <see cref="Manifests.Load"/> and each object's pod template (<see cref="PodTemplates.Images"/>).
    /// </summary>
    public static IReadOnlyList<string> FromKubernetes(string dir)
    {
        IReadOnlyList<ManifestObject> objects;
        try
        {
            objects = Manifests.Load(dir);
        }
        catch (SubModuleFailure e)
        {
            throw new InputException($"the k8s manifests under {dir} cannot be read: {e.Message.Replace("; nothing was applied", "", StringComparison.Ordinal)}: fix them");
        }
        var result = objects.SelectMany(o => PodTemplates.Images(o.Body)).Distinct(StringComparer.Ordinal).ToList();
        if (result.Count == 0)
            throw new InputException($"no container images found in the k8s manifests under {dir}: add manifests with containers, or pass --image");
        return result;
    }

    private static IEnumerable<YamlDocument> Load(string file)
    {
        var ys = new YamlStream();
        try
        {
            using var r = new StreamReader(file, Encoding.UTF8);
            ys.Load(new MergingParser(new Parser(r)));
        }
        catch (YamlException e)
        {
            throw new InputException($"{file} is not valid YAML (line {e.Start.Line}: {e.Message.ReplaceLineEndings(" ")}): fix the file");
        }
        return ys.Documents;
    }

    /// <summary>Variables for compose interpolation: the process environment, overridden by nothing, with
    /// <c>.env</c> in the manifests directory filling in what the environment lacks (compose's precedence).</summary>
    private static Dictionary<string, string> Variables(string dir)
    {
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        var envFile = Path.Combine(dir, ".env");
        if (File.Exists(envFile))
        {
            foreach (var raw in File.ReadAllLines(envFile))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line.StartsWith('#')) continue;
                if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
                int eq = line.IndexOf('=');
                if (eq <= 0) continue;
                var v = line[(eq + 1)..].Trim();
                if (v.Length >= 2 && (v[0] == '"' && v[^1] == '"' || v[0] == '\'' && v[^1] == '\'')) v = v[1..^1];
                vars[line[..eq].Trim()] = v;
            }
        }
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            vars[(string)e.Key] = (string?)e.Value ?? "";
        return vars;
    }

    /// <summary>Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}.</summary>
    public static string Interpolate(string s, IReadOnlyDictionary<string, string> vars, string what)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '$') { sb.Append(s[i]); continue; }
            if (i + 1 < s.Length && s[i + 1] == '$') { sb.Append('$'); i++; continue; }
            if (i + 1 < s.Length && s[i + 1] == '{')
            {
                int end = s.IndexOf('}', i + 2);
                if (end < 0) throw new InputException($"{what} \"{s}\" has an unclosed ${{: fix the compose file");
                var expr = s[(i + 2)..end];
                int op = expr.IndexOfAny([':', '-', '?']);
                string name = op < 0 ? expr : expr[..op];
                string? value = vars.TryGetValue(name, out var v) ? v : null;
                if (op >= 0)
                {
                    bool colon = expr[op] == ':';
                    char kind = colon ? (op + 1 < expr.Length ? expr[op + 1] : '-') : expr[op];
                    string arg = expr[(op + (colon ? 2 : 1))..];
                    bool missing = value is null || (colon && value.Length == 0);
                    if (kind == '-' && missing) value = arg;
                    else if (kind == '?' && missing)
                        throw new InputException($"{what} needs variable {name}: {arg} (set it in the environment or in .env)");
                }
                if (value is null)
                    throw new InputException($"{what} \"{s}\" uses ${{{name}}}, which is not set: export it or put it in .env next to the compose file");
                sb.Append(value);
                i = end;
                continue;
            }
            int j = i + 1;
            while (j < s.Length && (char.IsAsciiLetterOrDigit(s[j]) || s[j] == '_')) j++;
            if (j == i + 1) { sb.Append('$'); continue; }
            var n = s[(i + 1)..j];
            sb.Append(vars.TryGetValue(n, out var val) ? val : throw new InputException($"{what} \"{s}\" uses ${n}, which is not set: export it or put it in .env next to the compose file"));
            i = j - 1;
        }
        return sb.ToString();
    }
}
