"""``torch.library.opcheck`` on every op the ``triton`` and ``cpp`` backends register: PyTorch's own test
that an op's schema matches what it does (no undeclared mutation or aliasing), that its fake (meta)
implementation agrees with the real one, that autograd is registered the supported way, and that it
works under AOT dispatch with dynamic shapes (what ``torch.compile`` relies on).

Small shapes: on a CPU the triton ops run through Triton's interpreter and opcheck calls each several
times. Every op's arguments come from its declaration (``kernels.catalog.CUSTOM_OPS``). The backward ops are
checked with the tensors their forward saves, on inputs at the scale the op's steps need
(``kernels.catalog``: for LRN where it normalises), so the LRN's values are not ~relu(x) k^-beta."""
import pytest
import torch

from kernels.catalog import CUSTOM_OPS, OPS
from tests.conftest import cached_backend_status

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# Ops without a tensor argument, nothing for opcheck to check: the cpp build's queries (its instruction set,
# and the size past which relu_lrn streams its output).
TENSORLESS_QUERIES = {"cpu_isa", "stream_threshold_bytes"}
# Not kernels: the cpp build's streaming copy, a yardstick of the benchmarks' memory roof
# (bench.timing.Timer.copy_roof), called directly on CPU tensors, never traced or differentiated
# (tests/test_bench_timing.py checks it).
YARDSTICKS = {"stream_copy_"}


def _namespace(backend: str):
    reason = cached_backend_status()[backend]
    if reason is not None:
        pytest.skip(f"backend {backend} unavailable here: {reason}")
    import kernels

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kernels.max_pool(torch.zeros(1, 1, 3, 3, device=device), backend=backend)  # builds and registers the ops
    return getattr(torch.ops, kernels.get_backend(backend).NAMESPACE)


def _registered(ns) -> set[str]:
    """Every op of the namespace the dispatcher knows (dir() of torch.ops lists only those already used)."""
    return {name.split("::", 1)[1].split(".")[0] for name in torch._C._dispatch_get_all_op_names()
            if name.startswith(ns.name + "::")} - TENSORLESS_QUERIES - YARDSTICKS


@pytest.mark.parametrize("backend", ["triton", "cpp"])
def test_every_registered_op_is_declared(backend):
    """What test_opcheck checks (each declared op, its backward and any ``_values`` form) is every op
    the backend registers."""
    ns = _namespace(backend)
    declared = {name for decl in CUSTOM_OPS.values()
                for name in (decl.name, decl.backward_name, f"{decl.name}_values") if hasattr(ns, name)}
    assert _registered(ns) == declared, f"registered but not declared: {_registered(ns) - declared}"


@pytest.mark.parametrize("op", list(CUSTOM_OPS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("backend", ["triton", "cpp"])
def test_opcheck(backend, layout, op):
    ns = _namespace(backend)
    for name, args in _op_args(ns, layout, CUSTOM_OPS[op]).items():
        torch.library.opcheck(getattr(ns, name).default, args)


def _op_args(ns, layout, decl) -> dict:
    """Arguments for the ops of one declaration (``kernels.catalog.CUSTOM_OPS``, whose signatures both backends
    register): the forward (and its ``_values`` form, if any) on ``x``, the backward on a gradient shaped like
    the forward's output and the tensors the forward saves."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    spec = OPS[decl.name]  # the paper's settings (alpha in the paper's convention) and the input scale they need
    x = (torch.randn(2, 8, 7, 7, device=device) * spec.input_scale).contiguous(memory_format=LAYOUTS[layout])
    settings = tuple(spec.settings()[name] for name in decl.settings)
    args = {decl.name: (x.clone().requires_grad_(), *settings)}
    if hasattr(ns, f"{decl.name}_values"):  # the cpp backend's CPU inference forms (no offsets, no autograd)
        args[f"{decl.name}_values"] = (x.clone(), *settings)
    out = getattr(ns, decl.name)(x, *settings)
    y, saved = (out[0], {"x": x, "offsets": out[1]}) if decl.pooled else (out, {"x": x})
    geometry = tuple(x.shape[-2:]) if decl.geometry else ()
    args[decl.backward_name] = (torch.randn_like(y), *(saved[name] for name in decl.saves), *geometry, *settings)
    return args
