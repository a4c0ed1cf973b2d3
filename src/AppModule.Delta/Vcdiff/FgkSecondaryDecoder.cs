namespace AppModule.Delta.Vcdiff;

/// <summary>
/// xdelta3's fgk secondary compression (VCD_FGK_ID = 16): adaptive Huffman coding (FGK, after
/// Knuth's "Dynamic Huffman Coding") over bytes, bits read least-significant first. One tree per
/// section kind lives across all windows, as in xdelta3 (whose encoder also updates the tree for
/// sections it then stores uncompressed, so xdelta3 3.0.11 itself cannot decode most multi-window
/// fgk deltas; neither can this decoder, and it says so). The node/block structure follows
/// xdelta3-fgk.h with array indices instead of pointers (-1 = null).
/// </summary>
internal sealed class FgkSecondaryDecoder : ISecondaryDecoder
{
    private const int Alpha = 256;
    private const int Nil = -1;
    private const int TotalNodes = (2 * Alpha) - 1;
    private const int TotalBlocks = 2 * TotalNodes;

    private readonly uint[] _weight = new uint[TotalNodes];
    private readonly int[] _parent = new int[TotalNodes];
    private readonly int[] _lchild = new int[TotalNodes];
    private readonly int[] _rchild = new int[TotalNodes];
    private readonly int[] _left = new int[TotalNodes];
    private readonly int[] _right = new int[TotalNodes];
    private readonly int[] _myBlock = new int[TotalNodes];
    private readonly int[] _block = new int[TotalBlocks]; // leader node, or next free block
    private readonly int[] _codedBits = new int[Alpha];
    private int _freeBlock;
    private long _zeroFreqCount;
    private int _zeroFreqExp;
    private long _zeroFreqRem;
    private int _codedDepth;
    private int _decodePtr;
    private int _remainingZeros;
    private int _root;
    private int _freeNode;

    public FgkSecondaryDecoder()
    {
        _root = 0;
        _decodePtr = 0;
        _freeNode = Alpha;
        _remainingZeros = 0;
        _codedDepth = 0;
        _zeroFreqCount = Alpha + 2;
        FactorRemaining();
        FactorRemaining();
        for (int i = 0; i < TotalBlocks - 1; i++)
        {
            _block[i] = i + 1;
        }
        _block[TotalBlocks - 1] = Nil;
        _freeBlock = 0;
        for (int i = Alpha - 1; i >= 0; i--)
        {
            _rchild[i] = i < Alpha - 1 ? i + 1 : Nil;
            _lchild[i] = i >= 1 ? i - 1 : Nil;
            _weight[i] = 0;
            _parent[i] = Nil;
            _right[i] = Nil;
            _left[i] = Nil;
            _myBlock[i] = Nil;
        }
    }

    public void Decode(ReadOnlySpan<byte> input, Span<byte> output, long offset, CancellationToken ct)
    {
        int inPos = 0, outPos = 0;
        while (true)
        {
            if (inPos == input.Length)
            {
                throw new DeltaFormatException(offset, "fgk section ended before its declared size");
            }
            byte cur = input[inPos++];
            for (int mask = 1; mask != 0x100; mask <<= 1)
            {
                if (!DecodeBit((cur & mask) != 0 ? 1 : 0))
                {
                    continue;
                }
                output[outPos++] = (byte)DecodeData();
                if (outPos == output.Length)
                {
                    if (inPos != input.Length)
                    {
                        throw new DeltaFormatException(offset, $"fgk section has {input.Length - inPos} unused bytes");
                    }
                    return;
                }
            }
            if ((inPos & 0xFFFF) == 0)
            {
                ct.ThrowIfCancellationRequested();
            }
        }
    }

    private bool DecodeBit(int b)
    {
        if (_weight[_decodePtr] == 0)
        {
            long bitsreq = _zeroFreqRem == 0 ? _zeroFreqExp : _zeroFreqExp + 1;
            if (_codedDepth >= _codedBits.Length)
            {
                throw new DeltaFormatException(-1, "fgk code too long");
            }
            _codedBits[_codedDepth++] = b;
            return _codedDepth >= bitsreq;
        }
        _decodePtr = b != 0 ? _rchild[_decodePtr] : _lchild[_decodePtr];
        if (_decodePtr < 0)
        {
            throw new DeltaFormatException(-1, "fgk code leads outside the tree");
        }
        if (_lchild[_decodePtr] == Nil)
        {
            return _weight[_decodePtr] != 0 || _zeroFreqCount == 1;
        }
        return false;
    }

    private int DecodeData()
    {
        int elt = _decodePtr;
        if (_weight[_decodePtr] == 0)
        {
            int n = 0, i = 0;
            if (_codedDepth > 0)
            {
                for (; i < _codedDepth - 1; i++)
                {
                    n |= _codedBits[i];
                    n <<= 1;
                }
            }
            n |= _codedBits[i];
            elt = NthZero(n);
        }
        if (elt < 0 || elt >= Alpha)
        {
            throw new DeltaFormatException(-1, "fgk decoded an invalid symbol");
        }
        _codedDepth = 0;
        UpdateTree(elt);
        _decodePtr = _root;
        return elt;
    }

    private int NthZero(int n)
    {
        int ret = _remainingZeros;
        if (ret < 0)
        {
            throw new DeltaFormatException(-1, "fgk: no zero-frequency symbol left");
        }
        for (; n != 0 && _rchild[ret] != Nil; n--)
        {
            ret = _rchild[ret];
        }
        return ret;
    }

    private void UpdateTree(int n)
    {
        int incr = _weight[n] == 0 ? IncreaseZeroWeight(n) : n;
        while (incr != _root)
        {
            MoveRight(incr);
            Promote(incr);
            _weight[incr]++;
            incr = _parent[incr];
        }
        _weight[_root]++;
    }

    private void MoveRight(int fwd)
    {
        int back = _block[_myBlock[fwd]];
        if (fwd == back || _parent[fwd] == back || _weight[fwd] == 0)
        {
            return;
        }
        _left[_right[back]] = fwd;
        if (_left[fwd] != Nil)
        {
            _right[_left[fwd]] = back;
        }
        int tmp = _right[fwd];
        _right[fwd] = _right[back];
        if (tmp == back)
        {
            _right[back] = fwd;
        }
        else
        {
            _left[tmp] = back;
            _right[back] = tmp;
        }
        tmp = _left[back];
        _left[back] = _left[fwd];
        if (tmp == fwd)
        {
            _left[fwd] = back;
        }
        else
        {
            _right[tmp] = fwd;
            _left[fwd] = tmp;
        }
        int pf = _parent[fwd], pb = _parent[back];
        bool fwdIsRight = _rchild[pf] == fwd;
        bool backIsRight = _rchild[pb] == back;
        _parent[fwd] = pb;
        _parent[back] = pf;
        if (fwdIsRight)
        {
            _rchild[pf] = back;
        }
        else
        {
            _lchild[pf] = back;
        }
        if (backIsRight)
        {
            _rchild[pb] = fwd;
        }
        else
        {
            _lchild[pb] = fwd;
        }
        _block[_myBlock[fwd]] = fwd;
    }

    private void Promote(int node)
    {
        int myRight = _right[node];
        int myLeft = _left[node];
        int cur = _myBlock[node];
        if (_weight[node] == 0)
        {
            return;
        }
        if (myLeft == _rchild[node] && _lchild[node] != Nil && _weight[_lchild[node]] == 0)
        {
            if (_weight[node] == _weight[myRight] - 1 && myRight != _root)
            {
                FreeBlock(cur);
                _myBlock[node] = _myBlock[myRight];
                _myBlock[myLeft] = _myBlock[myRight];
            }
            return;
        }
        if (myLeft == _remainingZeros)
        {
            return;
        }
        if (_myBlock[myLeft] == cur)
        {
            _block[cur] = myLeft;
        }
        else
        {
            FreeBlock(cur);
        }
        _myBlock[node] = _weight[node] == _weight[myRight] - 1 && myRight != _root ? _myBlock[myRight] : MakeBlock(node);
    }

    private int IncreaseZeroWeight(int n)
    {
        int thisZero = n;
        if (_zeroFreqCount == 1)
        {
            _rchild[thisZero] = Nil;
            _myBlock[thisZero] = _weight[_right[thisZero]] == 1 ? _myBlock[_right[thisZero]] : MakeBlock(thisZero);
            _remainingZeros = Nil;
            return thisZero;
        }
        int zeroPtr = _remainingZeros;
        if (_freeNode >= TotalNodes)
        {
            throw new DeltaFormatException(-1, "fgk tree overflow");
        }
        int ni = _freeNode++;
        _parent[ni] = _parent[zeroPtr];
        _right[ni] = _right[zeroPtr];
        _weight[ni] = 0;
        _rchild[ni] = thisZero;
        _left[ni] = thisZero;
        if (_remainingZeros == _root)
        {
            _root = ni;
            _myBlock[thisZero] = MakeBlock(thisZero);
            _myBlock[ni] = MakeBlock(ni);
        }
        else
        {
            _left[_right[ni]] = ni;
            int zp = _parent[zeroPtr];
            if (_rchild[zp] == zeroPtr)
            {
                _rchild[zp] = ni;
            }
            else
            {
                _lchild[zp] = ni;
            }
            _myBlock[ni] = _weight[_right[ni]] == 1 ? _myBlock[_right[ni]] : MakeBlock(ni);
            _myBlock[thisZero] = _myBlock[ni];
        }
        EliminateZero(thisZero);
        _lchild[ni] = _remainingZeros;
        _right[thisZero] = ni;
        _left[thisZero] = _remainingZeros;
        _parent[thisZero] = ni;
        _lchild[thisZero] = Nil;
        _rchild[thisZero] = Nil;
        _parent[_remainingZeros] = ni;
        _right[_remainingZeros] = thisZero;
        return thisZero;
    }

    private void EliminateZero(int node)
    {
        if (_zeroFreqCount == 1)
        {
            return;
        }
        FactorRemaining();
        if (_lchild[node] == Nil)
        {
            _remainingZeros = _rchild[_remainingZeros];
            _lchild[_remainingZeros] = Nil;
        }
        else if (_rchild[node] == Nil)
        {
            _rchild[_lchild[node]] = Nil;
        }
        else
        {
            _lchild[_rchild[node]] = _lchild[node];
            _rchild[_lchild[node]] = _rchild[node];
        }
    }

    private int MakeBlock(int lead)
    {
        int ret = _freeBlock;
        if (ret < 0)
        {
            throw new DeltaFormatException(-1, "fgk block pool exhausted");
        }
        _freeBlock = _block[ret];
        _block[ret] = lead;
        return ret;
    }

    private void FreeBlock(int b)
    {
        _block[b] = _freeBlock;
        _freeBlock = b;
    }

    private void FactorRemaining()
    {
        long i = --_zeroFreqCount;
        _zeroFreqExp = 0;
        while (i > 1)
        {
            _zeroFreqExp++;
            i >>= 1;
        }
        _zeroFreqRem = _zeroFreqCount - (1L << _zeroFreqExp);
    }
}
