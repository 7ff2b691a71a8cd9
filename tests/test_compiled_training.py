"""Whole-model ``torch.compile`` trains like eager: the placed model's traffic counter under compile, and
Inductor's gradients of the two-tower AlexNet on a CPU through ``alexnet.compiled.compile_model`` (without
them torch 2.13 gives one tower's conv3..conv5 zero gradients at 67 px, see tests/test_inductor_repro.py).
Inductor compiles are costly on a CPU: one tiny model per test, batch 2."""
import pytest
import torch
import torch.nn.functional as F

import kernels
from alexnet import compiled, placement
from alexnet.model import AlexNetConfig, build_model

TINY = dict(num_classes=4, conv_widths=(8, 8, 8, 8, 8), fc_width=16, dropout=0.0)


def tiny_model(**overrides):
    torch.manual_seed(0)
    return build_model(AlexNetConfig(**{**TINY, **overrides}))


def step(net, model, x, y):
    """One forward + backward; the parameters' gradients (by name) and the logits."""
    model.zero_grad(set_to_none=True)
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def batch(size, n=2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 4, (n,), generator=g)


def assert_same_grads(got, want, what):
    bad = {n: f"{(got[n] - want[n]).abs().max().item():.3g} (eager max {want[n].abs().max().item():.3g})"
           for n in want if not torch.allclose(got[n], want[n], rtol=1e-3, atol=1e-5)}
    assert not bad, f"{what}: compiled gradients differ from eager: {bad}"


def test_inductor_options_only_for_cpu_models():
    assert compiled.inductor_options(["cpu", "cpu"]) == {"reorder_for_peak_memory": False}
    assert compiled.inductor_options([torch.device("cuda", 0), torch.device("cuda", 1)]) == {}


def test_compile_model_looks_up_the_kernels_backend_before_tracing(monkeypatch):
    """A first lookup inside the traced forward imports the backend: a graph break kept for good."""
    monkeypatch.setattr(kernels.ops, "_checked_backends", {})
    model = tiny_model(layout="two-gpu", kernels="eager")
    compiled.compile_model(placement.place_model(model, placement.parse_devices("cpu,cpu", "two-gpu")), ["cpu"])
    assert "eager" in kernels.ops._checked_backends


def test_traffic_counter_under_compile_counts_every_step():
    """The placed two-device model compiles (its links are graph breaks) and counts what eager counts, at
    two input sizes (the second makes Dynamo's shapes symbolic, where ``nbytes`` used to fail)."""
    model = tiny_model()
    placed = placement.place_model(model, placement.parse_devices("cpu,cpu", "two-gpu"))
    runner = torch.compile(placed, backend="aot_eager")  # Dynamo + AOTAutograd: the tracing that failed
    for size in (67, 75):
        x, y = batch(size)
        placed.traffic.reset()
        want_logits, want = step(placed, model, x, y)
        eager_counts = placed.traffic.as_dict()
        placed.traffic.reset()
        got_logits, got = step(runner, model, x, y)
        assert placed.traffic.as_dict() == eager_counts, f"{size} px: compiled counts differ from eager"
        assert placed.traffic.cross_tower == placement.cross_tower_breakdown(model, tuple(x.shape)), size
        torch.testing.assert_close(got_logits, want_logits)
        assert_same_grads(got, want, f"aot_eager at {size} px")


@pytest.mark.slow
def test_compiled_two_tower_gradients_match_eager_on_cpu():
    """The configuration that torch 2.13's CPU Inductor trains wrongly without the options (67 px: pool5
    is 1x1 and the adaptive pool upsamples it), compiled as ``--compile-model`` does."""
    model = tiny_model(layout="two-gpu")
    x, y = batch(67)
    want_logits, want = step(model, model, x, y)
    got_logits, got = step(compiled.compile_model(model, ["cpu"]), model, x, y)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    assert_same_grads(got, want, "Inductor, two-gpu layout, 67 px")


@pytest.mark.slow
@pytest.mark.parametrize("backend", [b for b in kernels.BACKENDS if b != "eager"])
def test_compiled_one_tower_gradients_match_eager_for_each_backend(backend):
    """Every kernels backend that runs here, under the whole-model compile (one tower, the smallest input)."""
    reason = kernels.backend_status()[backend]
    if reason is not None:
        pytest.skip(f"backend {backend!r} unavailable here: {reason}")
    model = tiny_model(layout="one-gpu", kernels=backend)
    x, y = batch(67, n=1)
    model.set_kernels("eager")
    want_logits, want = step(model, model, x, y)
    model.set_kernels(backend)
    got_logits, got = step(compiled.compile_model(model, ["cpu"]), model, x, y)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    assert_same_grads(got, want, f"Inductor, one-gpu layout, kernels {backend}")
