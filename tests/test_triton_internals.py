"""Internals of the ``triton`` backend: int64-safe index arithmetic, compact saved state (int8 window
offsets, x only), and custom-op registration that ``torch.compile(fullgraph=True)`` traces.
Cross-backend correctness lives in test_kernels.py."""
import pytest
import torch
import torch.nn.functional as F

from kernels import max_pool, relu_lrn, relu_lrn_pool
from kernels._offsets import (
    INT32_MAX, dense_strides, element_offset, max_element_offset, needs_int64, unravel,
)
from tests.conftest import make_input, require_backend

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
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


@pytest.mark.parametrize("kernel_size,dtype", [(3, torch.int8), (11, torch.int8), (12, torch.int16)])
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
    oh = torch.arange(y.shape[2]).view(-1, 1)
    ow = torch.arange(y.shape[3]).view(1, -1)
    rows = oh * 2 + offsets.long() // 3
    cols = ow * 2 + offsets.long() % 3
    assert torch.equal(rows * x.shape[3] + cols, flat)


def test_custom_ops_trace_without_graph_breaks():
    """fullgraph=True fails on any graph break; aot_eager also runs the fake shape functions and
    the registered autograd formulas. (Calls the backend module: ops.get_backend's import is
    Python-level dispatch that runs before tracing in a model that picks its backend up front.)"""
    from kernels import triton_backend as tb

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
