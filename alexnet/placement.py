"""Device placement of AlexNet's towers: the paper's two-GPU model parallelism, on real devices.

``parse_devices("cuda:0,cuda:1", "two-gpu")`` validates a device list; ``place_model(model, devices)``
puts tower t's parameters (its half of every conv and FC layer) on ``devices[t]`` and returns a
``PlacedAlexNet`` that runs the forward pass tower by tower. Activations stay on their tower's device;
only the paper's cross-tower connections move data (figure 2 of the paper):

* ``conv3_in``: each tower's pool2 output goes to the other tower (conv3 sees both towers),
* ``fc6_in``: each tower's pool5 output (flattened) goes to the other tower,
* ``fc7_in``, ``fc8_in``: each tower's fc6 / fc7 activations go to the other tower,
* ``logits``: tower B's half of fc8 goes to ``devices[0]``, the output device.

The FC layers stay split: each device holds half of each FC layer's neurons. Backward sends the
gradients of exactly these tensors back. ``cross_tower_bytes`` computes that traffic from the
configuration; ``PlacedAlexNet.traffic`` counts it at run time (``cross_tower``: tensors that crossed
towers, whatever the devices; ``device``: bytes that actually changed device, which also includes
copying the input batch to tower B's device).

Options:
* ``concurrent_towers=True``: on CUDA, each tower's segment between two cross-tower connections runs on
  its own CUDA stream, so the two towers of one GPU can overlap; the streams join at every connection.
  On CPU it is accepted and does nothing (CPU ops run one after another in this process).
* ``micro_batches=K``: the batch is split into K chunks that go through the towers one after another;
  CUDA launches are asynchronous, so on two devices tower B's work on chunk i overlaps tower A's on
  chunk i+1. Outputs are concatenated; the loss, outputs and gradients equal the unsplit batch's
  (up to float summation order; dropout draws differ).

Parameters and ``state_dict`` keys are those of the unplaced model (the placed module shares its towers).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from alexnet.model import LAYOUTS, MIN_INPUT_SIZE, AlexNet, check_input, split_evenly
from infra.errors import UsageError

LINKS = ("conv3_in", "fc6_in", "fc7_in", "fc8_in", "logits")
_SUPPORTED_TYPES = ("cpu", "cuda", "mps")


# ----------------------------------------------------------------------------------------- devices
class DeviceError(UsageError, ValueError):
    """A device name that does not exist here, or too few devices for the layout and processes."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise DeviceError(f"environment variable {name}={os.environ[name]!r} is not an integer") from None


def _one_device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device name {name!r}; use names like 'cpu', 'cuda:0', 'cuda:1'") from None
    if dev.type not in _SUPPORTED_TYPES:
        raise DeviceError(f"device {name!r}: type {dev.type!r} is not supported for training (use cpu or cuda)")
    if dev.type == "cpu":
        return torch.device("cpu")  # 'cpu:1' is the same memory as 'cpu'
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {name!r} requested but MPS is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r} requested but CUDA is not available (CPU-only torch build or no visible GPU)"
        )
    count = torch.cuda.device_count()
    index = 0 if dev.index is None else dev.index
    if index >= count:
        raise DeviceError(f"device {name!r} does not exist: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def parse_devices(
    spec: str | None,
    layout: str,
    *,
    local_rank: int | None = None,
    local_world_size: int | None = None,
) -> list[torch.device]:
    """One device per tower: ``[dev]`` for ``one-gpu``, ``[dev0, dev1]`` for ``two-gpu``.

    ``spec``: comma-separated names ("cuda:0,cuda:1", "cpu,cpu"). For ``two-gpu`` a single name puts
    both towers on that device. ``None`` or "auto" picks the default: this rank's GPU(s) when CUDA is
    available, else the CPU. Under torchrun (``local_rank``/``local_world_size`` default to LOCAL_RANK and
    LOCAL_WORLD_SIZE), the default gives local rank r GPUs r*n..r*n+n-1 (n towers), or GPU r for both
    towers when there are fewer GPUs; an explicit CUDA spec must list the devices of every local rank in
    order ("cuda:0,cuda:1,cuda:2,cuda:3" for two two-tower ranks) so that no two ranks share a GPU.
    """
    if layout not in LAYOUTS:
        raise DeviceError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    towers = LAYOUTS[layout]
    lr = _env_int("LOCAL_RANK", 0) if local_rank is None else local_rank
    lws = _env_int("LOCAL_WORLD_SIZE", 1) if local_world_size is None else local_world_size
    if not 0 <= lr < lws:
        raise DeviceError(f"local rank {lr} is outside the local world of size {lws}")

    if spec is None or spec.strip().lower() in ("", "auto"):
        if not torch.cuda.is_available():
            return [torch.device("cpu")] * towers
        count = torch.cuda.device_count()
        if count >= towers * lws:
            return [torch.device("cuda", lr * towers + t) for t in range(towers)]
        if count >= lws:
            return [torch.device("cuda", lr)] * towers
        raise DeviceError(
            f"{lws} process(es) per node need at least {lws} GPU(s) (ideally {towers * lws} for layout "
            f"{layout!r}), this machine has {count}"
        )

    names = [n.strip() for n in spec.split(",")]
    if any(not n for n in names):
        raise DeviceError(f"empty device name in --devices {spec!r}")
    devices = [_one_device(n) for n in names]
    uses_cuda = any(d.type == "cuda" for d in devices)
    if lws > 1 and uses_cuda:
        if len(devices) != towers * lws:
            raise DeviceError(
                f"{lws} processes per node with layout {layout!r} need {towers * lws} CUDA devices listed "
                f"({towers} per local rank, in rank order) so that ranks do not share a GPU; got {len(devices)} "
                f"({spec!r}). Omit --devices to use the default assignment."
            )
        return devices[lr * towers : (lr + 1) * towers]
    if len(devices) == 1:
        return devices * towers
    if len(devices) != towers:
        need = "one device" if towers == 1 else f"{towers} devices (one per tower) or one device for both"
        raise DeviceError(f"layout {layout!r} needs {need}, got {len(devices)}: {spec!r}")
    return devices


# ----------------------------------------------------------------------------------------- traffic
def _conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _link_numels(model: AlexNet, height: int, width: int) -> dict[str, list[int]]:
    """Per-sample element count of the tensor each tower sends over each link (paper's figure 2)."""
    cfg = model.cfg
    towers = cfg.num_towers
    k, s = cfg.pool_kernel, cfg.pool_stride
    hw = []
    for size in (height, width):
        size = _conv_out(size, 11, 4)  # conv1 11x11/4
        size = _conv_out(size, k, s)  # pool1
        size = _conv_out(size, 5, 1, 2)  # conv2 5x5 p2
        hw.append(_conv_out(size, k, s))  # pool2 (conv3..5 keep the size, pool5 -> adaptive 6x6)
    c2, c5 = cfg.conv_widths[1] // towers, cfg.conv_widths[4] // towers
    fc = cfg.fc_width // towers
    return {
        "conv3_in": [c2 * hw[0] * hw[1]] * towers,
        "fc6_in": [c5 * 6 * 6] * towers,
        "fc7_in": [fc] * towers,
        "fc8_in": [fc] * towers,
        "logits": split_evenly(cfg.num_classes, towers),
    }


def cross_tower_breakdown(
    model: AlexNet, input_shape: tuple, dtype: torch.dtype = torch.float32, *, backward: bool = True
) -> dict[str, int]:
    """Bytes crossing between towers per step, by link, computed from the configuration alone.

    Each of ``conv3_in`` .. ``fc8_in`` sends every tower's tensor to every other tower; ``logits`` sends
    the other towers' fc8 halves to tower 0's device. With ``backward`` the gradients of the same tensors
    travel back (same sizes). ``input_shape`` is (N, 3, H, W); ``dtype`` the activations' dtype.
    """
    if len(input_shape) != 4 or input_shape[1] != 3:
        raise ValueError(f"input_shape must be (N, 3, H, W), got {tuple(input_shape)}")
    n, _, h, w = input_shape
    if min(h, w) < MIN_INPUT_SIZE:
        raise ValueError(f"input {h}x{w} is smaller than AlexNet's minimum {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}")
    elsize = torch.empty((), dtype=dtype).element_size()
    towers = model.cfg.num_towers
    passes = 2 if backward else 1
    out = {}
    for link, numels in _link_numels(model, h, w).items():
        if link == "logits":
            sent = sum(numels[1:])  # each other tower -> tower 0 (output device)
        else:
            sent = sum(numels) * (towers - 1)  # each tower -> every other tower
        out[link] = passes * n * sent * elsize
    return out


def cross_tower_bytes(
    model: AlexNet, input_shape: tuple, dtype: torch.dtype = torch.float32, *, backward: bool = True
) -> int:
    """Total bytes moved between towers per training step (forward activations + backward gradients)."""
    return sum(cross_tower_breakdown(model, input_shape, dtype, backward=backward).values())


@dataclass
class TowerTraffic:
    """Run-time byte counters of a ``PlacedAlexNet``; ``reset()`` before a step, read after backward."""

    cross_tower: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LINKS, 0))
    device: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("input", *LINKS), 0))

    def reset(self) -> None:
        for counts in (self.cross_tower, self.device):
            for key in counts:
                counts[key] = 0

    @property
    def cross_tower_bytes(self) -> int:
        """Bytes of tensors that crossed from one tower to another (counted even when devices coincide)."""
        return sum(self.cross_tower.values())

    @property
    def device_bytes(self) -> int:
        """Bytes that actually changed device (cross-tower traffic plus the input copy to tower B)."""
        return sum(self.device.values())

    def as_dict(self) -> dict:
        return {"cross_tower_bytes": self.cross_tower_bytes, "device_bytes": self.device_bytes,
                "cross_tower": dict(self.cross_tower), "device": dict(self.device)}


class _CountedMove(torch.autograd.Function):
    """``x.to(device)`` that adds the bytes it moves (forward) and their gradient's bytes (backward)."""

    @staticmethod
    def forward(ctx, x, device, traffic, link, crosses_towers):
        ctx.src, ctx.traffic, ctx.link, ctx.crosses = x.device, traffic, link, crosses_towers
        moved = x.device != device
        ctx.moved = moved
        _add(traffic, link, _nbytes(x), crosses_towers, moved)
        return x.to(device) if moved else x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        _add(ctx.traffic, ctx.link, _nbytes(grad), ctx.crosses, ctx.moved)
        return (grad.to(ctx.src) if ctx.moved else grad), None, None, None, None


def _nbytes(x: torch.Tensor) -> int:
    """``x.nbytes`` written so that it also holds for symbolic (dynamic-shape) sizes."""
    return x.numel() * x.element_size()


@torch.compiler.disable
def _counted_move(x: torch.Tensor, device: torch.device, traffic: TowerTraffic, link: str, crosses: bool):
    """``_CountedMove.apply``, always run eagerly: under ``torch.compile`` the counters are Python state
    that a traced graph would update once at trace time (forward) or never (backward), so each link is
    a graph break and its autograd node stays an eager one that counts its gradient on every step."""
    return _CountedMove.apply(x, device, traffic, link, crosses)


@torch.compiler.disable
def _count_input(traffic: TowerTraffic, x: torch.Tensor) -> None:
    traffic.device["input"] += _nbytes(x)


def _add(traffic: TowerTraffic, link: str, nbytes: int, crosses: bool, moved: bool) -> None:
    if crosses:
        traffic.cross_tower[link] += nbytes
    if moved:
        traffic.device[link] += nbytes


# ----------------------------------------------------------------------------------------- placement
class PlacedAlexNet(AlexNet):
    """An ``AlexNet`` whose towers sit on given devices; shares the original model's towers (and so its
    parameters and ``state_dict`` keys). ``forward(x)`` returns logits on ``output_device``."""

    def __init__(self, model: AlexNet, devices: list[torch.device], *, concurrent_towers: bool, micro_batches: int):
        nn.Module.__init__(self)
        self.cfg = model.cfg
        self.towers = model.towers
        self.devices = list(devices)
        self.output_device = self.devices[0]
        self.concurrent_towers = concurrent_towers
        self.micro_batches = micro_batches
        self.traffic = TowerTraffic()
        self._streams: list | None = None
        for tower, device in zip(self.towers, self.devices):
            tower.to(device)

    def extra_repr(self) -> str:
        return (f"devices={[str(d) for d in self.devices]}, concurrent_towers={self.concurrent_towers}, "
                f"micro_batches={self.micro_batches}")

    # -- streams (CUDA only)
    def _tower_streams(self) -> list | None:
        if not self.concurrent_towers or any(d.type != "cuda" for d in self.devices):
            return None  # CPU: ops run in order; the flag is a documented no-op
        if self._streams is None:
            self._streams = [torch.cuda.Stream(device=d) for d in self.devices]
        return self._streams

    def _run_towers(self, segment: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run ``tower.<segment>`` on every tower (concurrently on CUDA streams when asked)."""
        streams = self._tower_streams()
        if streams is None:
            return [getattr(t, segment)(x) for t, x in zip(self.towers, inputs)]
        outs = []
        for tower, x, stream in zip(self.towers, inputs, streams):
            main = torch.cuda.current_stream(stream.device)
            stream.wait_stream(main)  # the input was produced on the main stream
            x.record_stream(stream)  # keep its memory until the side stream is done with it
            with torch.cuda.stream(stream):
                outs.append(getattr(tower, segment)(x))
        for out, stream in zip(outs, streams):
            main = torch.cuda.current_stream(stream.device)
            main.wait_stream(stream)  # join before the cross-tower connection
            out.record_stream(main)
        return outs

    def _exchange(self, link: str, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every tower gets all towers' tensors, concatenated on its own device (a cross-tower link)."""
        out = []
        for j, device in enumerate(self.devices):
            moved = [_counted_move(p, device, self.traffic, link, i != j) for i, p in enumerate(parts)]
            out.append(torch.cat(moved, dim=1))
        return out

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        inputs = []
        for device in self.devices:
            if x.device != device:
                _count_input(self.traffic, x)
                inputs.append(x.to(device))
            else:
                inputs.append(x)
        h = self._run_towers("lower", inputs)
        h = self._run_towers("upper", self._exchange("conv3_in", h))
        h = self._run_towers("hidden6", self._exchange("fc6_in", h))
        h = self._run_towers("hidden7", self._exchange("fc7_in", h))
        h = self._run_towers("fc8", self._exchange("fc8_in", h))
        logits = [_counted_move(p, self.output_device, self.traffic, "logits", i != 0) for i, p in enumerate(h)]
        return torch.cat(logits, dim=1)

    def forward(self, x: torch.Tensor, shapes: dict | None = None) -> torch.Tensor:
        if shapes is not None:  # feature_shapes(): the reference forward records shapes
            return super().forward(x, shapes)
        check_input(x)
        chunks = x.tensor_split(min(self.micro_batches, x.shape[0])) if self.micro_batches > 1 else (x,)
        outs = [self._forward_chunk(c) for c in chunks]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


def place_model(
    model: AlexNet, devices: list[torch.device], *, concurrent_towers: bool = False, micro_batches: int = 1
) -> PlacedAlexNet:
    """Move tower t of ``model`` to ``devices[t]`` (in place) and return the module that runs it.

    The result shares ``model``'s parameters; build the optimizer from it (or from ``model``) afterwards.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise TypeError("place_model expects the bare AlexNet; wrap the placed model with wrap_ddp afterwards")
    if not isinstance(model, AlexNet):
        raise TypeError(f"place_model expects an AlexNet, got {type(model).__name__}")
    if isinstance(model, PlacedAlexNet):
        raise TypeError("model is already placed; place the original AlexNet again instead")
    devices = [torch.device(d) for d in devices]
    towers = model.cfg.num_towers
    if len(devices) != towers:
        raise ValueError(
            f"layout {model.cfg.layout!r} has {towers} tower(s) and needs {towers} device(s), got "
            f"{len(devices)}: {[str(d) for d in devices]} (parse_devices expands one name to both towers)"
        )
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
        raise ValueError(f"micro_batches must be a positive integer, got {micro_batches!r}")
    if concurrent_towers and towers < 2:
        raise ValueError("concurrent_towers needs the two-gpu layout (the one-gpu layout has a single tower)")
    return PlacedAlexNet(model, devices, concurrent_towers=concurrent_towers, micro_batches=micro_batches)
