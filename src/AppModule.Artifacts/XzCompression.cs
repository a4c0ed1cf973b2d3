using System.Runtime.InteropServices;

namespace AppModule.Artifacts;

/// <summary>
/// Write-only .xz stream. SharpCompress 0.50.8 only decodes xz ("XZ compression is not supported by
/// SharpCompress's internal implementation"; its LZMA2 encoder throws NotImplementedException), so
/// writing goes through the system's liblzma (liblzma.so.5, present wherever xz-utils or dpkg are)
/// with the single-threaded encoder, whose output is deterministic. Reading uses SharpCompress.
/// </summary>
public sealed unsafe class XzEncoderStream : Stream
{
    private const string Lib = "liblzma.so.5";
    private const int LzmaRun = 0, LzmaFinish = 3;
    private const int LzmaOk = 0, LzmaStreamEnd = 1;
    private const int CheckCrc64 = 4;

    [StructLayout(LayoutKind.Sequential)]
    private struct LzmaStreamStruct
    {
        public byte* NextIn; public nuint AvailIn; public ulong TotalIn;
        public byte* NextOut; public nuint AvailOut; public ulong TotalOut;
        public nint Allocator; public nint Internal;
        public nint R1, R2, R3, R4;
        public ulong RI1, RI2; public nuint RI3, RI4;
        public int RE1, RE2;
    }

    [DllImport(Lib, EntryPoint = "lzma_easy_encoder")] private static extern int EasyEncoder(LzmaStreamStruct* strm, uint preset, int check);
    [DllImport(Lib, EntryPoint = "lzma_code")] private static extern int Code(LzmaStreamStruct* strm, int action);
    [DllImport(Lib, EntryPoint = "lzma_end")] private static extern void End(LzmaStreamStruct* strm);

    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private LzmaStreamStruct* _strm;
    private readonly byte[] _out = new byte[1 << 16];
    private bool _finished;

    /// <param name="preset">0-9 like xz -0..-9 (6 is xz's default).</param>
    public XzEncoderStream(Stream inner, uint preset = 6, bool leaveOpen = false)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        _strm = (LzmaStreamStruct*)NativeMemory.AllocZeroed((nuint)sizeof(LzmaStreamStruct));
        int rc;
        try { rc = EasyEncoder(_strm, preset, CheckCrc64); }
        catch (DllNotFoundException e)
        {
            NativeMemory.Free(_strm);
            _strm = null;
            throw new ArtifactException("lzma compression needs liblzma.so.5 on this machine (Debian/Ubuntu: apt-get install liblzma5); or use --compression gzip", e);
        }
        if (rc != LzmaOk)
        {
            NativeMemory.Free(_strm);
            _strm = null;
            throw new ArtifactException($"liblzma could not start an xz encoder (lzma_ret {rc}): free some memory or use --compression gzip");
        }
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => _inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_strm == null || _finished, this);
        fixed (byte* inp = buffer)
        {
            _strm->NextIn = inp;
            _strm->AvailIn = (nuint)buffer.Length;
            while (_strm->AvailIn > 0) Pump(LzmaRun);
            _strm->NextIn = null;
        }
    }

    private int Pump(int action)
    {
        fixed (byte* outp = _out)
        {
            _strm->NextOut = outp;
            _strm->AvailOut = (nuint)_out.Length;
            int rc = Code(_strm, action);
            int produced = _out.Length - (int)_strm->AvailOut;
            _strm->NextOut = null;
            if (rc != LzmaOk && rc != LzmaStreamEnd) throw new ArtifactException($"xz compression failed (lzma_ret {rc})");
            if (produced > 0) _inner.Write(_out, 0, produced);
            return rc;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (_strm != null)
        {
            try
            {
                if (disposing && !_finished)
                {
                    _finished = true;
                    while (Pump(LzmaFinish) != LzmaStreamEnd) { }
                    _inner.Flush();
                }
            }
            finally
            {
                End(_strm);
                NativeMemory.Free(_strm);
                _strm = null;
                if (disposing && !_leaveOpen) _inner.Dispose();
            }
        }
        base.Dispose(disposing);
    }
}
