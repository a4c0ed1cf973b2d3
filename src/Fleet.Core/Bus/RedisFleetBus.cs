using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using StackExchange.Redis;

namespace Fleet.Core.Bus;

/// <summary><see cref="IFleetBus"/> over one StackExchange.Redis multiplexer (fleet-wire.md section 9).</summary>
public sealed class RedisFleetBus : IFleetBus
{
    private readonly ConnectionMultiplexer _mux;
    private readonly IDatabase _db;
    private readonly ISubscriber _sub;

    /// <summary>The database commlib's lists live in; the fleet state (streams, hashes, scripts) uses it too.</summary>
    public IDatabase Database => _db;

    private RedisFleetBus(ConnectionMultiplexer mux, int db)
    {
        _mux = mux;
        _db = mux.GetDatabase(db);
        _sub = mux.GetSubscriber();
    }

    public static async Task<RedisFleetBus> ConnectAsync(RedisOptions o, CancellationToken ct)
    {
        var cfg = new ConfigurationOptions
        {
            EndPoints = { { o.Host, o.Port } },
            DefaultDatabase = o.Db,
            User = o.User,
            Password = o.Password,
            Ssl = o.Tls,
            SslHost = o.TlsServerName ?? (o.Tls ? o.Host : null),
            AbortOnConnectFail = true,
            ConnectTimeout = (int)o.ConnectTimeout.TotalMilliseconds,
            ConnectRetry = 2,
            ClientName = "fleet",
        };
        if (o.Tls && o.TlsCaFile is not null)
        {
            var ca = new X509Certificate2Collection();
            ca.ImportFromPemFile(o.TlsCaFile);
            cfg.CertificateValidation += (_, cert, _, errors) =>
            {
                if (errors == SslPolicyErrors.None) return true;
                if (cert is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(cert));
            };
        }
        ConnectionMultiplexer mux;
        try
        {
            mux = await ConnectionMultiplexer.ConnectAsync(cfg).WaitAsync(ct);
        }
        catch (RedisConnectionException e)
        {
            throw new FleetBusException($"cannot connect to Redis at {o}: {e.Message}. Check REDIS_HOST/REDIS_PORT (or [redis] in the config), credentials and TLS settings.", e);
        }
        return new RedisFleetBus(mux, o.Db);
    }

    public async Task<long> PublishAsync(string channel, byte[] payload, CancellationToken ct) =>
        await _sub.PublishAsync(RedisChannel.Literal(channel), payload).WaitAsync(ct);

    public async Task<IAsyncDisposable> SubscribeAsync(string channel, Func<byte[], CancellationToken, Task> handler, CancellationToken ct)
    {
        var queue = await _sub.SubscribeAsync(RedisChannel.Literal(channel)).WaitAsync(ct);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pump = Task.Run(async () =>
        {
            try
            {
                while (!cts.IsCancellationRequested)
                {
                    var m = await queue.ReadAsync(cts.Token);
                    byte[]? bytes = m.Message;
                    if (bytes is null) continue;
                    try { await handler(bytes, cts.Token); }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // one bad message must not end the subscription
                        AppModule.Runtime.Log.Error($"handling a message on {channel} failed: {e.Message}");
                    }
                }
            }
            catch (OperationCanceledException) { }
            catch (System.Threading.Channels.ChannelClosedException) { }
        }, CancellationToken.None);
        return new Subscription(queue, cts, pump);
    }

    private sealed class Subscription(ChannelMessageQueue queue, CancellationTokenSource cts, Task pump) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await cts.CancelAsync();
            try { await queue.UnsubscribeAsync(); } catch (RedisException) { }
            await pump;
            cts.Dispose();
        }
    }

    public Task ListPushAsync(string key, byte[] value, CancellationToken ct) => _db.ListRightPushAsync(key, value).WaitAsync(ct);

    public async Task<byte[]?> ListPopAsync(string key, CancellationToken ct) => (byte[]?)await _db.ListLeftPopAsync(key).WaitAsync(ct);

    private const string PopManyScript = """
        local r = {}
        for i, k in ipairs(KEYS) do
          local v = redis.call('LPOP', k)
          if v then redis.call('DEL', k); r[i] = v else r[i] = false end
        end
        return r
        """;

    public async Task<byte[]?[]> ListPopManyAndDeleteAsync(IReadOnlyList<string> keys, CancellationToken ct)
    {
        if (keys.Count == 0) return [];
        var k = new RedisKey[keys.Count];
        for (int i = 0; i < k.Length; i++) k[i] = keys[i];
        var r = (RedisResult[])(await _db.ScriptEvaluateAsync(PopManyScript, k).WaitAsync(ct))!;
        var result = new byte[]?[keys.Count];
        for (int i = 0; i < r.Length && i < result.Length; i++) result[i] = r[i].IsNull ? null : (byte[]?)r[i];
        return result;
    }

    public Task<long> ListRemoveAsync(string key, byte[] value, CancellationToken ct) => _db.ListRemoveAsync(key, value, 1).WaitAsync(ct);

    public Task<long> ListLengthAsync(string key, CancellationToken ct) => _db.ListLengthAsync(key).WaitAsync(ct);

    public Task DeleteAsync(string key, CancellationToken ct) => _db.KeyDeleteAsync(key).WaitAsync(ct);

    public Task ExpireAsync(string key, TimeSpan ttl, CancellationToken ct) => _db.KeyExpireAsync(key, ttl).WaitAsync(ct);

    public async ValueTask DisposeAsync() => await _mux.DisposeAsync();
}

public sealed class FleetBusException(string message, Exception? inner = null) : Exception(message, inner);
