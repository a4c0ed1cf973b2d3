using System.Runtime.InteropServices;

namespace AppModule.Runtime;

/// <summary>
/// Turns SIGTERM and SIGINT into a cancellation, so that an executable stopped by its caller (the
/// Mender client's module timeout sends SIGTERM to our process group) stops its children politely
/// and leaves a recoverable state instead of dying mid-step.
/// </summary>
public sealed class ShutdownSignal : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration _term;
    private readonly PosixSignalRegistration _int;

    public ShutdownSignal()
    {
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        _int = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    }

    public CancellationToken Token => _cts.Token;

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // we exit ourselves, after cleaning up
        Log.Warning($"received {context.Signal}; stopping what is running");
        _cts.Cancel();
    }

    public void Dispose()
    {
        _term.Dispose();
        _int.Dispose();
        _cts.Dispose();
    }
}
