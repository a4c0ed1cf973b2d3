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
        var (result, written, error) = await ProduceAsync(path, fs =>
        {
            var buffer = new byte[1 << 16];
            int n;
            while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
            {
                ct.ThrowIfCancellationRequested();
                fs.Write(buffer, 0, n);
            }
        }, reader, ct).ConfigureAwait(false);

        // A failure to write (the reader went away) is the caller's to judge; a failure to read the source is the install's.
        if (error is not null and not (IOException or OperationCanceledException or UnauthorizedAccessException))
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        return (result, written, error);
    }

    /// <summary>
    /// Runs <paramref name="produce"/> on the FIFO's write end while <paramref name="reader"/> (the sub-module)
    /// runs; Written counts what it wrote. Whatever it throws (the reader
    /// went away, or the producer refused its own output) is returned as the write error, after the pipe is closed.
    /// </summary>
    public static async Task<(T Result, long Written, Exception? WriteError)> ProduceAsync<T>(string path, Action<Stream> produce, Func<Task<T>> reader, CancellationToken ct)
    {
        Exception? writeError = null;
        var counted = new Counter();
        var writer = Task.Run(() =>
        {
            try
            {
                using var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
                counted.Inner = fs;
                produce(counted);
            }
            catch (Exception e)
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

        return (result, counted.Count, writeError);
    }

    /// <summary>Counts what passes to the FIFO.</summary>
    private sealed class Counter : Stream
    {
        public Stream Inner { get; set; } = Null;

        public long Count { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => Count; set => throw new NotSupportedException(); }

        public override void Flush() => Inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Inner.Write(buffer);
            Count += buffer.Length;
        }
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
