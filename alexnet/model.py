"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012) with the paper's two-tower layout and a selectable kernel backend.

Layers (paper, section 3.5 and figure 2), totals over both towers::

    227x227x3 -> conv1 96@11x11/4 -> ReLU, LRN, max-pool 3/2      55 -> 27
              -> conv2 256@5x5 p2 -> ReLU, LRN, max-pool 3/2      27 -> 13
              -> conv3 384@3x3 p1 -> ReLU   (sees both towers)    13
              -> conv4 384@3x3 p1 -> ReLU                         13
              -> conv5 256@3x3 p1 -> ReLU, max-pool 3/2           13 -> 6
              -> fc6 4096 -> ReLU, dropout  (sees both towers)
              -> fc7 4096 -> ReLU, dropout  (sees both towers)
              -> fc8 1000                   (sees both towers)

In the ``two-gpu`` layout each of the two ``Tower`` modules holds half of every layer; conv2, conv4 and
conv5 see only their own tower's previous layer, conv3 and the fully-connected layers see both (the
``torch.cat`` calls in ``AlexNet.forward``). That is 60,965,224 parameters with 1000 classes. The
``one-gpu`` layout is a single tower with the same total widths (every layer sees everything).

Dropout follows the paper ("we use dropout in the first two fully-connected layers": the outputs of
fc6 and fc7 are dropped, as in the Caffe reference model), so it sits between fc6/fc7 and the next layer.

The memory-bound layers go through ``kernels``: ReLU+LRN+max-pool after conv1 and conv2
(``kernels.relu_lrn_pool``), max-pool after conv5 (``kernels.max_pool``). ``AlexNetConfig.kernels`` is
the single switch choosing their backend; kernels hold no parameters, so ``state_dict`` keys and values
are identical for every backend and layout-preserving placement. Ablations that the fused kernels do not
cover (``activation="tanh"`` with LRN) use ``F.local_response_norm`` with ``alpha * size``, which is the
paper's alpha convention (PyTorch divides alpha by the window size).

Inputs smaller than 227 px (at least 67 px, for the three pooling stages) are allowed: an
``nn.AdaptiveAvgPool2d(6)`` after pool5 is the identity at 227 px and makes fc6's input 6x6 otherwise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

import kernels
from kernels.paper import PAPER_LRN, PAPER_POOL

LAYOUTS = {"one-gpu": 1, "two-gpu": 2}
ACTIVATIONS = ("relu", "tanh")
INITS = ("kaiming", "paper", "paper-bias0")
MIN_INPUT_SIZE = 67  # smallest input surviving conv1 (11/4) and three 3/2 pools

# Layers whose bias the paper initialises to 1 ("init: paper"); all other biases are 0.
PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


@dataclass
class AlexNetConfig:
    num_classes: int = 1000
    layout: str = "two-gpu"  # "two-gpu" (paper: 2 towers) | "one-gpu" (1 tower)
    conv_widths: tuple = (96, 256, 384, 384, 256)  # TOTAL kernels per conv layer, split evenly over towers
    fc_width: int = 4096  # TOTAL neurons per hidden FC layer, split evenly over towers
    lrn: bool = True
    lrn_size: int = PAPER_LRN["size"]
    lrn_alpha: float = PAPER_LRN["alpha"]  # paper convention: multiplies the plain sum of squares
    lrn_beta: float = PAPER_LRN["beta"]
    lrn_k: float = PAPER_LRN["k"]
    pool_kernel: int = PAPER_POOL["kernel_size"]  # 3/2 overlapping pooling (paper); 2/2 is the ablation
    pool_stride: int = PAPER_POOL["stride"]
    activation: str = "relu"  # "relu" | "tanh"
    dropout: float = 0.5
    init: str = "kaiming"  # "kaiming" (default, trains) | "paper" | "paper-bias0"
    input_std: float = 1.0  # std of the network input (train.py: from the training set), for kaiming's conv1
    kernels: str = "eager"  # kernels backend for ReLU+LRN+pool and max-pool

    @property
    def num_towers(self) -> int:
        return LAYOUTS[self.layout]

    def validate(self) -> "AlexNetConfig":
        """Raise ValueError naming the first bad field; return self."""
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {self.layout!r}")
        t = self.num_towers
        widths = tuple(self.conv_widths)
        if len(widths) != 5 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"conv_widths must be 5 positive integers, got {self.conv_widths!r}")
        if any(w % t for w in widths) or self.fc_width % t:
            raise ValueError(
                f"layout {self.layout!r} splits every layer over {t} towers: conv_widths {widths} and "
                f"fc_width {self.fc_width} must be divisible by {t}"
            )
        if self.num_classes < t:
            raise ValueError(f"num_classes ({self.num_classes}) must be at least the number of towers ({t})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.kernels not in kernels.BACKENDS:
            raise ValueError(f"kernels must be one of {kernels.BACKENDS}, got {self.kernels!r}")
        if not (self.input_std > 0 and math.isfinite(self.input_std)):
            raise ValueError(f"input_std must be a positive finite number, got {self.input_std}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pool_kernel < 1 or self.pool_stride < 1:
            raise ValueError(f"pool kernel and stride must be positive, got {self.pool_kernel}/{self.pool_stride}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_widths"] = list(self.conv_widths)
        return d


# Named overrides of AlexNetConfig. "one-gpu-half" is the paper's one-GPU control: "half as many kernels in
# each convolutional layer", except conv5 and the fully-connected layers, which it kept at full size.
PRESETS: dict[str, dict] = {
    "paper": {},
    "one-gpu": {"layout": "one-gpu"},
    "one-gpu-half": {"layout": "one-gpu", "conv_widths": (48, 128, 192, 192, 256)},
}


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` sizes differing by at most one (first ones larger)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Tower(nn.Module):
    """One tower's share of every layer; ``AlexNet.forward`` moves data between towers."""

    def __init__(self, cfg: AlexNetConfig, num_outputs: int) -> None:
        super().__init__()
        t = cfg.num_towers
        c1, c2, c3, c4, c5 = (w // t for w in cfg.conv_widths)
        fc = cfg.fc_width // t
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, c1, kernel_size=11, stride=4)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)  # own tower only
        self.conv3 = nn.Conv2d(c2 * t, c3, kernel_size=3, padding=1)  # both towers
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3, padding=1)  # own tower only
        self.conv5 = nn.Conv2d(c4, c5, kernel_size=3, padding=1)  # own tower only
        self.avgpool = nn.AdaptiveAvgPool2d(6)  # identity at 227 px input
        self.fc6 = nn.Linear(c5 * t * 6 * 6, fc)  # both towers
        self.fc7 = nn.Linear(fc * t, fc)
        self.fc8 = nn.Linear(fc * t, num_outputs)
        self.dropout = nn.Dropout(cfg.dropout)

    @property
    def device(self) -> torch.device:
        return self.conv1.weight.device

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if self.cfg.activation == "relu" else torch.tanh(x)

    def _act_norm_pool(self, x: torch.Tensor) -> torch.Tensor:
        """Activation, LRN (if on) and max-pool after conv1 and conv2."""
        cfg = self.cfg
        pool = dict(kernel_size=cfg.pool_kernel, stride=cfg.pool_stride)
        lrn = dict(size=cfg.lrn_size, alpha=cfg.lrn_alpha, beta=cfg.lrn_beta, k=cfg.lrn_k)
        if cfg.activation == "relu" and cfg.lrn:
            return kernels.relu_lrn_pool(x, **lrn, **pool, backend=cfg.kernels)
        x = self._act(x)
        if cfg.lrn:  # tanh ablation: no fused kernel; paper alpha convention via alpha * size
            x = F.local_response_norm(x, cfg.lrn_size, alpha=cfg.lrn_alpha * cfg.lrn_size, beta=cfg.lrn_beta, k=cfg.lrn_k)
        return kernels.max_pool(x, **pool, backend=cfg.kernels)

    def lower(self, x: torch.Tensor, shapes: dict | None = None) -> torch.Tensor:
        """conv1 -> pool1 -> conv2 -> pool2 (tower-local)."""
        x = self.conv1(x)
        _record(shapes, "conv1", x)
        x = self._act_norm_pool(x)
        _record(shapes, "pool1", x)
        x = self.conv2(x)
        _record(shapes, "conv2", x)
        x = self._act_norm_pool(x)
        _record(shapes, "pool2", x)
        return x

    def upper(self, x: torch.Tensor, shapes: dict | None = None) -> torch.Tensor:
        """conv3 (input: all towers) -> conv4 -> conv5 -> pool5, flattened."""
        x = self._act(self.conv3(x))
        _record(shapes, "conv3", x)
        x = self._act(self.conv4(x))
        _record(shapes, "conv4", x)
        x = self._act(self.conv5(x))
        _record(shapes, "conv5", x)
        x = kernels.max_pool(x, self.cfg.pool_kernel, self.cfg.pool_stride, backend=self.cfg.kernels)
        x = self.avgpool(x)
        _record(shapes, "pool5", x)
        return torch.flatten(x, 1)

    def hidden6(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self._act(self.fc6(x)))

    def hidden7(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self._act(self.fc7(x)))


def _record(shapes: dict | None, name: str, x: torch.Tensor) -> None:
    if shapes is not None:
        shapes.setdefault(name, []).append(tuple(x.shape))


class AlexNet(nn.Module):
    """AlexNet with 1 or 2 towers; ``cfg.kernels`` picks the backend of the memory-bound layers."""

    def __init__(self, cfg: AlexNetConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        outputs = split_evenly(cfg.num_classes, cfg.num_towers)  # fc8: classes split over towers
        self.towers = nn.ModuleList(Tower(cfg, n) for n in outputs)
        init_weights(self, cfg.init)

    def set_kernels(self, backend: str) -> None:
        """Switch the kernels backend (no parameters change)."""
        if backend not in kernels.BACKENDS:
            raise ValueError(f"kernels must be one of {kernels.BACKENDS}, got {backend!r}")
        self.cfg.kernels = backend

    def _to_each(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every tower gets all towers' outputs concatenated on its own device (a cross-tower link)."""
        return [torch.cat([p.to(t.device) for p in parts], dim=1) for t in self.towers]

    def forward(self, x: torch.Tensor, shapes: dict | None = None) -> torch.Tensor:
        check_input(x)
        # x: N x 3 x 227 x 227; shapes below are per tower in the two-gpu layout
        h = [t.lower(x.to(t.device), shapes) for t in self.towers]  # T x (N x 128 x 13 x 13)
        h = [t.upper(hi, shapes) for t, hi in zip(self.towers, self._to_each(h))]  # T x (N x 4608)
        h = [t.hidden6(hi) for t, hi in zip(self.towers, self._to_each(h))]  # T x (N x 2048)
        h = [t.hidden7(hi) for t, hi in zip(self.towers, self._to_each(h))]  # T x (N x 2048)
        h = [t.fc8(hi) for t, hi in zip(self.towers, self._to_each(h))]  # T x (N x 500)
        out_device = self.towers[0].device
        return torch.cat([p.to(out_device) for p in h], dim=1)  # N x num_classes

    @torch.no_grad()
    def feature_shapes(self, x: torch.Tensor) -> dict[str, tuple]:
        """Shapes of the named intermediate activations for input ``x``, channels summed over towers."""
        per_tower: dict[str, list] = {}
        self.forward(x, per_tower)
        return {
            name: (s[0][0], sum(shape[1] for shape in s), *s[0][2:]) for name, s in per_tower.items()
        }


def check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"AlexNet expects an N x 3 x H x W image batch, got {shape}")
    if min(x.shape[-2:]) < MIN_INPUT_SIZE:
        raise ValueError(
            f"AlexNet needs images of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} px "
            f"(conv1 11/4 and three 3/2 pools), got {x.shape[-2]}x{x.shape[-1]}"
        )
    if not x.is_floating_point():
        raise TypeError(f"AlexNet expects a floating-point image batch, got {x.dtype} (normalise uint8 images first)")


def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise conv and linear layers.

    * ``kaiming``: He-normal weights (fan-in, gain of the activation), conv1's divided by
      ``cfg.input_std`` (the paper feeds mean-subtracted 0..255 pixels, std ~60) so activations start at
      unit scale; zero biases; the last layer N(0, 0.01). Trains from scratch at every size used here.
    * ``paper``: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere
      (section 5). Measured on an H100 (CIFAR-10 at 227 px, SGD lr 0.01) it stays at chance: with these
      small weights the signal vanishes through eight layers and the constant biases dominate.
    * ``paper-bias0``: the paper's weights with all biases 0.
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    for tower in model.modules():
        if not isinstance(tower, Tower):
            continue
        gain_name = tower.cfg.activation
        for name, layer in tower.named_children():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            if scheme == "kaiming":
                if name == "fc8":
                    nn.init.normal_(layer.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity=gain_name)
                if name == "conv1":  # unit-scale activations whatever the input scale (0..255 pixels)
                    layer.weight.data.div_(tower.cfg.input_std)
                nn.init.zeros_(layer.bias)
            else:
                nn.init.normal_(layer.weight, 0.0, 0.01)
                bias = 1.0 if scheme == "paper" and name in PAPER_BIAS_ONE else 0.0
                nn.init.constant_(layer.bias, bias)


def build_model(cfg: AlexNetConfig | None = None, **overrides) -> AlexNet:
    """``AlexNet(cfg)`` with optional field overrides, e.g. ``build_model(layout="one-gpu")``."""
    cfg = replace(cfg or AlexNetConfig(), **overrides)
    return AlexNet(cfg)


def config_from_preset(name: str, **overrides) -> AlexNetConfig:
    """An ``AlexNetConfig`` from a ``PRESETS`` name plus field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return AlexNetConfig(**{**PRESETS[name], **overrides})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
