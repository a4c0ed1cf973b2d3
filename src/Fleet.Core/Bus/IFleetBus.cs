namespace Fleet.Core.Bus;

/// <summary>The narrow slice of Redis that commlib's transport uses (fleet-wire.md section 1):
/// PUBLISH/SUBSCRIBE on literal channels and RPUSH/LPOP/LREM/DEL/EXPIRE on lists in one database.</summary>
public interface IFleetBus : IAsyncDisposable
{
    Task<long> PublishAsync(string channel, byte[] payload, CancellationToken ct);

    /// <summary>Subscribes to a literal channel. Messages are delivered in order to <paramref name="handler"/>;
    /// dispose the result to unsubscribe.</summary>
    Task<IAsyncDisposable> SubscribeAsync(string channel, Func<byte[], CancellationToken, Task> handler, CancellationToken ct);

    Task ListPushAsync(string key, byte[] value, CancellationToken ct);
    Task<byte[]?> ListPopAsync(string key, CancellationToken ct);

    /// <summary>LPOP on each key in one round trip (a script); a key that yielded a value is deleted. Results are in
    /// the order of <paramref name="keys"/>, null where the list was empty.</summary>
    Task<byte[]?[]> ListPopManyAndDeleteAsync(IReadOnlyList<string> keys, CancellationToken ct);
    Task<long> ListRemoveAsync(string key, byte[] value, CancellationToken ct);
    Task<long> ListLengthAsync(string key, CancellationToken ct);
    Task DeleteAsync(string key, CancellationToken ct);
    Task ExpireAsync(string key, TimeSpan ttl, CancellationToken ct);
}
