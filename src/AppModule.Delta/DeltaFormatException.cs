namespace AppModule.Delta;

/// <summary>
/// A delta (VCDIFF stream or deep-delta payload) is malformed, exceeds a configured limit, or does
/// not fit the base it is applied to. <see cref="Offset"/> is the byte offset in the delta input
/// where the problem was detected (-1 when not applicable); <see cref="Reason"/> says what is wrong.
/// </summary>
public class DeltaFormatException : Exception
{
    public DeltaFormatException(long offset, string reason)
        : base(offset >= 0 ? $"invalid delta at byte {offset}: {reason}" : $"invalid delta: {reason}")
    {
        Offset = offset;
        Reason = reason;
    }

    public DeltaFormatException(long offset, string reason, Exception inner)
        : base(offset >= 0 ? $"invalid delta at byte {offset}: {reason}" : $"invalid delta: {reason}", inner)
    {
        Offset = offset;
        Reason = reason;
    }

    /// <summary>Byte offset in the delta input, or -1.</summary>
    public long Offset { get; }

    /// <summary>What is wrong, without the offset.</summary>
    public string Reason { get; }
}
