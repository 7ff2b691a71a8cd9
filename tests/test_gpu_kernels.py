"""On a CUDA GPU: every non-eager backend against eager at AlexNet's real batch-128 activations.

CPU CI runs the kernels through Triton's interpreter at small shapes only; this module checks what
the GPU actually runs: the compiled Triton kernels with their GPU launch shapes (channel chunks at
conv2, int32 indices), the CUDA extension's device kernels, Inductor's code - forward and gradient,
float32 and bfloat16, NCHW and channels_last. Skipped without a GPU.
"""
import pytest
import torch

from kernels.catalog import OPS, PUBLIC_OPS
from tests.conftest import make_input, require_backend
from tests.test_kernels import _check_op

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SITES = {"conv1": (128, 96, 55, 55), "conv2": (128, 256, 27, 27), "conv5": (128, 256, 13, 13)}
CASES = [(op, site, dtype, layout) for op in PUBLIC_OPS for site in OPS[op].alexnet_sites
         for dtype in (torch.float32, torch.bfloat16) for layout in ("nchw", "channels_last")]
IDS = [f"{op}-{site}-{str(dtype)[6:]}-{layout}" for op, site, dtype, layout in CASES]


@pytest.mark.parametrize("backend_name", ["torchscript", "compile", "cpp", "triton"])
@pytest.mark.parametrize("op,site,dtype,layout", CASES, ids=IDS)
def test_batch128_matches_eager(backend_name, op, site, dtype, layout):
    require_backend(backend_name)
    x = make_input(SITES[site], dtype, layout, seed=11, device="cuda")
    agreement = OPS[op].grad_agreement(dtype)  # fused: near-tie window maxima (kernels.catalog)
    _check_op(op, backend_name, x, f"{op}[{backend_name}] {site} {layout}", grad_agreement=agreement)
