using System.Text.Json;
using System.Text.RegularExpressions;

namespace AppModule.Core.Store;

/// <summary>
/// The persistent store (default /data/mender-app): one directory per application holding
/// <c>state.json</c> (replaced atomically), <c>journal.log</c> (append-only, one JSON line per
/// transition) and one immutable directory per composition (<c>c-000001/</c> with
/// <c>composition.json</c> and <c>manifests/</c>). A composition directory is written under a
/// temporary name, synced, then renamed into place; the state only ever names complete compositions.
/// Every transition goes through <see cref="Transition"/>, which writes the journal line after the
/// new state is durable, so the state is the truth and the journal its history.
/// </summary>
public sealed partial class AppStore
{
    private const string StateFile = "state.json";
    private const string JournalFile = "journal.log";
    private const string CompositionFile = "composition.json";
    private const string ManifestsDir = "manifests";

    public AppStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    [GeneratedRegex("^[A-Za-z0-9_-]+\\z")]
    private static partial Regex AppNameRx();

    public string ApplicationDir(string application)
    {
        if (!AppNameRx().IsMatch(application))
        {
            throw new StoreException($"\"{application}\" is not a valid application name (letters, digits, '_' and '-')");
        }

        return Path.Combine(Root, application);
    }

    /// <summary>Applications that have a state in the store.</summary>
    public IReadOnlyList<string> Applications() =>
        Directory.Exists(Root)
            ? Directory.EnumerateDirectories(Root).Where(d => File.Exists(Path.Combine(d, StateFile))).Select(Path.GetFileName).Select(n => n!).Order(StringComparer.Ordinal).ToArray()
            : [];

    public AppState Load(string application)
    {
        var path = Path.Combine(ApplicationDir(application), StateFile);
        if (!File.Exists(path))
        {
            return AppState.Empty(application);
        }

        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), StoreJson.Default.AppState)
                   ?? throw new StoreException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new StoreException($"{path} is not a valid state file ({e.Message}); restore it from the journal next to it or remove the application's directory");
        }
    }

    /// <summary>Makes <paramref name="next"/> the application's state (atomically) and journals the event.</summary>
    public AppState Transition(AppState next, string @event, string detail = "")
    {
        var dir = ApplicationDir(next.Application);
        Directory.CreateDirectory(dir);
        Durable.WriteAllText(Path.Combine(dir, StateFile), JsonSerializer.Serialize(next, StoreJson.Default.AppState));
        Durable.AppendLine(Path.Combine(dir, JournalFile), JsonSerializer.Serialize(new JournalEntry(DateTimeOffset.UtcNow, @event, detail), StoreJson.Default.JournalEntry).ReplaceLineEndings(" "));
        return next;
    }

    public IReadOnlyList<JournalEntry> Journal(string application)
    {
        var path = Path.Combine(ApplicationDir(application), JournalFile);
        if (!File.Exists(path))
        {
            return [];
        }

        var entries = new List<JournalEntry>();
        foreach (var line in File.ReadLines(path))
        {
            try
            {
                if (JsonSerializer.Deserialize(line, StoreJson.Default.JournalEntry) is { } e)
                {
                    entries.Add(e);
                }
            }
            catch (JsonException)
            {
                // a torn last line after a crash: ignore it
            }
        }

        return entries;
    }

    /// <summary>
    /// Stores a new composition: <paramref name="fillManifests"/> writes the manifests into the given
    /// directory; everything is synced and renamed into place. Returns the composition as stored.
    /// </summary>
    public Composition CreateComposition(AppState state, Composition draft, Action<string> fillManifests, out AppState advanced)
    {
        var dir = ApplicationDir(state.Application);
        Directory.CreateDirectory(dir);
        var seq = state.NextSequence;
        string id;
        while (Directory.Exists(Path.Combine(dir, id = $"c-{seq:D6}")))
        {
            seq++;
        }

        var composition = draft with { Id = id, Application = state.Application };
        var tmp = Path.Combine(dir, $".{id}.tmp-{Environment.ProcessId}");
        if (Directory.Exists(tmp))
        {
            Directory.Delete(tmp, recursive: true);
        }

        Directory.CreateDirectory(Path.Combine(tmp, ManifestsDir));
        fillManifests(Path.Combine(tmp, ManifestsDir));
        File.WriteAllText(Path.Combine(tmp, CompositionFile), JsonSerializer.Serialize(composition, StoreJson.Default.Composition));
        Durable.SyncTree(tmp);
        Directory.Move(tmp, Path.Combine(dir, id));
        Durable.SyncDirectory(dir);
        advanced = state with { NextSequence = seq + 1 };
        return composition;
    }

    public Composition ReadComposition(string application, string id)
    {
        var path = Path.Combine(ApplicationDir(application), id, CompositionFile);
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), StoreJson.Default.Composition)
                   ?? throw new StoreException($"{path} is empty");
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            throw new StoreException($"cannot read composition {path} ({e.Message}); the store is damaged: remove the application's directory and reinstall it");
        }
    }

    public string ManifestsOf(string application, string id) => Path.Combine(ApplicationDir(application), id, ManifestsDir);

    /// <summary>Removes a composition's directory (rename first, so a crash never leaves half a composition under its real name).</summary>
    public void DeleteComposition(string application, string id)
    {
        var dir = Path.Combine(ApplicationDir(application), id);
        if (!Directory.Exists(dir))
        {
            return;
        }

        var doomed = Path.Combine(ApplicationDir(application), $".{id}.deleted-{Environment.ProcessId}");
        Directory.Move(dir, doomed);
        Durable.SyncDirectory(ApplicationDir(application));
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>Removes leftovers of interrupted writes and deletions (names starting with '.').</summary>
    public void RemoveLeftovers(string application)
    {
        var dir = ApplicationDir(application);
        if (!Directory.Exists(dir))
        {
            return;
        }

        foreach (var d in Directory.EnumerateDirectories(dir, ".*"))
        {
            Directory.Delete(d, recursive: true);
        }
    }

    /// <summary>Every image (URL and ID) some kept composition (current, rollback, running, pending) of ANY application uses.</summary>
    public HashSet<ImageRef> ImagesInUse()
    {
        var used = new HashSet<ImageRef>();
        foreach (var app in Applications())
        {
            var state = Load(app);
            foreach (var id in state.Kept())
            {
                if (Directory.Exists(Path.Combine(ApplicationDir(app), id)))
                {
                    foreach (var image in ReadComposition(app, id).Images)
                    {
                        used.Add(image);
                    }
                }
            }
        }

        return used;
    }

    /// <summary>Takes the store's lock (one state call at a time across processes); waits up to <paramref name="timeout"/>.</summary>
    public IDisposable Lock(TimeSpan timeout)
    {
        Directory.CreateDirectory(Root);
        var path = Path.Combine(Root, ".lock");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
            catch (IOException e)
            {
                throw new StoreException($"the store {Root} is locked by another `app` process ({e.Message}); wait for it to finish");
            }
        }
    }
}

/// <summary>The store cannot be read or written; the message names the file and the fix.</summary>
public sealed class StoreException(string message) : Exception(message);
