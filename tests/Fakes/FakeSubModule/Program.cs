// fake-submodule: a tiny scriptable orchestrator sub-module for the `app` module's tests.
// It follows the reference argv contract (docs/sub-module-api.md) and keeps its "engine"
// in the directory $FAKE_SUBMODULE_DIR:
//   calls.log            one line per call: "CALL args... | platform=<MENDER_APP_UPDATE_MODULE_PLATFORM> [NAME=value for names in record-env]"
//   images/<url>         what LOAD read (SAVE writes it back, DELETE removes it)
//   running/<app>        manifests of the rolled-out application (ROLLOUT writes, STOP removes)
// Scripting:
//   fail-<CALL>          the call fails: prints the file's content on stderr, exits 1
//   record-env           variable names to log with every call
//   delay-<CALL>         seconds to sleep before doing the call (to stop `app` in the middle of a step)
//   a manifest file containing "health: bad"  -> HEALTHY fails while that composition runs
//   unhealthy-when-running  HEALTHY fails while the running manifests contain this file's text
//   a manifest file containing "rollout: fail" -> ROLLOUT fails
using System.Security.Cryptography;
using System.Text;

var dir = Environment.GetEnvironmentVariable("FAKE_SUBMODULE_DIR");
if (string.IsNullOrEmpty(dir))
{
    Console.Error.WriteLine("fake-submodule: FAKE_SUBMODULE_DIR is not set");
    return 2;
}

Directory.CreateDirectory(Path.Combine(dir, "images"));
Directory.CreateDirectory(Path.Combine(dir, "running"));
var call = args.Length > 0 ? args[0] : "";
var line = new StringBuilder(string.Join(' ', args));
line.Append(" | platform=").Append(Environment.GetEnvironmentVariable("MENDER_APP_UPDATE_MODULE_PLATFORM"));
var recordEnv = Path.Combine(dir, "record-env");
if (File.Exists(recordEnv))
{
    foreach (var name in File.ReadAllLines(recordEnv).Where(n => n.Length > 0))
    {
        line.Append(' ').Append(name).Append('=').Append(Environment.GetEnvironmentVariable(name) ?? "<unset>");
    }
}

// Urls may be pinned to an image ID ("ref@sha256:<id>"); the fake engine keys images by reference.
string Img(string url) => Path.Combine(dir, "images", Uri.EscapeDataString(url.Split('@')[0]));
string Run(string app) => Path.Combine(dir, "running", app);
int Fail(string message)
{
    File.AppendAllText(Path.Combine(dir, "calls.log"), line + " -> FAILED\n");
    Console.Error.WriteLine(message);
    return 1;
}

var delayFile = Path.Combine(dir, "delay-" + call);
if (File.Exists(delayFile))
{
    File.AppendAllText(Path.Combine(dir, "calls.log"), line + " -> started\n");
    Thread.Sleep(TimeSpan.FromSeconds(double.Parse(File.ReadAllText(delayFile).Trim(), System.Globalization.CultureInfo.InvariantCulture)));
}

var failFile = Path.Combine(dir, "fail-" + call);
if (File.Exists(failFile))
{
    return Fail(File.ReadAllText(failFile).Trim());
}

string Manifests(string manifestsDir) => string.Join("\n", Directory.EnumerateFiles(manifestsDir, "*", SearchOption.AllDirectories).Order().Select(f => File.ReadAllText(f)));

int Rollout(string app, string manifestsDir)
{
    var content = Manifests(manifestsDir);
    if (content.Contains("rollout: fail", StringComparison.Ordinal))
    {
        return Fail($"service web of {app} failed to start: exited with code 3");
    }

    File.WriteAllText(Run(app), manifestsDir + "\n" + content);
    return 0;
}

switch (call)
{
    case "REQS":
        break;
    case "LOAD":
        {
            using var input = File.OpenRead(args[3]);
            using var ms = new MemoryStream();
            input.CopyTo(ms);
            var bytes = ms.ToArray();
            File.WriteAllBytes(Img(args[2]), bytes);
            line.Append($" bytes={bytes.Length} sha256={Convert.ToHexStringLower(SHA256.HashData(bytes))[..12]}");
            Console.WriteLine($"Loaded image: {args[2]}");
            break;
        }

    case "SAVE":
        if (!File.Exists(Img(args[2])))
        {
            return Fail($"Error: No such image: {args[2]}");
        }

        File.Copy(Img(args[2]), args[3], overwrite: true);
        break;
    case "DELETE":
        if (!File.Exists(Img(args[1])))
        {
            return Fail($"Error: No such image: {args[1]}");
        }

        File.Delete(Img(args[1]));
        break;
    case "ROLLOUT":
        if (Rollout(args[1], args[2]) != 0)
        {
            return 1;
        }

        break;
    case "STOP":
        File.Delete(Run(args[1]));
        break;
    case "ROLLBACK":
        File.Delete(Run(args[1]));
        if (Rollout(args[1], args[2]) != 0)
        {
            return 1;
        }

        break;
    case "ALIVE":
        if (!File.Exists(Run(args[1])))
        {
            return Fail($"{args[1]} is not running");
        }

        break;
    case "HEALTHY":
        if (!File.Exists(Run(args[1])))
        {
            return Fail($"{args[1]} is not running");
        }

        var unhealthyWhen = Path.Combine(dir, "unhealthy-when-running");
        var runningText = File.ReadAllText(Run(args[1]));
        if (runningText.Contains("health: bad", StringComparison.Ordinal)
            || (File.Exists(unhealthyWhen) && runningText.Contains(File.ReadAllText(unhealthyWhen).Trim(), StringComparison.Ordinal)))
        {
            return Fail($"service web of {args[1]} is unhealthy: health check exited 1");
        }

        break;
    case "START" or "LS_COMPONENTS" or "EXPORT_MANIFEST" or "PURGE":
        break;
    default:
        Console.Error.WriteLine($"unknown call {call}");
        return 1;
}

File.AppendAllText(Path.Combine(dir, "calls.log"), line + "\n");
return 0;
