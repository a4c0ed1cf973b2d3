using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace TestSupport;

/// <summary>A private <c>redis-server</c> on a random loopback port, for one test class (IClassFixture) or
/// created directly with extra arguments (e.g. <c>--requirepass</c>, ACL <c>--user</c> lines).</summary>
public sealed class RedisServer : IDisposable
{
    private Process _process;
    private readonly string[] _args;
    private readonly string _server;
    public int Port { get; }
    public string Host => "127.0.0.1";

    public RedisServer() : this([], 0) { }

    /// <summary>A server started with extra arguments, e.g. <c>--requirepass pw</c>.</summary>
    public static RedisServer Start(params string[] extraArgs) => new(extraArgs, 0);

    /// <summary>A server that persists with an append-only file in <paramref name="dir"/> (fsync every write), so that
    /// <see cref="Restart"/> brings back its data as a production server would.</summary>
    public static RedisServer StartWithAof(string dir) => new(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir], 0);

    private RedisServer(IEnumerable<string> extraArgs, int _)
    {
        _server = Requires.Program("redis-server", "redis-server", "`apt-get install redis-server` (build/deps.sh does it)");
        Port = FreePort();
        _args = extraArgs.ToArray();
        _process = Launch();
    }

    private Process Launch()
    {
        var psi = new ProcessStartInfo(_server)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no" }.Concat(_args))
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {_server}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"redis-server exited with {process.ExitCode} at start (port {Port})");
            try
            {
                using var c = new TcpClient();
                c.Connect(IPAddress.Loopback, Port);
                break;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline) { Thread.Sleep(50); }
        }
        return process;
    }

    /// <summary>Stops the server with SIGTERM (it writes what it must and exits), then starts it again on the same
    /// port with the same arguments.</summary>
    public void Restart()
    {
        Stop();
        Start();
    }

    /// <summary>Stops the server with SIGTERM (it writes what it must and exits); <see cref="Start"/> brings it back.</summary>
    public void Stop()
    {
        Cmd.Run("kill", "-TERM", _process.Id.ToString());
        if (!_process.WaitForExit(30_000)) throw new TimeoutException($"redis-server on port {Port} did not stop within 30 s of SIGTERM");
    }

    /// <summary>Starts a stopped server again on the same port with the same arguments.</summary>
    public void Start()
    {
        if (!_process.HasExited) throw new InvalidOperationException($"redis-server on port {Port} is running");
        _process.Dispose();
        _process = Launch();
    }

    /// <summary>Runs redis-cli against this server and returns its stdout (for assertions on raw state).</summary>
    public string Cli(params string[] args)
    {
        var psi = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-h", Host, "-p", Port.ToString() }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output.TrimEnd('\n');
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
