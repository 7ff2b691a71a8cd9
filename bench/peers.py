"""Outside CPU runtimes (OpenVINO, ONNX Runtime) as "peers" timed beside the project's backends.

Optional: ``pip install -e '.[peers]'``. ``peer_status()`` says which peers can run here and why not.
``chain_model`` builds each public op (ReLU -> LRN, max-pool, ReLU -> LRN -> max-pool) as an ONNX graph
of its steps' operators (``kernels.catalog``) with ``onnx.helper``; ``compile_peer`` turns one into a
single-forward callable on the CPU; ``alexnet_peer`` does the same for a whole (eval-mode) ``alexnet.model.AlexNet``.

LRN convention: the project's alpha is the paper's (``b = a / (k + alpha * sum a^2) ** beta``); ONNX's
``LRN`` divides alpha by ``size``, so the graph gets ``alpha = size * paper_alpha`` and ``bias = k``
(``kernels.catalog``'s LRN step says so).
Max-pool: unpadded, floor mode, as in ``kernels``.
"""
from __future__ import annotations

import importlib
import io
import warnings
from contextlib import contextmanager
from copy import deepcopy
from typing import Callable

import numpy as np
import torch

from kernels.catalog import OPS, PUBLIC_OPS

PEERS: tuple[str, ...] = ("openvino", "onnxruntime")
CHAIN_OPS: tuple[str, ...] = PUBLIC_OPS  # each the ONNX operators of its steps (kernels.catalog)
OPSET = 17  # LRN, MaxPool and Relu are unchanged since well before it; both peers read it
IR_VERSION = 8  # the IR version that goes with opset 17 (onnx's newest default may be too new for a runtime)
INSTALL_HINT = "pip install -e '.[peers]'"

PeerFn = Callable[["np.ndarray | torch.Tensor"], torch.Tensor]


def _probe(peer: str) -> None:
    """Import ``peer`` and make it do something, raising on any failure."""
    if peer == "openvino":
        import openvino as ov

        if "CPU" not in ov.Core().available_devices:
            raise RuntimeError("OpenVINO has no CPU device here")
    elif peer == "onnxruntime":
        import onnxruntime as ort

        if "CPUExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("ONNX Runtime has no CPUExecutionProvider here")
    else:
        raise ValueError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)}")


def peer_status(names: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """Map each peer to ``None`` (importable and working) or a one-line reason it cannot run.

    Both peers build their graphs with ``onnx``, so a missing ``onnx`` makes both unavailable.
    """
    status: dict[str, str | None] = {}
    for peer in PEERS if names is None else names:
        missing = None
        for module in ("onnx", peer):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                missing = f"not installed ({module}: {exc}): {INSTALL_HINT}"
                break
        if missing is not None:
            status[peer] = missing
            continue
        try:
            _probe(peer)
            status[peer] = None
        except Exception as exc:  # a broken install is itself the reason
            status[peer] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return status


def chain_model(op: str, shape: tuple[int, int, int, int], **settings):
    """An ``onnx.ModelProto`` running ``op`` on one static float32 NCHW input ``x`` -> output ``y``: the
    ONNX operators of the op's steps (``kernels.catalog``), with the paper's settings unless ``settings``
    override them (LRN's ``alpha`` in the paper's convention).
    """
    import onnx
    from onnx import TensorProto, helper

    if op not in CHAIN_OPS:
        raise ValueError(f"unknown op {op!r}; choose one of {', '.join(CHAIN_OPS)}")
    if len(shape) != 4 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be 4 positive sizes (N, C, H, W), got {shape!r}")
    n, c, h, w = OPS[op].output_shape(shape, **settings)
    if h < 1 or w < 1:
        raise ValueError(f"{op} on an input of {shape[2]}x{shape[3]} has no output (its window is larger)")
    nodes, constants = [], []
    for i, node in enumerate(OPS[op].onnx_nodes(**settings)):
        names = [f"c{i}_{j}" for j in range(len(node.constants))]
        constants += [helper.make_tensor(name, TensorProto.FLOAT, [], [v]) for name, v in zip(names, node.constants)]
        nodes.append(helper.make_node(node.op_type, ["x" if i == 0 else f"t{i - 1}", *names], [f"t{i}"],
                                      **node.attributes))
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes, op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [int(d) for d in shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, c, h, w])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="alexnet-kernels")
    onnx.checker.check_model(model)
    return model


def _as_numpy(x: "np.ndarray | torch.Tensor") -> np.ndarray:
    """A float32 C-contiguous array; a contiguous float32 CPU tensor is shared, not copied."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            raise ValueError(f"peers run on the CPU; got a tensor on {x.device}")
        x = x.numpy(force=False) if x.dtype == torch.float32 and x.is_contiguous() else x.float().contiguous().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _model_bytes(model) -> bytes:
    return model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()


def _check_peer(peer: str) -> None:
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)}")
    reason = peer_status((peer,))[peer]
    if reason is not None:
        raise RuntimeError(f"peer {peer!r} is unavailable here: {reason}")


def _openvino_fn(ov_model, threads: int) -> PeerFn:
    import openvino as ov

    config = {
        "INFERENCE_NUM_THREADS": int(threads),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",  # else CPUs with bf16/AMX silently run in bfloat16
    }
    compiled = ov.Core().compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()

    def run(x):
        # share_inputs: OpenVINO reads the caller's buffer in place. The output buffer belongs to the
        # request and is overwritten by the next call, so share_outputs=False copies it out once.
        result = request.infer({0: _as_numpy(x)}, share_inputs=True, share_outputs=False)
        return torch.from_numpy(result[0])

    return run


def _onnxruntime_fn(model_bytes: bytes, threads: int) -> PeerFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x):
        # ORT reads the input array in place and allocates a fresh output array, wrapped without a copy.
        return torch.from_numpy(session.run(None, {input_name: _as_numpy(x)})[0])

    return run


def compile_peer(peer: str, model, threads: int) -> PeerFn:
    """A callable running one forward of the ONNX ``model`` (ModelProto or its bytes) with ``peer`` on
    ``threads`` CPU threads: float32 array/tensor in, float32 torch tensor out."""
    _check_peer(peer)
    data = _model_bytes(model)
    if peer == "openvino":
        import openvino as ov

        return _openvino_fn(ov.Core().read_model(io.BytesIO(data)), threads)
    return _onnxruntime_fn(data, threads)


def alexnet_peer(peer: str, model: torch.nn.Module, example: torch.Tensor, threads: int) -> PeerFn:
    """A callable running one inference of ``model`` (an eval-mode AlexNet with the ``eager`` kernels)
    with ``peer``, for inputs of ``example``'s shape only (both graphs are traced with static shapes).

    OpenVINO converts the module itself (``openvino.convert_model``); ONNX Runtime runs the TorchScript
    ONNX exporter's graph (``dynamo=False``: the dynamo exporter would need the ``onnxscript`` package),
    exported from a copy whose adaptive average pool is fixed for ``example``'s shape (``_exportable``).
    """
    _check_peer(peer)
    if model.training:
        raise ValueError("alexnet_peer needs model.eval(): dropout would be exported in training mode")
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "kernels", "eager") != "eager":
        raise ValueError(f"alexnet_peer exports the eager kernels (plain torch ops), got kernels={cfg.kernels!r}")
    example = example.detach().float().cpu().contiguous()
    if peer == "openvino":
        import openvino as ov

        with torch.no_grad(), _quiet_tracing():
            ov_model = ov.convert_model(model, example_input=example)
        return _openvino_fn(ov_model, threads)
    buffer = io.BytesIO()
    with torch.no_grad(), _quiet_tracing():
        torch.onnx.export(_exportable(model, example), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["logits"])
    return _onnxruntime_fn(buffer.getvalue(), threads)


@contextmanager
def _quiet_tracing():
    """Silence the tracers' warnings (deprecations, shapes taken as constants, constant folding): the
    graph is meant for ``example``'s static shape only, so what they warn about is intended."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _FixedAdaptiveAvgPool(torch.nn.Module):
    """``nn.AdaptiveAvgPool2d(out)`` for one known input size, as two averaging matmuls (same bins)."""

    def __init__(self, in_h: int, in_w: int, out: int) -> None:
        super().__init__()
        self.register_buffer("rows", _adaptive_bins(in_h, out))  # out x in_h
        self.register_buffer("cols", _adaptive_bins(in_w, out).t().contiguous())  # in_w x out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


def _adaptive_bins(size: int, out: int) -> torch.Tensor:
    """Row i averages ``[floor(i * size / out), ceil((i + 1) * size / out))``, as ATen's adaptive pool."""
    m = torch.zeros(out, size)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _exportable(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """``model``, or a copy whose ``nn.AdaptiveAvgPool2d`` layers are fixed for ``example``'s shape.

    The TorchScript ONNX exporter loses the static shape after ``F.local_response_norm`` (its ``view``
    of traced sizes) and then refuses ``adaptive_avg_pool2d`` ("input size not accessible"). With the
    input shape fixed, the adaptive pool is a fixed linear map (the identity at AlexNet's 227 px), so
    a copy gets that map instead; the caller's model is left untouched.
    """
    pools = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, torch.nn.AdaptiveAvgPool2d)]
    if not pools:
        return model
    seen: dict[str, tuple[int, ...]] = {}

    def recorder(name: str):
        def hook(module, args) -> None:  # returns None: a pre-hook's return value would replace the input
            seen.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [mod.register_forward_pre_hook(recorder(name)) for name, mod in pools]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    copy = deepcopy(model)
    for name, mod in pools:
        out = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size, mod.output_size)
        if name not in seen or out[0] != out[1] or out[0] is None:
            raise RuntimeError(f"cannot fix {name} ({mod}) for the ONNX export")
        h, w = seen[name][-2:]
        fixed = torch.nn.Identity() if (h, w) == out else _FixedAdaptiveAvgPool(h, w, out[0])
        parent_name, _, child = name.rpartition(".")
        setattr(copy.get_submodule(parent_name) if parent_name else copy, child, fixed)
    return copy
