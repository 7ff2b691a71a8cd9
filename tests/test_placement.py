"""Tower placement: device parsing and its errors, identical outputs/gradients in every placement, and the
cross-tower byte counter against the analytic count and against the tensors the towers actually produced."""
import copy

import pytest
import torch

from alexnet import placement
from alexnet.model import AlexNetConfig, Tower, build_model

SMALL = dict(num_classes=10, conv_widths=(16, 32, 48, 48, 32), fc_width=64, dropout=0.0)
TWO_GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
ONE_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def small_model(**overrides):
    torch.manual_seed(0)
    return build_model(AlexNetConfig(**{**SMALL, **overrides}))


def batch(n=4, size=67, device="cpu"):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device)


def loss_and_grads(net, x, y):
    net.zero_grad(set_to_none=True)
    logits = net(x)
    loss = torch.nn.functional.cross_entropy(logits, y.to(logits.device))
    loss.backward()
    return logits.detach().cpu(), {n: p.grad.detach().cpu() for n, p in net.named_parameters()}


# ------------------------------------------------------------------------------ parse_devices
def test_parse_devices_expands_and_validates():
    cpu = torch.device("cpu")
    assert placement.parse_devices("cpu,cpu", "two-gpu") == [cpu, cpu]
    assert placement.parse_devices("cpu", "two-gpu") == [cpu, cpu]  # one name: both towers there
    assert placement.parse_devices(" cpu ", "one-gpu") == [cpu]
    default = placement.parse_devices(None, "two-gpu", local_rank=0, local_world_size=1)
    assert len(default) == 2 and default[0].type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    "spec, layout, message",
    [
        ("gpu0", "two-gpu", "unknown device name 'gpu0'"),
        ("cpu,cpu,cpu", "two-gpu", "needs 2 devices"),
        ("cpu,cpu", "one-gpu", "needs one device"),
        ("cpu,,cpu", "two-gpu", "empty device name"),
        ("cpu", "three-gpu", "unknown layout"),
        ("cuda:99", "two-gpu", "cuda:99"),
        ("meta", "one-gpu", "not supported"),
    ],
)
def test_parse_devices_errors_name_the_problem(spec, layout, message):
    with pytest.raises(ValueError, match=message):
        placement.parse_devices(spec, layout, local_rank=0, local_world_size=1)


def test_parse_devices_rejects_bad_local_rank():
    with pytest.raises(ValueError, match="outside the local world"):
        placement.parse_devices("cpu", "two-gpu", local_rank=2, local_world_size=2)


@ONE_GPU
def test_parse_devices_torchrun_ranks_do_not_share_gpus():
    with pytest.raises(ValueError, match="need 4 CUDA devices"):
        placement.parse_devices("cuda:0,cuda:0", "two-gpu", local_rank=1, local_world_size=2)


# ------------------------------------------------------------------------------ place_model errors
def test_place_model_errors():
    model = small_model()
    with pytest.raises(ValueError, match="needs 2 device"):
        placement.place_model(model, [torch.device("cpu")])
    with pytest.raises(ValueError, match="micro_batches"):
        placement.place_model(model, ["cpu", "cpu"], micro_batches=0)
    with pytest.raises(ValueError, match="two-gpu layout"):
        placement.place_model(small_model(layout="one-gpu"), ["cpu"], concurrent_towers=True)
    placed = placement.place_model(model, ["cpu", "cpu"])
    with pytest.raises(TypeError, match="already placed"):
        placement.place_model(placed, ["cpu", "cpu"])


# ------------------------------------------------------------------------------ equivalence
def test_placed_model_shares_parameters_and_state_dict_keys():
    model = small_model()
    placed = placement.place_model(model, placement.parse_devices("cpu,cpu", "two-gpu"))
    assert list(placed.state_dict()) == list(model.state_dict())
    assert [id(p) for p in placed.parameters()] == [id(p) for p in model.parameters()]
    x, _ = batch()
    assert placed.feature_shapes(x) == model.feature_shapes(x)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(concurrent_towers=True),  # accepted on CPU, no effect
        dict(micro_batches=2),
        dict(micro_batches=3),  # uneven chunks of a batch of 4
        dict(micro_batches=8),  # more micro-batches than samples
    ],
)
def test_same_outputs_and_gradients_in_every_placement(options):
    x, y = batch()
    reference = small_model()
    want_logits, want_grads = loss_and_grads(reference, x, y)

    placed = placement.place_model(copy.deepcopy(reference), ["cpu", "cpu"], **options)
    logits, grads = loss_and_grads(placed, x, y)
    exact = options.get("micro_batches", 1) == 1
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, want_logits, **tol)
    assert grads.keys() == want_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], **tol, msg=name)


def test_one_gpu_layout_places_on_one_device():
    x, y = batch()
    reference = small_model(layout="one-gpu")
    want_logits, want_grads = loss_and_grads(reference, x, y)
    placed = placement.place_model(copy.deepcopy(reference), placement.parse_devices("cpu", "one-gpu"), micro_batches=2)
    logits, grads = loss_and_grads(placed, x, y)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-5, atol=1e-6)
    assert placed.traffic.cross_tower_bytes == 0 == placement.cross_tower_bytes(reference, x.shape)


# ------------------------------------------------------------------------------ traffic
def test_analytic_bytes_match_paper_shapes_at_227():
    """Paper layout, batch 128, fp32: the tensors of figure 2, from the model's own feature shapes."""
    model = build_model(AlexNetConfig(dropout=0.0))  # the paper's widths, 1000 classes
    shapes = model.feature_shapes(torch.zeros(1, 3, 227, 227))
    assert shapes["pool2"] == (1, 256, 13, 13) and shapes["pool5"] == (1, 256, 6, 6)
    n, fp32 = 128, 4
    # every tower sends its half of pool2, pool5, fc6, fc7 to the other; tower B sends its 500 logits
    forward = n * fp32 * (256 * 13 * 13 + 256 * 6 * 6 + 4096 + 4096 + 500)
    assert placement.cross_tower_bytes(model, (n, 3, 227, 227), torch.float32, backward=False) == forward
    assert placement.cross_tower_bytes(model, (n, 3, 227, 227)) == 2 * forward
    assert placement.cross_tower_bytes(model, (n, 3, 227, 227), torch.bfloat16) == forward  # half the bytes


@pytest.mark.parametrize("micro_batches", [1, 3])
def test_counter_agrees_with_analytic_count_and_with_produced_tensors(micro_batches, monkeypatch):
    """Instrument the towers: record the bytes of every segment output, then compare with the counter."""
    produced = {"lower": 0, "upper": 0, "hidden6": 0, "hidden7": 0, "fc8": 0}
    for name in ("lower", "upper", "hidden6", "hidden7"):  # both towers' outputs go to the other tower

        def recording(self, *args, _original=getattr(Tower, name), _name=name, **kwargs):
            out = _original(self, *args, **kwargs)
            produced[_name] += out.nbytes
            return out

        monkeypatch.setattr(Tower, name, recording)

    x, y = batch(n=5)
    placed = placement.place_model(small_model(), ["cpu", "cpu"], micro_batches=micro_batches)
    # logits: only tower B's half goes to the output device (tower A's device)
    placed.towers[1].fc8.register_forward_hook(lambda mod, inp, out: produced.__setitem__("fc8", produced["fc8"] + out.nbytes))
    with torch.no_grad():
        placed(x)
    forward_only = placement.cross_tower_bytes(placed, x.shape, backward=False)
    assert placed.traffic.cross_tower_bytes == forward_only == sum(produced.values())
    assert placed.traffic.cross_tower == placement.cross_tower_breakdown(placed, x.shape, backward=False)

    placed.traffic.reset()
    assert placed.traffic.cross_tower_bytes == 0
    loss_and_grads(placed, x, y)
    assert placed.traffic.cross_tower_bytes == placement.cross_tower_bytes(placed, x.shape) == 2 * forward_only
    assert placed.traffic.device_bytes == 0  # both "devices" are the CPU: nothing actually moved


@TWO_GPUS
def test_two_gpus_match_cpu_and_move_exactly_the_counted_bytes():
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountCopies(TorchDispatchMode):
        moved = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
                src = args[1] if func is torch.ops.aten.copy_.default else args[0]
                if isinstance(out, torch.Tensor) and src.device != out.device:
                    CountCopies.moved += out.nbytes
            return out

    x, y = batch(device="cuda:0")
    reference = small_model().cuda(0)
    want_logits, want_grads = loss_and_grads(reference, x, y)
    placed = placement.place_model(copy.deepcopy(reference), placement.parse_devices("cuda:0,cuda:1", "two-gpu"))
    assert {p.device for p in placed.towers[1].parameters()} == {torch.device("cuda:1")}
    with CountCopies():
        logits, grads = loss_and_grads(placed, x, y)
    torch.testing.assert_close(logits, want_logits, rtol=1e-4, atol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-4, atol=1e-5)
    analytic = placement.cross_tower_bytes(placed, x.shape)
    assert placed.traffic.cross_tower_bytes == analytic
    assert placed.traffic.device_bytes == analytic + x.nbytes  # plus the input copy to tower B
    assert CountCopies.moved >= analytic


@ONE_GPU
@pytest.mark.parametrize("options", [dict(concurrent_towers=True), dict(concurrent_towers=True, micro_batches=2)])
def test_concurrent_towers_on_one_gpu_match(options):
    x, y = batch(n=8, device="cuda:0")
    reference = small_model().cuda(0)
    want_logits, want_grads = loss_and_grads(reference, x, y)
    placed = placement.place_model(copy.deepcopy(reference), placement.parse_devices("cuda:0", "two-gpu"), **options)
    logits, grads = loss_and_grads(placed, x, y)
    torch.cuda.synchronize()
    torch.testing.assert_close(logits, want_logits, rtol=1e-4, atol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-4, atol=1e-5)
