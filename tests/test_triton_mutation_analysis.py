"""torch's mutation analysis of ``triton_op`` kernels finds exactly each kernel's outputs, without falling back.

On a GPU the ``triton`` backend's ops are ``torch.library.triton_op`` s launching through ``wrap_triton``;
for every launch torch builds the kernel's TTIR and walks it from each ``tt.store`` back to the pointer
arguments (``torch._higher_order_ops.triton_kernel_wrap.identify_accessed_tensors``, called
``identify_mutated_tensors`` in older torch). When that fails - as it has for some Triton versions
(pytorch/pytorch#173795) - torch only logs a warning and assumes *every* tensor argument is mutated,
which makes functionalization clone inputs and blocks fusion. This test runs the analysis on every
launch the backend makes (forward and backward of each op declared in ``kernels.catalog.CUSTOM_OPS``; fp32;
NCHW and channels_last; plus the experimental channel-vector forward) and checks the result against the
pointer arguments each kernel stores to (``OUTPUTS``) and loads from (``inputs_read``).

The analysis needs only Triton's front end and a target: this machine's driver is replaced by a stub
whose current target is sm_90 (``sm90_target``). It needs compiled-mode kernels (``JITFunction``),
and Triton fixes interpreted-or-compiled when a kernel is defined, so the analysis runs in a fresh
process with ``TRITON_INTERPRET=0`` (this module run as a program), like ``bench.kernel_resources``::

    python -m tests.test_triton_mutation_analysis            # prints one line per launch
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ["TRITON_INTERPRET"] = "0"  # before any @triton.jit is evaluated (see kernels.interpreter)

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
from kernels.catalog import CUSTOM_OPS, OPS  # noqa: E402
from kernels.paper import PAPER_LRN  # noqa: E402

LRN = dict(PAPER_LRN)
SHAPE = (2, 16, 13, 13)  # small: the analysis reads the TTIR, nothing runs
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# declared op (kernels.catalog.CUSTOM_OPS) -> the kernels its forward and backward launch, in order
LAUNCHED = {
    "relu_lrn": ["_relu_lrn_fwd_kernel", "_relu_lrn_bwd_kernel"],
    "max_pool": ["_max_pool_fwd_kernel", "_max_pool_bwd_kernel"],
    "relu_lrn_pool": ["_relu_lrn_pool_fwd_kernel", "_relu_lrn_bwd_kernel"],
}
CASES = {(op, layout): LAUNCHED[op] for layout in LAYOUTS for op in CUSTOM_OPS}  # (op, layout) -> its kernels
CASES[("relu_lrn_cvec", "channels_last")] = ["_relu_lrn_fwd_cvec_kernel"]  # experimental, forward only

# The pointer arguments each kernel's tl.store calls write (read off the kernels' signatures and bodies).
OUTPUTS = {
    "_relu_lrn_fwd_kernel": {"y_ptr"},
    "_relu_lrn_bwd_kernel": {"dx_ptr"},
    "_max_pool_fwd_kernel": {"y_ptr", "off_ptr"},
    "_max_pool_bwd_kernel": {"dx_ptr"},
    "_relu_lrn_pool_fwd_kernel": {"y_ptr", "off_ptr"},
    "_relu_lrn_fwd_cvec_kernel": {"y_ptr"},
}
FALLBACK_MESSAGE = "Encountered an exception in identify_"  # torch's warning when it assumes all are mutated


def inputs_read(kernel: str, meta: dict) -> set[str]:
    """The pointer arguments the kernel's tl.load calls read."""
    if kernel == "_relu_lrn_bwd_kernel":  # off_ptr is only read by the fused (POOL=True) backward
        return {"x_ptr", "g_ptr", "off_ptr"} if meta["POOL"] else {"x_ptr", "g_ptr"}
    if kernel == "_max_pool_bwd_kernel":
        return {"g_ptr", "off_ptr"}
    return {"x_ptr"}


# ------------------------------------------------------------------ run in the TRITON_INTERPRET=0 process

@contextlib.contextmanager
def sm90_target():
    """Make Triton's active driver report an sm_90 GPU (all the analysis asks of a driver)."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver

    class Sm90Driver:
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

    previous = driver._active  # not reset_active(): that would create the default driver, and there is none
    driver.set_active(Sm90Driver())
    try:
        yield
    finally:
        driver._active = previous


@contextlib.contextmanager
def fallback_warnings():
    """Collect torch's 'assuming every input is mutated' warnings (with their exception) in a list."""
    from torch._higher_order_ops import triton_kernel_wrap

    caught: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith(FALLBACK_MESSAGE):
                exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
                caught.append(f"{record.getMessage()}\n{exc}")

    logger = getattr(triton_kernel_wrap, "log", None) or logging.getLogger(triton_kernel_wrap.__name__)  # torch._dynamo
    level, handler = logger.level, Catch(logging.WARNING)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))
    logger.addHandler(handler)
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def accessed_tensors(kernel, kwargs: dict) -> tuple[list[str], list[str] | None]:
    """(written, read) argument names per torch's analysis; read is None on torches that report writes only."""
    from torch._higher_order_ops import triton_kernel_wrap as wrap

    kwargs = dict(kwargs)  # generate_ttir pops launch options from it
    if hasattr(wrap, "identify_accessed_tensors"):  # newer torch (2.13 has only this one)
        accesses = wrap.identify_accessed_tensors(kernel, kwargs, {})
        tensors = lambda deps: [d.name for d in deps if isinstance(kwargs.get(d.name), torch.Tensor)]  # noqa: E731
        return tensors(accesses.read_writes.writes), tensors(accesses.read_writes.reads)
    import inspect

    analyse = wrap.identify_mutated_tensors
    if len(inspect.signature(analyse).parameters) >= 3:
        return list(analyse(kernel, kwargs, {})), None
    return list(analyse(kernel, kwargs)), None


def _forward(op: str, x: torch.Tensor) -> torch.Tensor:
    """The ``triton`` backend's declared op on ``x`` with the paper's settings: its output ``y``."""
    decl = CUSTOM_OPS[op]
    settings = OPS[op].settings()
    out = getattr(torch.ops.alexnet_kernels, op)(x, *(settings[name] for name in decl.settings))
    return out[0] if decl.pooled else out


def record_backend_launches() -> list[dict]:
    """Every launch of the ``triton`` backend's ops (forward, then backward through autograd) and of the
    channel-vector forward, recorded instead of run, as the analysis's kernel and keyword arguments."""
    import kernels.backends.triton  # noqa: F401  registers torch.ops.alexnet_kernels
    from kernels.backends.triton.launch import recording_launches
    from kernels.experimental.triton_relu_lrn_cvec import relu_lrn_forward_cvec

    rows = []
    for (op, layout), _ in CASES.items():
        x = torch.randn(SHAPE).contiguous(memory_format=LAYOUTS[layout]).requires_grad_(op != "relu_lrn_cvec")
        with recording_launches() as launches:
            if op == "relu_lrn_cvec":
                relu_lrn_forward_cvec(x, **LRN)
            else:
                y = _forward(op, x)  # kernels are recorded, not run: y is uninitialised, which is fine here
                y.backward(torch.ones_like(y))
        for launch in launches:
            kernel = launch.kernel
            rows.append({"op": op, "layout": layout, "dtype": "float32", "kernel": kernel.__name__,
                         "launch": launch, "kwargs": {**dict(zip(kernel.arg_names, launch.args)), **launch.meta}})
    return rows


def analyse_all() -> list[dict]:
    """One JSON-able record per launch: what the analysis found, and whether it fell back (and why)."""
    import triton
    from triton.runtime.jit import JITFunction

    results = []
    for row in record_backend_launches():
        kernel, kwargs = row.pop("launch").kernel, row.pop("kwargs")
        out = {**row, "triton": triton.__version__, "torch": torch.__version__, "meta": {
            k: v for k, v in kwargs.items() if isinstance(v, (bool, int)) and k.isupper()}}
        if not isinstance(kernel, JITFunction):
            out.update(error=f"{type(kernel).__name__}, not a JITFunction: TRITON_INTERPRET was not 0 at import")
            results.append(out)
            continue
        with sm90_target(), fallback_warnings() as fell_back:
            try:
                written, read = accessed_tensors(kernel, kwargs)
                out.update(written=sorted(written), read=None if read is None else sorted(read))
            except Exception:
                out.update(error=traceback.format_exc())
        out.update(fallback=fell_back, tensor_args=sorted(k for k, v in kwargs.items() if isinstance(v, torch.Tensor)))
        results.append(out)
    return results


def main(argv: list[str]) -> int:
    results = analyse_all()
    if argv and argv[0] == "--json":
        Path(argv[1]).write_text(json.dumps(results, indent=1))
        return 0
    if results:
        print(f"triton {results[0]['triton']}, torch {results[0]['torch']}, target sm_90")
    for r in results:
        status = "FALLBACK" if r.get("fallback") else ("ERROR" if r.get("error") else "ok")
        print(f"{status:8} {r['op']:14} {r['layout']:13} {r['kernel']:26} written={r.get('written')} "
              f"read={r.get('read')}")
        for text in r.get("fallback") or ([r["error"]] if r.get("error") else []):
            print("    " + text.strip().replace("\n", "\n    "))
    return 0


# ------------------------------------------------------------------ the tests (any TRITON_INTERPRET)

def _nvidia_backend_missing() -> str | None:
    try:
        import triton.backends
    except Exception as exc:
        return f"cannot import triton ({exc})"
    if "nvidia" not in triton.backends.backends:
        return "this Triton build has no NVIDIA backend to build sm_90 TTIR with"
    return None


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> list[dict]:
    reason = _nvidia_backend_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("mutation") / "analysis.json"
    run = subprocess.run([sys.executable, "-m", "tests.test_triton_mutation_analysis", "--json", str(out)],
                         cwd=REPO, env={**os.environ, "TRITON_INTERPRET": "0"}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("op,layout", list(CASES), ids=[f"{op}-{layout}" for op, layout in CASES])
def test_analysis_finds_exactly_the_outputs(analysis, op, layout):
    launches = [r for r in analysis if (r["op"], r["layout"]) == (op, layout)]
    assert [r["kernel"] for r in launches] == CASES[(op, layout)]
    for r in launches:
        where = f"{r['kernel']} ({op}, {layout}, triton {r['triton']}, torch {r['torch']})"
        assert not r.get("error"), f"{where}: the analysis raised:\n{r['error']}"
        assert not r["fallback"], (f"{where}: torch's mutation analysis failed and fell back to 'every tensor "
                                   f"argument is mutated' ({r['tensor_args']}):\n" + "\n".join(r["fallback"]))
        assert set(r["written"]) == OUTPUTS[r["kernel"]], f"{where}: found written {r['written']}"
        if r["read"] is not None:
            assert set(r["read"]) == inputs_read(r["kernel"], r["meta"]), f"{where}: found read {r['read']}"


def test_fallback_is_detected():
    """The fallback detector sees torch's warning: an analysis that cannot even start (a kernel that is
    not a JITFunction) is reported with its exception, and every tensor is then claimed written."""
    pytest.importorskip("triton")
    from torch._higher_order_ops import triton_kernel_wrap  # noqa: F401

    kwargs = {"x_ptr": torch.zeros(2), "y_ptr": torch.zeros(2)}
    with fallback_warnings() as fell_back:
        written, _ = accessed_tensors(lambda x_ptr, y_ptr: None, kwargs)
    assert len(fell_back) == 1 and "JITFunction" in fell_back[0]
    assert set(written) == set(kwargs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
