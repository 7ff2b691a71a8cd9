"""``torch.library.opcheck`` on every op the ``triton`` and ``cpp`` backends register: PyTorch's own test
that an op's schema matches what it does (no undeclared mutation or aliasing), that its fake (meta)
implementation agrees with the real one, that autograd is registered the supported way, and that it
works under AOT dispatch with dynamic shapes (what ``torch.compile`` relies on).

Small shapes: on a CPU the triton ops run through Triton's interpreter and opcheck calls each several
times. The backward ops are checked with the tensors their forward saves, on inputs at the scale where
LRN normalises (``normalising_scale``), so the LRN's values are not ~relu(x) k^-beta."""
import pytest
import torch

from kernels.paper import PAPER_LRN, PAPER_POOL, normalising_scale
from tests.conftest import cached_backend_status

LRN = tuple(PAPER_LRN.values())  # size, alpha, beta, k (alpha in the paper's convention)
POOL = tuple(PAPER_POOL.values())  # kernel_size, stride
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# Ops without a tensor argument, nothing for opcheck to check: the cpp build's instruction-set query.
TENSORLESS_QUERIES = {"cpu_isa"}


def _namespace(backend: str):
    reason = cached_backend_status()[backend]
    if reason is not None:
        pytest.skip(f"backend {backend} unavailable here: {reason}")
    import kernels

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kernels.max_pool(torch.zeros(1, 1, 3, 3, device=device), backend=backend)  # builds and registers the ops
    return getattr(torch.ops, kernels.get_backend(backend).NAMESPACE)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("backend", ["triton", "cpp"])
def test_opcheck_every_registered_op(backend, layout):
    ns = _namespace(backend)
    # every op of the namespace the dispatcher knows (dir() of torch.ops lists only those already used)
    registered = sorted({name.split("::", 1)[1].split(".")[0] for name in torch._C._dispatch_get_all_op_names()
                         if name.startswith(ns.name + "::")} - TENSORLESS_QUERIES)
    assert set(registered) >= {"relu_lrn", "max_pool", "relu_lrn_pool"}, registered
    checked = []
    for name, args in _op_args(ns, layout).items():
        torch.library.opcheck(getattr(ns, name).default, args)
        checked.append(name)
    assert sorted(checked) == registered, f"ops registered but not checked: {set(registered) - set(checked)}"


def _op_args(ns, layout) -> dict:
    """Arguments for every op of ``ns``, built from each backward op's schema so that both backends'
    argument orders are honoured."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    x = (torch.randn(2, 8, 7, 7, device=device) * normalising_scale()).contiguous(memory_format=LAYOUTS[layout])
    _, offsets = ns.max_pool(x, *POOL)
    fused_y, fused_offsets = ns.relu_lrn_pool(x, *LRN, *POOL)
    values = {  # argument name -> value, for the names the schemas use
        "x": x, "offsets": offsets, "size": LRN[0], "alpha": LRN[1], "beta": LRN[2], "k": LRN[3],
        "kernel_size": POOL[0], "stride": POOL[1], "height": x.shape[-2], "width": x.shape[-1],
        "channels_last": layout == "channels_last",
    }
    args = {"relu_lrn": (x.clone().requires_grad_(), *LRN),
            "max_pool": (x.clone().requires_grad_(), *POOL),
            "relu_lrn_pool": (x.clone().requires_grad_(), *LRN, *POOL)}
    if hasattr(ns, "max_pool_values"):  # the cpp backend's CPU inference forms (no offsets, no autograd)
        args.update(max_pool_values=(x.clone(), *POOL), relu_lrn_pool_values=(x.clone(), *LRN, *POOL))
    for name in ("relu_lrn_backward", "max_pool_backward", "relu_lrn_pool_backward"):
        schema = getattr(ns, name).default._schema
        grad_shape = {"relu_lrn_backward": x, "max_pool_backward": offsets,
                      "relu_lrn_pool_backward": fused_y}[name]
        built = []
        for arg in schema.arguments:
            if arg.name in ("grad", "grad_y"):
                built.append(torch.randn_like(grad_shape, dtype=x.dtype))
            elif arg.name == "offsets" and name == "relu_lrn_pool_backward":
                built.append(fused_offsets)
            elif arg.name in values:
                built.append(values[arg.name])
            else:
                raise AssertionError(f"{name}: no test value for schema argument {arg.name!r} ({schema})")
        args[name] = tuple(built)
    return args
