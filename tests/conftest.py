"""Shared test helpers: backend fixture that skips unavailable backends with their reason, input
builders for each memory layout, per-dtype tolerances, and an assert that says where values differ."""
import functools
import os
from pathlib import Path

import pytest
import torch

from kernels import BACKENDS, backend_status
from kernels.tolerances import GRAD_TOLERANCES, TOLERANCES  # noqa: F401  (per-dtype (rtol, atol), for the tests)

CIFAR10_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpg.tar.gz"
# Where kernel tests put their inputs: the GPU when one is visible and Triton compiles for it, else the
# CPU (Triton through its interpreter). The same tests then check the compiled kernels on a GPU machine.
TEST_DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"

# Under pytest-xdist (``-n N``) the workers share the cores: give each its share of torch's threads
# instead of letting every worker start one thread per core.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@functools.lru_cache(maxsize=1)
def cached_backend_status() -> dict:
    return backend_status()


def require_backend(name: str) -> str:
    reason = cached_backend_status()[name]
    if reason is not None:
        pytest.skip(f"backend {name!r} unavailable here: {reason}")
    return name


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return require_backend(request.param)


def make_input(shape, dtype, layout: str, seed: int = 0, device: str = TEST_DEVICE, scale: float = 1.0) -> torch.Tensor:
    """A random activation in one of three layouts: 'nchw', 'channels_last', 'strided' (non-contiguous),
    drawn on the CPU (the same values on every machine), times ``scale`` (``kernels.paper.normalising_scale``:
    where LRN normalises), and moved to ``device``."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    if layout == "nchw":
        x = torch.randn(shape, generator=gen)
    elif layout == "channels_last":
        x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    elif layout == "strided":  # every other column of a wider tensor, and channels permuted in memory
        x = torch.randn(n, h, c, 2 * w, generator=gen).permute(0, 2, 1, 3)[..., ::2]
        assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    else:
        raise ValueError(layout)
    if scale != 1.0:
        x.mul_(scale)  # in place: the layout's strides are kept
    return x.to(device=device, dtype=dtype)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str, grad: bool = False) -> None:
    """assert_close with the per-dtype tolerance; the message names the case and the worst element."""
    rtol, atol = (GRAD_TOLERANCES if grad else TOLERANCES)[dtype]
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(
        actual.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True,
        msg=lambda m: f"{what}: {m}",
    )


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def usage_error_line(main, argv, capsys) -> str:
    """Run a command's ``main(argv)`` for a user's mistake and return its stderr, after checking what every
    command line promises for one: exit status 2 and one line, ``<prog>: error: ...``, no traceback."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and ": error: " in err, err
    return err
