using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Fleet.Core.Observability;

/// <summary>A few Prometheus counters and histograms, rendered in the text exposition format.</summary>
public sealed class Metrics
{
    private readonly ConcurrentDictionary<(string Name, string Labels), long> _counters = new();
    private readonly ConcurrentDictionary<(string Name, string Labels), Histogram> _histograms = new();
    private readonly ConcurrentDictionary<(string Name, string Labels), double> _gauges = new();
    private readonly ConcurrentDictionary<string, string> _help = new();
    private static readonly double[] Buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public void Inc(string name, string help, string labels = "")
    {
        _help.TryAdd(name, help);
        _counters.AddOrUpdate((name, labels), 1, (_, v) => v + 1);
    }

    public void Add(string name, string help, long n, string labels = "")
    {
        _help.TryAdd(name, help);
        _counters.AddOrUpdate((name, labels), n, (_, v) => v + n);
    }

    public long Get(string name, string labels = "") => _counters.TryGetValue((name, labels), out var v) ? v : 0;

    /// <summary>Sets a gauge (a value that goes up and down, e.g. devices at a rollout's target).</summary>
    public void Set(string name, string help, double value, string labels = "")
    {
        _help.TryAdd(name, help);
        _gauges[(name, labels)] = value;
    }

    public double GetGauge(string name, string labels = "") => _gauges.TryGetValue((name, labels), out var v) ? v : 0;

    public void Observe(string name, string help, double seconds, string labels = "")
    {
        _help.TryAdd(name, help);
        _histograms.GetOrAdd((name, labels), _ => new Histogram()).Observe(seconds);
    }

    private sealed class Histogram
    {
        public readonly long[] Counts = new long[Buckets.Length];
        public long Count;
        public double Sum;
        public void Observe(double v)
        {
            lock (this)
            {
                for (int i = 0; i < Buckets.Length; i++) if (v <= Buckets[i]) Counts[i]++;
                Count++;
                Sum += v;
            }
        }
    }

    public string Render()
    {
        var sb = new StringBuilder();
        static string L(string labels, string extra = "") =>
            labels.Length == 0 && extra.Length == 0 ? "" : "{" + string.Join(',', new[] { labels, extra }.Where(s => s.Length > 0)) + "}";
        foreach (var g in _counters.GroupBy(k => k.Key.Name).OrderBy(g => g.Key))
        {
            sb.Append("# HELP ").Append(g.Key).Append(' ').Append(_help[g.Key]).Append('\n');
            sb.Append("# TYPE ").Append(g.Key).Append(" counter\n");
            foreach (var kv in g.OrderBy(k => k.Key.Labels)) sb.Append(g.Key).Append(L(kv.Key.Labels)).Append(' ').Append(kv.Value).Append('\n');
        }
        foreach (var g in _gauges.GroupBy(k => k.Key.Name).OrderBy(g => g.Key))
        {
            sb.Append("# HELP ").Append(g.Key).Append(' ').Append(_help[g.Key]).Append('\n');
            sb.Append("# TYPE ").Append(g.Key).Append(" gauge\n");
            foreach (var kv in g.OrderBy(k => k.Key.Labels)) sb.Append(g.Key).Append(L(kv.Key.Labels)).Append(' ').Append(kv.Value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        foreach (var g in _histograms.GroupBy(k => k.Key.Name).OrderBy(g => g.Key))
        {
            sb.Append("# HELP ").Append(g.Key).Append(' ').Append(_help[g.Key]).Append('\n');
            sb.Append("# TYPE ").Append(g.Key).Append(" histogram\n");
            foreach (var kv in g.OrderBy(k => k.Key.Labels))
            {
                var h = kv.Value;
                lock (h)
                {
                    for (int i = 0; i < Buckets.Length; i++)
                        sb.Append(g.Key).Append("_bucket").Append(L(kv.Key.Labels, "le=\"" + Buckets[i].ToString(CultureInfo.InvariantCulture) + "\"")).Append(' ').Append(h.Counts[i]).Append('\n');
                    sb.Append(g.Key).Append("_bucket").Append(L(kv.Key.Labels, "le=\"+Inf\"")).Append(' ').Append(h.Count).Append('\n');
                    sb.Append(g.Key).Append("_sum").Append(L(kv.Key.Labels)).Append(' ').Append(h.Sum.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                    sb.Append(g.Key).Append("_count").Append(L(kv.Key.Labels)).Append(' ').Append(h.Count).Append('\n');
                }
            }
        }
        return sb.ToString();
    }
}

/// <summary>Serves <c>GET /metrics</c> (and <c>GET /healthz</c> when <see cref="Health"/> is set) over minimal HTTP/1.1
/// on a TCP listener (no ASP.NET in an AOT binary).</summary>
public sealed class MetricsServer(Metrics metrics, IPEndPoint endpoint) : IAsyncDisposable
{
    /// <summary>Answers <c>/healthz</c>: a JSON body, 200 when healthy, else 503.</summary>
    public Func<CancellationToken, Task<(bool Healthy, string Json)>>? Health { get; init; }

    private readonly TcpListener _listener = new(endpoint);
    private readonly CancellationTokenSource _cts = new();
    private Task? _loop;

    public IPEndPoint LocalEndpoint => (IPEndPoint)_listener.LocalEndpoint;

    public static IPEndPoint ParseEndpoint(string text) =>
        IPEndPoint.TryParse(text, out var ep) ? ep : throw new FormatException($"metrics address '{text}' is not host:port (e.g. 127.0.0.1:9464)");

    public void Start()
    {
        _listener.Start();
        _loop = Task.Run(async () =>
        {
            while (!_cts.IsCancellationRequested)
            {
                TcpClient c;
                try { c = await _listener.AcceptTcpClientAsync(_cts.Token); }
                catch (Exception) { return; }
                _ = Task.Run(() => ServeAsync(c));
            }
        });
    }

    private async Task ServeAsync(TcpClient c)
    {
        using (c)
        {
            try
            {
                var stream = c.GetStream();
                using var reader = new StreamReader(stream, Encoding.ASCII, leaveOpen: true);
                var first = await reader.ReadLineAsync(_cts.Token) ?? "";
                while (!string.IsNullOrEmpty(await reader.ReadLineAsync(_cts.Token))) { }
                var parts = first.Split(' ');
                var path = parts.Length >= 2 && parts[0] == "GET" ? parts[1].Split('?')[0] : "";
                string status, type, text;
                if (path == "/metrics") (status, type, text) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.Render());
                else if (path == "/healthz" && Health is { } health)
                {
                    var (healthy, json) = await health(_cts.Token);
                    (status, type, text) = (healthy ? "200 OK" : "503 Service Unavailable", "application/json", json + "\n");
                }
                else (status, type, text) = ("404 Not Found", "text/plain; charset=utf-8", Health is null ? "not found; try /metrics\n" : "not found; try /metrics or /healthz\n");
                var body = Encoding.UTF8.GetBytes(text);
                var head = $"HTTP/1.1 {status}\r\nContent-Type: {type}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _cts.Token);
                await stream.WriteAsync(body, _cts.Token);
            }
            catch (Exception) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        if (_loop is not null) await _loop;
        _cts.Dispose();
    }
}
