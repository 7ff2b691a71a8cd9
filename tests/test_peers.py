"""The optional CPU peers (bench/peers.py: OpenVINO, ONNX Runtime): their ONNX chains and AlexNet match
the eager reference, the paper's LRN alpha reaches ONNX as ``size * alpha``, and a missing peer is
reported (and skipped here) with its reason."""
import sys

import pytest
import torch

import kernels
from alexnet.model import MIN_INPUT_SIZE, build_model
from bench import peers
from kernels.catalog import OPS
from tests.conftest import assert_close, make_input

SHAPE = (2, 8, 13, 13)


@pytest.fixture(params=peers.PEERS)
def peer(request) -> str:
    reason = peers.peer_status((request.param,))[request.param]
    if reason is not None:
        pytest.skip(f"peer {request.param!r} unavailable here: {reason}")
    return request.param


@pytest.mark.parametrize("op", peers.CHAIN_OPS)
def test_chain_matches_eager(peer, op):
    x = make_input(SHAPE, torch.float32, "nchw", device="cpu")
    run = peers.compile_peer(peer, peers.chain_model(op, SHAPE), threads=1)
    out = run(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert_close(out, OPS[op].reference(x), torch.float32, f"{peer} {op}")
    assert_close(run(x.numpy()), OPS[op].reference(x), torch.float32, f"{peer} {op} (numpy input)")


def test_lrn_alpha_is_the_papers(peer):
    """With a large alpha and large activations, ONNX's alpha / size would be far off unless scaled."""
    lrn = {"size": 5, "alpha": 0.5, "beta": 0.75, "k": 2.0}
    x = 10 * make_input(SHAPE, torch.float32, "nchw", seed=1, device="cpu")
    out = peers.compile_peer(peer, peers.chain_model("relu_lrn", SHAPE, **lrn), threads=1)(x)
    assert_close(out, kernels.relu_lrn(x, **lrn, backend="eager"), torch.float32, f"{peer} relu_lrn, alpha 0.5")
    wrong = kernels.relu_lrn(x, **lrn, alpha_convention="pytorch", backend="eager")  # the unscaled reading
    assert (out - wrong).abs().max() > 0.1, "the test cannot tell the two alpha conventions apart"


def test_chain_model_shapes_and_attributes():
    pytest.importorskip("onnx", reason=f"onnx not installed: {peers.INSTALL_HINT}")
    model = peers.chain_model("relu_lrn_pool", (16, 96, 55, 55))
    assert [n.op_type for n in model.graph.node] == ["Relu", "LRN", "MaxPool"]
    lrn = {a.name: a for a in model.graph.node[1].attribute}
    assert lrn["alpha"].f == pytest.approx(5 * 1e-4) and lrn["bias"].f == pytest.approx(2.0)
    out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [16, 96, 27, 27]
    with pytest.raises(ValueError, match="unknown op"):
        peers.chain_model("lrn", SHAPE)


@pytest.mark.parametrize("missing", ["openvino", "onnxruntime", "onnx"])
def test_missing_peer_is_reported(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    status = peers.peer_status()
    affected = peers.PEERS if missing == "onnx" else (missing,)
    for name in affected:
        assert status[name] is not None and status[name].startswith("not installed")
        assert missing in status[name] and peers.INSTALL_HINT in status[name] and "\n" not in status[name]
        with pytest.raises(RuntimeError, match="unavailable here: not installed"):
            peers.compile_peer(name, b"", threads=1)


@pytest.mark.parametrize("size", [1, 2, 5, 6, 7, 13])
def test_fixed_adaptive_pool_matches_aten(size):
    x = torch.randn(2, 3, size, size + 1)
    fixed = peers._FixedAdaptiveAvgPool(size, size + 1, 6)
    torch.testing.assert_close(fixed(x), torch.nn.AdaptiveAvgPool2d(6)(x), rtol=1e-5, atol=1e-6)


def test_alexnet_matches_eager(peer):
    torch.manual_seed(0)
    model = build_model(conv_widths=(16, 32, 32, 32, 32), fc_width=64, num_classes=10).eval()  # two towers
    x = torch.randn(2, 3, MIN_INPUT_SIZE, MIN_INPUT_SIZE)
    with torch.no_grad():
        expected = model(x)
    run = peers.alexnet_peer(peer, model, x, threads=1)
    torch.testing.assert_close(run(x), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(model.towers[0].avgpool, torch.nn.AdaptiveAvgPool2d), "the caller's model was changed"


def test_alexnet_peer_needs_eval(peer):
    model = build_model(conv_widths=(16, 32, 32, 32, 32), fc_width=64, num_classes=10)
    with pytest.raises(ValueError, match="eval"):
        peers.alexnet_peer(peer, model, torch.randn(1, 3, MIN_INPUT_SIZE, MIN_INPUT_SIZE), threads=1)


def test_a_step_with_a_constant_input_builds_and_runs(peer, monkeypatch):
    """An ONNX operator whose factor is a constant input (``Mul``) gets it as an initializer."""
    from kernels.catalog import OnnxNode, OpSpec, Step

    scale = Step("relu_scale", {"scale": 3.0}, lambda shape, s: shape,
                 lambda s: [OnnxNode("Relu"), OnnxNode("Mul", constants=(float(s["scale"]),))],
                 forward_ops=2, backward_ops=2)
    spec = OpSpec("relu_scale", lambda x, scale, *, backend: torch.relu(x) * scale, (scale,), alexnet_sites=())
    monkeypatch.setitem(OPS, "relu_scale", spec)
    monkeypatch.setattr(peers, "CHAIN_OPS", (*peers.CHAIN_OPS, "relu_scale"))
    x = make_input(SHAPE, torch.float32, "nchw", device="cpu")
    out = peers.compile_peer(peer, peers.chain_model("relu_scale", SHAPE, scale=0.5), threads=1)(x)
    assert_close(out, torch.relu(x) * 0.5, torch.float32, f"{peer} relu then Mul by a constant")
