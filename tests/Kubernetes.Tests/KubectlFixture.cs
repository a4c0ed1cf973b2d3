using System.Text.RegularExpressions;
using FakeKubeApi;

namespace Kubernetes.Tests;

/// <summary>
/// The fake API server over HTTPS (kubectl sends its bearer token only over TLS) with a kubeconfig,
/// and the real <c>kubectl</c> (installed by build/deps.sh) pointed at it with a private discovery
/// cache, so that the conformance tests drive the fake only as an operator would.
/// </summary>
public sealed partial class KubectlFixture : IDisposable
{
    public KubectlFixture()
    {
        var kubectl = Environment.GetEnvironmentVariable("KUBECTL") is { Length: > 0 } set && File.Exists(set) ? set : Requires.Which("kubectl");
        Unavailable = kubectl is null ? "`kubectl` is not on PATH: run build/deps.sh (it installs the kubectl package), or set KUBECTL to its path" : null;
        Kubectl = kubectl ?? "kubectl";
        Api = FakeKubeApiServer.StartAsync(https: true).GetAwaiter().GetResult();
        KubeConfig = Api.WriteKubeConfig(Dir.File("kubeconfig"));
    }

    public string Kubectl { get; }

    /// <summary>Why kubectl cannot be run here, or null; <see cref="Run"/> hands it to <see cref="Requires"/>.</summary>
    public string? Unavailable { get; }

    public TempDir Dir { get; } = new("kubectl-conformance");

    public FakeKubeApiServer Api { get; }

    public string KubeConfig { get; }

    /// <summary>Runs kubectl against the fake (its kubeconfig, a private cache and HOME, no colour, no plugins).</summary>
    public CmdResult Run(params string[] args)
    {
        Requires.Component("kubectl", Unavailable);
        var env = new Dictionary<string, string?>
        {
            ["KUBECONFIG"] = KubeConfig,
            ["KUBECACHEDIR"] = Dir.Dir("cache"),
            ["HOME"] = Dir.Dir("home"),
            ["KUBECTL_EXTERNAL_DIFF"] = null,
            ["KUBE_EDITOR"] = null,
            ["NO_COLOR"] = "1",
        };
        return Cmd.Run(Kubectl, args, env, timeout: TimeSpan.FromMinutes(1));
    }

    /// <summary>kubectl must succeed; returns its stdout.</summary>
    public string Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, $"kubectl {string.Join(' ', args)} should succeed: {r}");
        return r.Stdout;
    }

    /// <summary>kubectl must fail; returns its stderr.</summary>
    public string Fails(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode != 0, $"kubectl {string.Join(' ', args)} should fail: {r}");
        return r.Stderr;
    }

    /// <summary>The rows of kubectl's table output, each as column header → cell.</summary>
    public static List<Dictionary<string, string>> Table(string output)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        var header = lines[0];
        var starts = Columns().Matches(header).Select(m => m.Index).ToList();
        var names = starts.Select((s, i) => header[s..(i + 1 < starts.Count ? starts[i + 1] : header.Length)].Trim()).ToList();
        return lines.Skip(1).Select(line => names.Select((n, i) => (n, Cell(line, starts, i))).ToDictionary(p => p.n, p => p.Item2)).ToList();
    }

    public static IReadOnlyList<string> Headers(string output) =>
        Columns().Matches(output.Split('\n')[0]).Select(m => m.Value.Trim()).ToList();

    private static string Cell(string line, List<int> starts, int i)
    {
        if (starts[i] >= line.Length)
        {
            return string.Empty;
        }

        var end = i + 1 < starts.Count ? Math.Min(starts[i + 1], line.Length) : line.Length;
        return line[starts[i]..end].Trim();
    }

    // A header is words separated by single spaces ("ACCESS MODES"); columns are separated by two or more.
    [GeneratedRegex(@"\S+(?: \S+)*")]
    private static partial Regex Columns();

    public void Dispose()
    {
        Api.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Dir.Dispose();
    }
}

[CollectionDefinition("kubectl")]
public sealed class KubectlCollection : ICollectionFixture<KubectlFixture>;
