using Fleet.Core.Wire;

namespace Fleet.Core.Agent;

/// <summary>The answers to the last <see cref="Capacity"/> commands that carried an idempotency key: a command whose
/// key is here was already run (a re-send after an updater died) and is answered from here, not run again.
/// Bounded: the oldest key is forgotten first. Thread-safe.</summary>
public sealed class IdempotencyCache(int capacity = 4096)
{
    private readonly Dictionary<string, DockerCommandResponse> _answers = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();
    private readonly Lock _lock = new();

    public int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity), "the cache needs room for at least one key");

    public bool TryGet(string key, out DockerCommandResponse answer)
    {
        lock (_lock) return _answers.TryGetValue(key, out answer!);
    }

    public void Add(string key, DockerCommandResponse answer)
    {
        lock (_lock)
        {
            if (_answers.TryAdd(key, answer)) _order.Enqueue(key);
            else _answers[key] = answer;
            while (_order.Count > Capacity) _answers.Remove(_order.Dequeue());
        }
    }
}
