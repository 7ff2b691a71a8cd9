"""Internals of the ``triton`` backend: int64-safe index arithmetic, compact saved state (int8 window
offsets, x only), and custom-op registration that ``torch.compile(fullgraph=True)`` traces.
Cross-backend correctness lives in test_kernels.py."""
import pytest
import torch
import torch.nn.functional as F
import triton

from kernels import max_pool, relu_lrn, relu_lrn_pool
from kernels.paper import PAPER_LRN
from kernels.backends.triton.offsets import (
    INT32_MAX, dense_strides, element_offset, max_element_offset, needs_int64, unravel,
)
from tests.conftest import make_input, require_backend

LRN = dict(PAPER_LRN)
HUGE = (300, 96, 275, 275)  # 2.18e9 elements: conv1-sized activations at batch 300 overflow int32


@pytest.fixture(autouse=True)
def _triton():
    require_backend("triton")


@pytest.mark.parametrize("channels_last", [False, True])
def test_offset_arithmetic_beyond_int32(channels_last):
    """The kernels' (n, c, h, w) -> offset sums, checked on a > 2**31-element shape without allocating it."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    numel = HUGE[0] * HUGE[1] * HUGE[2] * HUGE[3]
    assert numel > INT32_MAX
    strides = dense_strides(HUGE, channels_last)
    assert strides == torch.empty(HUGE, device="meta", memory_format=fmt).stride()
    assert max_element_offset(HUGE, strides) == numel - 1 and needs_int64(HUGE, strides)
    assert not needs_int64((128, 96, 55, 55), dense_strides((128, 96, 55, 55), channels_last))
    for linear in (0, INT32_MAX - 1, INT32_MAX + 12345, numel - 1):
        index = unravel(linear, HUGE, channels_last)
        assert all(0 <= i < s for i, s in zip(index, HUGE))
        assert element_offset(index, strides) == linear  # int32 arithmetic would wrap here


def _saved_bytes(fn, x: torch.Tensor) -> int:
    """Bytes of distinct storages autograd keeps for the backward of ``fn(x)``."""
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(saved.values())


def test_saved_state_is_smaller_than_eager():
    x = make_input((2, 16, 27, 27), torch.float32, "nchw").requires_grad_()
    lrn_args = tuple(LRN.values())
    pooled_elems = 2 * 16 * 13 * 13

    fused = _saved_bytes(lambda t: relu_lrn_pool(t, backend="triton"), x)
    chain = _saved_bytes(lambda t: F.max_pool2d(F.local_response_norm(torch.relu(t), 5, 5e-4, 0.75, 2.0), 3, 2), x)
    assert fused == x.nbytes + pooled_elems  # x and one int8 offset per pooled output
    assert fused < chain / 2, f"fused saves {fused} B, eager chain {chain} B"

    pool = _saved_bytes(lambda t: max_pool(t, 3, 2, backend="triton"), x)
    aten = _saved_bytes(lambda t: F.max_pool2d(t, 3, 2), x)
    assert pool == pooled_elems  # int8 offsets only, not x and not int64 indices
    assert pool * 10 < aten

    lrn = _saved_bytes(lambda t: relu_lrn(t, *lrn_args, backend="triton"), x)
    assert lrn == x.nbytes  # x only: a and the denominators are recomputed in the backward


@pytest.mark.parametrize("kernel_size,dtype", [(3, torch.int8), (11, torch.int8), (12, torch.int32)])
def test_offsets_are_small_integers(kernel_size, dtype):
    x = make_input((1, 3, 12, 12), torch.float32, "channels_last", seed=2)
    for y, offsets in (torch.ops.alexnet_kernels.max_pool(x, kernel_size, 1),
                       torch.ops.alexnet_kernels.relu_lrn_pool(x, *LRN.values(), kernel_size, 1)):
        assert offsets.dtype == dtype and offsets.shape == y.shape
        assert offsets.is_contiguous(memory_format=torch.channels_last)
        assert 0 <= int(offsets.min()) and int(offsets.max()) < kernel_size**2
    # the offsets name the element ATen's int64 indices name
    y, offsets = torch.ops.alexnet_kernels.max_pool(x, 3, 2)
    _, flat = F.max_pool2d(x, 3, 2, return_indices=True)
    oh = torch.arange(y.shape[2], device=y.device).view(-1, 1)
    ow = torch.arange(y.shape[3], device=y.device).view(1, -1)
    rows = oh * 2 + offsets.long() // 3
    cols = ow * 2 + offsets.long() % 3
    assert torch.equal(rows * x.shape[3] + cols, flat)


def test_custom_ops_trace_without_graph_breaks():
    """fullgraph=True fails on any graph break; aot_eager also runs the fake shape functions and
    the registered autograd formulas. (Calls the backend module: ops.get_backend's import is
    Python-level dispatch that runs before tracing in a model that picks its backend up front.)"""
    from kernels.backends import triton as tb

    def block(t):
        t = tb.relu_lrn_pool(t, *LRN.values(), 3, 2)
        return tb.max_pool(tb.relu_lrn(t, *LRN.values()), 3, 2)

    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    x = make_input((2, 6, 15, 15), torch.float32, "channels_last", seed=3)
    xa = x.detach().clone().requires_grad_()
    xb = x.detach().clone().requires_grad_()
    ya, yb = compiled(xa), block(xb)
    assert ya.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def _eager_chain(x: torch.Tensor, pool: bool) -> torch.Tensor:
    y = F.local_response_norm(torch.relu(x), LRN["size"], LRN["size"] * LRN["alpha"], LRN["beta"], LRN["k"])
    return F.max_pool2d(y, 3, 2) if pool else y


def _check_against_eager(x: torch.Tensor, size: int = 5) -> None:
    """relu_lrn, max_pool and relu_lrn_pool (forward and gradient) of the triton backend vs eager."""
    lrn = dict(LRN, size=size)
    g = torch.Generator().manual_seed(5)
    cases = (
        (lambda t: relu_lrn(t, *lrn.values(), backend="triton"),
         lambda t: F.local_response_norm(torch.relu(t), size, size * lrn["alpha"], lrn["beta"], lrn["k"])),
        (lambda t: max_pool(t, 3, 2, backend="triton"), lambda t: F.max_pool2d(t, 3, 2)),
        (lambda t: relu_lrn_pool(t, *lrn.values(), 3, 2, backend="triton"),
         lambda t: F.max_pool2d(F.local_response_norm(torch.relu(t), size, size * lrn["alpha"], lrn["beta"],
                                                      lrn["k"]), 3, 2)),
    )
    for ours, eager in cases:
        xa, xb = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
        ya, yb = ours(xa), eager(xb)
        torch.testing.assert_close(ya, yb, rtol=2e-5, atol=2e-6)
        seed = torch.randn(yb.shape, generator=g).to(yb.device)
        ya.backward(seed)
        yb.backward(seed)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("chunk,size", [(5, 5), (10, 5), (7, 7), (3, 3), (6, 3)])
def test_channel_chunks_match_whole_channel_walk(monkeypatch, chunk, size):
    """On a GPU the channel axis is split over programs (``tiling.channel_walk``); under the interpreter
    it never is, so force chunks here: halos at both ends, a ragged last chunk, chunks as short as the
    window (chunks are multiples of the LRN size: the kernels step in groups of it)."""
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn
    from kernels.backends.triton import relu_lrn_pool_kernel as triton_relu_lrn_pool
    from kernels.backends.triton.tiling import ChannelWalk

    def chunked(positions: int, channels: int, block: int = 64) -> ChannelWalk:
        return ChannelWalk(block, chunk, 4, triton.cdiv(positions, block) * triton.cdiv(channels, chunk))

    monkeypatch.setattr(triton_relu_lrn, "lrn_walk",
                        lambda x, size, pool_backward=False: chunked(x.shape[0] * x.shape[2] * x.shape[3], x.shape[1]))
    monkeypatch.setattr(triton_relu_lrn_pool, "fused_walk",
                        lambda x, positions, size: chunked(positions, x.shape[1], 16))
    _check_against_eager(make_input((2, 11, 9, 7), torch.float32, "nchw", seed=4), size=size)
    _check_against_eager(make_input((1, 11, 7, 9), torch.float32, "channels_last", seed=6), size=size)


def test_chunk_that_is_not_a_multiple_of_the_window_is_refused():
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn
    from kernels.backends.triton.tiling import walk_of

    x = make_input((1, 11, 5, 5), torch.float32, "nchw")
    with pytest.raises(ValueError, match="chunk 4 is not a multiple of the LRN size 5"):
        triton_relu_lrn.relu_lrn_forward(x, **LRN, walk=walk_of(25, 11, 16, 4))
    assert walk_of(25, 11, 16, 4, multiple=5).chunk == 5 and walk_of(25, 11, 16, 40, multiple=5).chunk == 11


def test_int64_index_path_matches(monkeypatch):
    """Tensors past 2**31 elements switch the kernels to int64 indices (``INDEX_64``); too big to
    allocate here, so force the switch on small ones and compare with eager."""
    from kernels.backends.triton import max_pool_kernel as triton_max_pool
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn
    from kernels.backends.triton import relu_lrn_pool_kernel as triton_relu_lrn_pool

    for module in (triton_max_pool, triton_relu_lrn, triton_relu_lrn_pool):
        monkeypatch.setattr(module, "index_is_64", lambda *tensors, lanes=0: True)
    _check_against_eager(make_input((2, 7, 11, 9), torch.float32, "nchw", seed=7))
    _check_against_eager(make_input((2, 7, 11, 9), torch.float32, "channels_last", seed=8))


def test_index_width_choice():
    from kernels.backends.triton.offsets import index_is_64

    x = torch.empty((128, 96, 55, 55), device="meta")
    assert not index_is_64(x, lanes=x.numel())
    assert index_is_64(torch.empty(HUGE, device="meta"))
    assert index_is_64(x, lanes=INT32_MAX - 10)  # the last program's lanes run past the flat count
    strided = torch.empty((2, 3, 4, 5), device="meta").as_strided((2, 3, 4, 5), (2**31, 1, 1, 1))
    assert index_is_64(strided)  # offsets, not element counts, decide


def test_gpu_channel_walk_gives_every_sm_work(monkeypatch):
    """The GPU launch shapes (checked without a GPU): enough programs for 132 SMs, whole channels
    where positions suffice, chunks of at least MIN_CHUNK channels, and every channel covered."""
    from kernels.backends.triton import tiling

    monkeypatch.setattr(tiling, "triton_interpreted", lambda: False)
    meta = torch.device("meta")
    conv1 = tiling.channel_walk(128 * 55 * 55, 96, meta, gpu_block=256, interpreter_block=1)
    assert conv1.chunk == 96 and conv1.programs == triton.cdiv(128 * 55 * 55, 256) >= 8 * 132
    conv2 = tiling.channel_walk(128 * 27 * 27, 256, meta, gpu_block=256, interpreter_block=1)
    assert conv2.chunk < 256 and conv2.programs >= 8 * 132
    for positions, channels in ((32 * 27 * 27, 256), (1 * 13 * 13, 256), (7, 20), (10**6, 3)):
        walk = tiling.channel_walk(positions, channels, meta, gpu_block=256, interpreter_block=1)
        chunks = triton.cdiv(channels, walk.chunk)
        assert walk.chunk * chunks >= channels and (walk.chunk >= tiling.MIN_CHUNK or walk.chunk == channels)
        assert walk.programs == triton.cdiv(positions, 256) * chunks


@pytest.mark.parametrize("dtype,size,shape", [
    (torch.float32, 5, (2, 11, 5, 6)),  # C not a multiple of the 4-channel vector
    (torch.float32, 7, (1, 13, 3, 4)),  # window reaching 3 channels into the neighbour vectors
    (torch.float32, 3, (1, 4, 5, 5)),  # one vector
    (torch.bfloat16, 5, (2, 20, 4, 4)),  # 8-channel vectors
    (torch.float64, 5, (1, 7, 3, 3)),  # 2-channel vectors: the window spans three of them
])
def test_channel_vector_forward_matches_the_ring_kernel(dtype, size, shape):
    """The experimental channels_last kernel (``triton_relu_lrn_cvec``) against eager and the ring kernel,
    with a NaN and an inf among the inputs."""
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn
    from kernels.experimental.triton_relu_lrn_cvec import relu_lrn_forward_cvec

    x = make_input(shape, dtype, "channels_last", seed=9)
    x[0, 1, 1, 1] = float("nan")
    x[-1, -1, 0, 0] = float("inf")
    lrn = dict(LRN, size=size)
    y = relu_lrn_forward_cvec(x, **lrn)
    ring = triton_relu_lrn.relu_lrn_forward(x, **lrn)
    assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
    torch.testing.assert_close(y, ring, rtol=1e-6, atol=1e-7, equal_nan=True)
    eager = F.local_response_norm(torch.relu(x.double()), size, size * lrn["alpha"], lrn["beta"], lrn["k"])
    torch.testing.assert_close(y.double(), eager, rtol=2e-5 if dtype != torch.bfloat16 else 1e-2, atol=1e-6,
                               equal_nan=True)


def test_channel_vector_forward_refuses_what_it_cannot_do():
    from kernels.experimental.triton_relu_lrn_cvec import relu_lrn_forward_cvec

    with pytest.raises(ValueError, match="needs a channels_last-dense"):
        relu_lrn_forward_cvec(make_input((1, 8, 4, 4), torch.float32, "nchw"), **LRN)
    with pytest.raises(ValueError, match="window 7 reaches past one 2-channel vector"):
        relu_lrn_forward_cvec(make_input((1, 8, 4, 4), torch.float64, "channels_last"), **dict(LRN, size=7))
