using System.Runtime.InteropServices;

namespace AppModule;

/// <summary>A named pipe through which an image payload streams from the artifact into a sub-module's LOAD without touching the disk.</summary>
public static partial class Fifo
{
    public static void Create(string path)
    {
        if (mkfifo(path, 0b110_000_000) != 0)
        {
            throw new IOException($"cannot create the named pipe {path} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/> into the FIFO while <paramref name="reader"/> (the sub-module)
    /// runs. When the reader ends without opening the pipe, the blocked open is released. Returns the
    /// reader's result and the number of bytes the reader took.
    /// </summary>
    public static async Task<(T Result, long Written, Exception? WriteError)> FeedAsync<T>(string path, Stream source, Func<Task<T>> reader, CancellationToken ct)
    {
        long written = 0;
        Exception? writeError = null;
        var writer = Task.Run(() =>
        {
            try
            {
                using var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
                var buffer = new byte[1 << 16];
                int n;
                while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
                {
                    ct.ThrowIfCancellationRequested();
                    fs.Write(buffer, 0, n);
                    written += n;
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or UnauthorizedAccessException)
            {
                writeError = e;
            }
        }, CancellationToken.None);

        T result;
        try
        {
            result = await reader().ConfigureAwait(false);
        }
        finally
        {
            // If the reader never opened the pipe, our writer is still blocked in open(): open the
            // read end ourselves (non-blocking) so it returns; its writes then fail with EPIPE.
            if (!writer.IsCompleted)
            {
                var fd = open(path, ORdOnly | ONonBlock);
                await Task.WhenAny(writer, Task.Delay(2000, CancellationToken.None)).ConfigureAwait(false);
                if (fd >= 0)
                {
                    _ = close(fd);
                }
            }

            await writer.ConfigureAwait(false);
        }

        return (result, written, writeError);
    }

    private const int ORdOnly = 0;
    private const int ONonBlock = 0x800; // same on x86_64 and aarch64

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int mkfifo(string path, int mode);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
