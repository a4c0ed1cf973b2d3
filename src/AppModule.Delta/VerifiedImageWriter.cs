using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AppModule.Core.Archives;
using TarEntryType = System.Formats.Tar.TarEntryType;

namespace AppModule.Delta;

/// <summary>
/// A write-only stream that passes a saved image tar (docker-archive layout, as a delta rebuilds it)
/// through to <c>docker load</c> while checking it, so the rebuilt image never has to be written to disk
/// first. Every layer file is hashed as it passes (when <c>hashLayers</c>), small JSON files are kept,
/// and <c>manifest.json</c> and <c>repositories</c> (the entries without which the engine registers
/// nothing) are held back. At the end of the archive the image is verified: the config's SHA-256 is the
/// expected image ID, each layer the manifest lists was sent and hashes to the config's diff ID (or is one
/// the caller chose not to send because the engine has it), and the caller's check of the config (its
/// platform) passes. Only then are the held entries and the end-of-archive blocks written. A failure
/// throws <see cref="DeltaFormatException"/> before that; <see cref="Abort"/> then cuts the archive in the
/// middle of a header, so the reader fails with an unexpected end instead of loading a partial image.
/// </summary>
public sealed class VerifiedImageWriter : Stream
{
    private const int SmallFile = 1 << 20;
    private static readonly string[] HeldNames = ["manifest.json", "repositories"];

    private readonly Stream _out;
    private readonly string _expectedId;
    private readonly bool _hashLayers;
    private readonly Func<string, bool> _omitted;
    private readonly Action<byte[]> _checkConfig;

    private readonly byte[] _header = new byte[512];
    private int _headerFill;
    private readonly MemoryStream _pendingMeta = new(); // pax / GNU long-name blocks before the header they describe
    private readonly MemoryStream _held = new();
    private string? _metaName;
    private long _dataLeft;
    private long _padLeft;
    private bool _holding;
    private string _name = "";
    private MemoryStream? _capture;
    private IncrementalHash? _hash;
    private MemoryStream? _metaData;
    private char _metaType;
    private bool _ended;

    private readonly Dictionary<string, byte[]> _small = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _layerHashes = new(StringComparer.Ordinal);
    private readonly HashSet<string> _sent = new(StringComparer.Ordinal); // files and links that passed
    private readonly Dictionary<string, long> _sizes = new(StringComparer.Ordinal); // files that passed -> size
    private readonly List<(string DiffId, long? Size)> _manifestLayers = [];

    /// <param name="output">Where the archive goes (the FIFO the sub-module's LOAD reads).</param>
    /// <param name="expectedId">The image ID the archive must carry (hex SHA-256 of its config, sums-new.txt).</param>
    /// <param name="hashLayers">Hash every layer file against the config's diff IDs (false when the producer already checked each layer it wrote).</param>
    /// <param name="omitted">True for a manifest layer path deliberately not sent (the engine already holds that layer chain).</param>
    /// <param name="checkConfig">Further checks of the config (e.g. its platform); throws to refuse.</param>
    public VerifiedImageWriter(Stream output, string expectedId, bool hashLayers, Func<string, bool> omitted, Action<byte[]> checkConfig)
    {
        _out = output;
        _expectedId = expectedId;
        _hashLayers = hashLayers;
        _omitted = omitted;
        _checkConfig = checkConfig;
    }

    /// <summary>Bytes passed to the output so far.</summary>
    public long Written { get; private set; }

    /// <summary>True once the archive's end was reached and the image verified.</summary>
    public bool Verified { get; private set; }

    /// <summary>Once <see cref="Verified"/>: the image's layers in config order, each diff ID ("sha256:...") with the
    /// size of its file in the archive (null when it was omitted or is a link).</summary>
    public IReadOnlyList<(string DiffId, long? Size)> ManifestLayers => _manifestLayers;

    /// <summary>Layer files sent (path → SHA-256), when hashed.</summary>
    public IReadOnlyDictionary<string, string> LayerHashes => _layerHashes;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Written; set => throw new NotSupportedException(); }
    public override void Flush() => _out.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            if (_ended)
            {
                Emit(buffer);
                return;
            }

            if (_dataLeft > 0)
            {
                int n = (int)Math.Min(_dataLeft, buffer.Length);
                var chunk = buffer[..n];
                _hash?.AppendData(chunk);
                _capture?.Write(chunk);
                _metaData?.Write(chunk);
                if (_metaData is null)
                {
                    Route(chunk);
                }
                else
                {
                    _pendingMeta.Write(chunk);
                }

                _dataLeft -= n;
                buffer = buffer[n..];
                if (_dataLeft == 0)
                {
                    EndData();
                }

                continue;
            }

            if (_padLeft > 0)
            {
                int n = (int)Math.Min(_padLeft, buffer.Length);
                if (_metaData is null && _metaType == '\0')
                {
                    Route(buffer[..n]);
                }
                else
                {
                    _pendingMeta.Write(buffer[..n]);
                }

                _padLeft -= n;
                buffer = buffer[n..];
                if (_padLeft == 0)
                {
                    _metaType = '\0';
                }

                continue;
            }

            int take = Math.Min(512 - _headerFill, buffer.Length);
            buffer[..take].CopyTo(_header.AsSpan(_headerFill));
            _headerFill += take;
            buffer = buffer[take..];
            if (_headerFill == 512)
            {
                _headerFill = 0;
                OnHeader();
            }
        }
    }

    private void Route(ReadOnlySpan<byte> bytes)
    {
        if (_holding)
        {
            _held.Write(bytes);
        }
        else
        {
            Emit(bytes);
        }
    }

    private void Emit(ReadOnlySpan<byte> bytes)
    {
        _out.Write(bytes);
        Written += bytes.Length;
    }

    private void OnHeader()
    {
        if (_header.AsSpan().IndexOfAnyExcept((byte)0) < 0)
        {
            Finish();
            _ended = true;
            Emit(_header);
            return;
        }

        char type = (char)_header[156];
        long size = ParseSize(_header.AsSpan(124, 12));
        long padded = (size + 511) & ~511L;
        if (type is 'x' or 'L')
        {
            if (size > SmallFile)
            {
                throw new DeltaFormatException(-1, $"the rebuilt image holds a tar extended header of {size} bytes");
            }

            _pendingMeta.Write(_header);
            _metaData = new MemoryStream();
            _metaType = type;
            _dataLeft = size;
            _padLeft = padded - size;
            if (_dataLeft == 0)
            {
                EndData();
            }

            return;
        }

        _name = Normalize(_metaName ?? UstarName(_header));
        _metaName = null;
        if (TarEntryPolicy.FilesDirectoriesAndLinks.Check("the image rebuilt from the delta", _name, (TarEntryType)(byte)type) is { } refused)
        {
            throw new DeltaFormatException(-1, refused);
        }

        _holding = Array.IndexOf(HeldNames, _name) >= 0;
        var meta = _pendingMeta.ToArray();
        _pendingMeta.SetLength(0);
        Route(meta);
        Route(_header);
        bool file = type is '0' or '\0' or '7';
        if (file || type is '1' or '2')
        {
            _sent.Add(_name);
        }

        if (file)
        {
            _sizes[_name] = size;
        }

        _hash = file && _hashLayers && IsLayer(_name) ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        _capture = file && size <= SmallFile && (_name.EndsWith(".json", StringComparison.Ordinal) || _holding) ? new MemoryStream((int)size) : null;
        _dataLeft = size;
        _padLeft = padded - size;
        if (_dataLeft == 0)
        {
            EndData();
        }
    }

    private void EndData()
    {
        if (_metaData is not null)
        {
            var text = Encoding.UTF8.GetString(_metaData.ToArray());
            _metaName = _metaType == 'L' ? text.TrimEnd('\0') : PaxPath(text) ?? _metaName;
            _metaData = null;
            if (_padLeft == 0)
            {
                _metaType = '\0';
            }

            return;
        }

        if (_hash is not null)
        {
            _layerHashes[_name] = Convert.ToHexStringLower(_hash.GetHashAndReset());
            _hash.Dispose();
            _hash = null;
        }

        if (_capture is not null)
        {
            _small[_name] = _capture.ToArray();
            _capture = null;
        }
    }

    /// <summary>The end-of-archive block arrived: verify, then release what was held back.</summary>
    private void Finish()
    {
        if (!_small.TryGetValue("manifest.json", out var manifestBytes))
        {
            throw new DeltaFormatException(-1, "the rebuilt image has no manifest.json");
        }

        string configPath;
        var layers = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(manifestBytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() != 1)
            {
                throw new DeltaFormatException(-1, "the rebuilt image's manifest.json does not describe exactly one image");
            }

            var img = doc.RootElement[0];
            configPath = Normalize(img.GetProperty("Config").GetString() ?? "");
            foreach (var l in img.GetProperty("Layers").EnumerateArray())
            {
                layers.Add(Normalize(l.GetString() ?? ""));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DeltaFormatException(-1, $"the rebuilt image's manifest.json is not valid: {e.Message}");
        }

        if (!_small.TryGetValue(configPath, out var config))
        {
            throw new DeltaFormatException(-1, $"the rebuilt image lacks its config {configPath}");
        }

        var id = Convert.ToHexStringLower(SHA256.HashData(config));
        if (id != _expectedId)
        {
            throw new DeltaFormatException(-1, $"the image rebuilt from the delta is {id}, but sums-new.txt says {_expectedId}");
        }

        var diffIds = DiffIds(config);
        if (diffIds.Count != layers.Count)
        {
            throw new DeltaFormatException(-1, $"the rebuilt image's manifest lists {layers.Count} layers, its config {diffIds.Count}");
        }

        for (int i = 0; i < layers.Count; i++)
        {
            var path = layers[i];
            if (_layerHashes.TryGetValue(path, out var sha))
            {
                if (!path.StartsWith("blobs/sha256/", StringComparison.Ordinal) && sha != diffIds[i])
                {
                    throw new DeltaFormatException(-1, $"layer {path} of the rebuilt image has sha256 {sha}, its config says {diffIds[i]}");
                }
            }
            else if (!_sent.Contains(path) && !_omitted(path))
            {
                throw new DeltaFormatException(-1, $"the rebuilt image lacks layer {path}");
            }
        }

        _checkConfig(config);
        for (int i = 0; i < layers.Count; i++)
        {
            _manifestLayers.Add(($"sha256:{diffIds[i]}", _sizes.TryGetValue(layers[i], out var size) ? size : null));
        }

        Verified = true;
        Emit(_held.GetBuffer().AsSpan(0, (int)_held.Length));
        _held.SetLength(0);
    }

    /// <summary>Cuts the archive inside a header, so that the reader fails instead of taking what it got so far as complete.</summary>
    public void Abort()
    {
        if (Verified)
        {
            return;
        }

        try
        {
            var cut = new byte[100];
            cut.AsSpan().Fill((byte)'!');
            _out.Write(cut);
            _out.Flush();
        }
        catch (IOException)
        {
            // The reader is gone already.
        }
    }

    /// <summary>rootfs.diff_ids of an image config, as hex digests.</summary>
    public static IReadOnlyList<string> DiffIds(byte[] config)
    {
        try
        {
            using var doc = JsonDocument.Parse(config);
            return doc.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray()
                .Select(d => Digests.ParseSha256(d.GetString() ?? "") ?? throw new DeltaFormatException(-1, $"the image config has a diff ID that is not a sha256 digest: {d}"))
                .ToList();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DeltaFormatException(-1, $"the image config is not valid: {e.Message}");
        }
    }

    private static bool IsLayer(string name) =>
        name == "layer.tar" || name.EndsWith("/layer.tar", StringComparison.Ordinal) || name.StartsWith("blobs/sha256/", StringComparison.Ordinal);

    private static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }

        return name.TrimStart('/').TrimEnd('/');
    }

    private static string UstarName(byte[] h)
    {
        static string C(ReadOnlySpan<byte> s)
        {
            int z = s.IndexOf((byte)0);
            return Encoding.UTF8.GetString(z < 0 ? s : s[..z]);
        }

        var name = C(h.AsSpan(0, 100));
        bool ustar = h.AsSpan(257, 6).SequenceEqual("ustar\0"u8); // POSIX only: in the GNU format ("ustar  ") those bytes hold atime/ctime
        var prefix = ustar ? C(h.AsSpan(345, 155)) : "";
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private static string? PaxPath(string records)
    {
        foreach (var line in records.Split('\n'))
        {
            int sp = line.IndexOf(' ');
            if (sp > 0 && line[(sp + 1)..].StartsWith("path=", StringComparison.Ordinal))
            {
                return line[(sp + 6)..];
            }
        }

        return null;
    }

    private static long ParseSize(ReadOnlySpan<byte> f)
    {
        if ((f[0] & 0x80) != 0)
        {
            long v = f[0] & 0x7f;
            for (int i = 1; i < f.Length; i++)
            {
                v = (v << 8) | f[i];
            }

            return v;
        }

        long n = 0;
        foreach (var b in f)
        {
            if (b is (byte)' ' or 0)
            {
                if (n > 0)
                {
                    break;
                }

                continue;
            }

            if (b is < (byte)'0' or > (byte)'7')
            {
                throw new DeltaFormatException(-1, "the rebuilt image has a tar header with a bad size field");
            }

            n = (n * 8) + (b - '0');
        }

        return n;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash?.Dispose();
            _pendingMeta.Dispose();
            _held.Dispose();
        }

        base.Dispose(disposing);
    }
}
