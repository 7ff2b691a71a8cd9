"""Index helpers shared by the Triton kernels: the index type, flat lane -> (n, c, h, w), position tiles.

Every kernel takes an ``INDEX_64`` constexpr from ``offsets.index_is_64``: int64 arithmetic when some
element offset or lane index passes 2**31 - 1, int32 otherwise (fewer registers, cheaper division).
"""
import triton
import triton.language as tl


@triton.jit
def as_index(v, INDEX_64: tl.constexpr):
    """``v`` (a tensor, a loop counter or a constant) in the kernel's index type."""
    if INDEX_64:
        return tl.cast(v, tl.int64)
    else:
        return tl.cast(v, tl.int32)


@triton.jit
def digits(idx, size0, size1, size2):
    """``idx`` split into four mixed-radix digits, fastest first: sizes ``size0``, ``size1``, ``size2``,
    and whatever is left for the slowest."""
    return idx % size0, (idx // size0) % size1, (idx // (size0 * size1)) % size2, idx // (size0 * size1 * size2)


@triton.jit
def unravel(idx, C, H, W, CHANNELS_LAST: tl.constexpr):
    """(n, c, h, w) of element ``idx`` of a dense N x C x H x W tensor walked in memory order
    (w fastest for NCHW, c fastest for channels_last); ``offsets.unravel`` is its host twin."""
    if CHANNELS_LAST:
        c, w, h, n = digits(idx, C, W, H)
    else:
        w, h, c, n = digits(idx, W, H, C)
    return n, c, h, w


@triton.jit
def position_tile(tile, N, H, W, BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
    """Tile number ``tile``'s BLOCK positions flattened over (n, h, w) - a tile may span images, which
    keeps small images busy - as (mask, n, h, w) in the index type."""
    p = as_index(tile, INDEX_64) * BLOCK + tl.arange(0, BLOCK)
    mask = p < as_index(N, INDEX_64) * H * W
    return mask, p // (H * W), (p // W) % H, p % W


@triton.jit
def position_ptr(ptr, n, h, w, stride_n, stride_h, stride_w):
    """``ptr`` moved to position (n, h, w) of its tensor, at channel 0 (any shape: n, h and w alike)."""
    return ptr + n * stride_n + h * stride_h + w * stride_w


@triton.jit
def channel_chunk(C, CHUNK):
    """This program's (position tile, first channel, end channel): programs are numbered with the
    chunk fastest, so the chunks of one tile run side by side and share their halo channels in L2."""
    n_chunks = tl.cdiv(C, CHUNK)
    pid = tl.program_id(0)
    c0 = (pid % n_chunks) * CHUNK
    return pid // n_chunks, c0, tl.minimum(c0 + CHUNK, C)
