using Fleet.Core.Bus;
using Fleet.Core.Config;
using Fleet.Core.Security;
using Fleet.Core.Wire;

namespace Fleet.Core.Updater;

/// <summary>How a command sent to one device ended: it answered (success or not), or it did not answer in time.</summary>
public enum DeviceOutcome { Success, Failure, Unreachable }

/// <summary>One device's answer to an operator's command (<c>fleet-updater device ...</c>).</summary>
public sealed record DeviceResult(string App, string Rpc, string Command, DeviceOutcome Outcome, string Message, string? Key);

/// <summary>The one way the updater side sends a command to a device: over commlib RPC to the app's RPC name, signed
/// with the shared HMAC key when one is configured (the agent then refuses anything unsigned, altered, expired or
/// replayed). Used for the rollouts' <c>update_version</c> and for the operator's seed-002 operations
/// (<c>restart</c>, <c>update</c>, <c>down</c>).</summary>
public sealed class DeviceCommands(UpdaterConfig cfg, IFleetBus bus, TimeProvider? clock = null)
{
    private readonly CommlibRpcClient _rpc = new(bus, cfg.WireStyle, clock ?? TimeProvider.System);
    private readonly CommandSigner? _signer = cfg.HmacKey is null ? null : new CommandSigner(cfg.HmacKey, clock ?? TimeProvider.System);

    /// <summary>Whether commands are signed.</summary>
    public bool Signed => _signer is not null;

    /// <summary>Signs (when a key is configured) and sends <paramref name="request"/> to <paramref name="app"/>'s RPC
    /// name; a request nobody took within <paramref name="timeout"/> is retracted. Redis errors are thrown.</summary>
    public Task<RpcResult> SendAsync(AppEntry app, DockerCommandRequest request, TimeSpan timeout, CancellationToken ct)
    {
        if (_signer is not null) request = _signer.Sign(app.Rpc, request, cfg.CommandTtl);
        return _rpc.CallAsync(app.Rpc, request, timeout, ct);
    }

    /// <summary>Seed 002's operations, as the operator's CLI sends them.</summary>
    public static readonly IReadOnlyList<string> Operations = ["restart", "update", "down"];

    /// <summary>Sends <paramref name="command"/> (one of <see cref="Operations"/>) to each app (whole applications;
    /// <paramref name="wait"/> false skips the health wait of <c>restart</c>), at most <paramref name="parallel"/> at a
    /// time. Each command carries an idempotency key of its own, so the agent runs it once even if it were re-sent.</summary>
    public async Task<IReadOnlyList<DeviceResult>> RunAsync(string command, IReadOnlyList<AppEntry> apps, bool wait, TimeSpan timeout, int parallel, CancellationToken ct)
    {
        if (!Operations.Contains(command)) throw new ArgumentException($"unknown operation '{command}'", nameof(command));
        using var slots = new SemaphoreSlim(Math.Max(1, parallel));
        var tasks = apps.Select(async app =>
        {
            await slots.WaitAsync(ct);
            try
            {
                var key = $"{app.Name}:{command}:{Guid.NewGuid().ToString("N")[..12]}";
                var req = new DockerCommandRequest(command, app.Directory!) { Wait = wait ? null : false, IdempotencyKey = key };
                var r = await SendAsync(app, req, timeout, ct);
                if (r.Outcome == RpcOutcome.TimedOut)
                {
                    return new DeviceResult(app.Name, app.Rpc, command, DeviceOutcome.Unreachable,
                        $"no answer from {app.Rpc} within {timeout.TotalSeconds:0.#} s; {(r.Retracted ? "the request was retracted (the device never took it)" : "the device took the request and may still be running it")}", key);
                }
                return new DeviceResult(app.Name, app.Rpc, command, r.Response!.Success ? DeviceOutcome.Success : DeviceOutcome.Failure, r.Response.Message, key);
            }
            finally { slots.Release(); }
        }).ToList();
        return await Task.WhenAll(tasks);
    }
}
