"""cuda-convnet's "conv-local" CIFAR-10 nets, the source of the paper's 13% / 11% (section 3.3).

Transcribed from cuda-convnet (public copy ``github.com/dnouri/cuda-convnet``, commit
``e4ac0c1f374a15cfe3944bd6d732c3822cc2b96b``): ``example-layers/layers-conv-local-{11,13}pct.cfg`` (the
layers), ``layer-params-conv-local-{11,13}pct.cfg`` (per-layer learning parameters, ``LAYER_PARAMS``),
``layer.py`` (shapes, init, the normalisation constants) and ``src/cudaconv2/conv_util.cu`` (``kFCNorm``,
the cross-map normalisation kernel). On 24x24 crops:

11pct: conv1 64@5x5 pad 2 + ReLU (24x24) -> max-pool 3/2 (12x12) -> cmrnorm -> conv2 64@5x5 pad 2 + ReLU
       -> cmrnorm -> max-pool 3/2 (6x6) -> local3 64@3x3 pad 1 + ReLU -> local4 32@3x3 pad 1 + ReLU -> fc10
13pct: the same without the two cmrnorm layers, local3 with 32 filters.

Note the order in the 11pct file: the first normalisation follows pool1, the second precedes pool2.

* Normalisation (``cmrnorm``, ``size=9 scale=0.001 pow=0.75``): ``layer.py`` divides ``scale`` by ``size``
  and ``kFCNorm`` computes ``b = a * (1 + scale/size * sum_{window} a^2) ** -pow`` over channels
  ``c-4 .. c+4`` clipped at the edges: in this project's paper convention ``k=1``, ``alpha=0.001/9``,
  ``beta=0.75``, ``n=9`` (``CMRNORM``); not the ImageNet constants (k=2, n=5, alpha=1e-4).
* Pooling: cuda-convnet's ``outputsX = ceil((size - start - sizeX) / stride) + 1`` with ``start=0`` gives
  24 -> 12 and 12 -> 6 where floor mode gives 11 and 5; the last window hangs one pixel over the bottom
  and right edges and is clipped. Padding the pre-ReLU map with one zero row/column at the bottom/right and
  pooling in floor mode is exact: after ReLU every value is >= 0, so the extra 0 never wins a max it
  should not, and the normalisation of an all-zero column is 0.
* The ops: pool2 + rnorm2 is ``kernels.relu_lrn_pool`` (ReLU -> LRN -> max-pool, fused); pool1 then rnorm1
  is ``kernels.max_pool`` then ``kernels.relu_lrn`` (max-pool commutes with ReLU, so pooling the pre-ReLU
  map and applying ReLU afterwards is the same); the 13pct net pools with ``kernels.max_pool`` and applies
  ReLU on the pooled (4x smaller) map. Backend: ``backend=`` (``cpp`` is the fastest on a CPU).
* Init (``layer.py`` ``make_weights``/``make_biases``): weights Gaussian with std ``initW`` (1e-4 conv1,
  1e-2 conv2 and fc10, 4e-2 local3/local4), biases ``initB`` = 0 (the default; no cfg sets it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import kernels
from alexnet.local_conv import LocallyConnected2d
from kernels.paper import pool_output_size

ARMS = ("13pct", "11pct")
CROP = 24  # cuda-convnet's CroppedCIFARDataProvider: 32 - 2 * crop_border (4)
# cmrnorm size=9, scale=0.001, pow=0.75 in this project's paper convention (alpha multiplies the plain sum)
CMRNORM = {"size": 9, "alpha": 0.001 / 9, "beta": 0.75, "k": 1.0}
POOL = {"kernel_size": 3, "stride": 2, "start": 0}
# layer-params-conv-local-{11,13}pct.cfg: epsW, epsB, momW, momB, wc per weight layer
_COMMON = {"epsW": 0.001, "epsB": 0.002, "momW": 0.9, "momB": 0.9}
LAYER_PARAMS = {
    "11pct": {"conv1": {**_COMMON, "wc": 0.0}, "conv2": {**_COMMON, "wc": 0.0}, "local3": {**_COMMON, "wc": 0.004},
              "local4": {**_COMMON, "wc": 0.004}, "fc10": {**_COMMON, "wc": 0.01}},
    "13pct": {"conv1": {**_COMMON, "wc": 0.0}, "conv2": {**_COMMON, "wc": 0.0}, "local3": {**_COMMON, "wc": 0.004},
              "local4": {**_COMMON, "wc": 0.004}, "fc10": {**_COMMON, "wc": 0.004}},
}
INIT_STD = {"conv1": 1e-4, "conv2": 1e-2, "local3": 4e-2, "local4": 4e-2, "fc10": 1e-2}


@dataclass(frozen=True)
class ConvLocalConfig:
    """One of the two cfg files: the filter counts and whether the cmrnorm layers are there. ``cmrnorm=False``
    removes the 11pct net's two cmrnorm layers and nothing else: not a cfg of cuda-convnet, but the baseline
    that prices the normalisation itself (the 13pct net differs in local3's filters too)."""

    arm: str = "11pct"
    num_classes: int = 10
    cmrnorm: bool | None = None  # None: as the cfg file has it

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")
        if self.cmrnorm and self.arm != "11pct":
            raise ValueError(f"the {self.arm} net has no cmrnorm layers to keep; only 11pct's can be removed")

    @property
    def lrn(self) -> bool:
        return self.arm == "11pct" if self.cmrnorm is None else self.cmrnorm

    @property
    def local3_filters(self) -> int:
        return 64 if self.arm == "11pct" else 32


def convnet_pool_size(size: int, kernel_size: int = 3, stride: int = 2, start: int = 0) -> int:
    """cuda-convnet's pooling output size (``layer.py`` ``PoolLayerParser``, ``outputsX=0``): rounds up."""
    return -(-(size - start - kernel_size) // stride) + 1


def pool_padding(size: int, kernel_size: int = 3, stride: int = 2) -> int:
    """Zero rows/columns to add at the bottom/right so floor-mode pooling gives cuda-convnet's size."""
    want = convnet_pool_size(size, kernel_size, stride)
    pad = 0
    while pool_output_size(size + pad, kernel_size, stride) < want:
        pad += 1
    return pad


class ConvLocalNet(nn.Module):
    """layers-conv-local-11pct / -13pct (see the module docstring). Input: N x 3 x 24 x 24."""

    def __init__(self, config: ConvLocalConfig = ConvLocalConfig(), backend: str = "cpp"):
        super().__init__()
        self.config, self.backend = config, backend
        s1 = CROP                                      # 24: conv1 keeps the size (pad 2, 5x5)
        self.pad1 = pool_padding(s1)                   # 1
        s2 = convnet_pool_size(s1)                     # 12
        self.pad2 = pool_padding(s2)                   # 1
        s3 = convnet_pool_size(s2)                     # 6
        self.conv1 = nn.Conv2d(3, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        self.local3 = LocallyConnected2d(64, config.local3_filters, s3, 3, padding=1)
        self.local4 = LocallyConnected2d(config.local3_filters, 32, s3, 3, padding=1)
        self.fc10 = nn.Linear(32 * s3 * s3, config.num_classes)
        with torch.no_grad():
            for name, std in INIT_STD.items():
                layer = getattr(self, name)
                layer.weight.normal_(0.0, std)
                layer.bias.zero_()

    def _pool(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """max-pool 3/2 of a pre-ReLU map, rounded up as cuda-convnet does (ReLU still to apply)."""
        return kernels.max_pool(F.pad(x, (0, pad, 0, pad)), POOL["kernel_size"], POOL["stride"], backend=self.backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)                                       # N x 64 x 24 x 24 (pre-ReLU)
        x = self._pool(x, self.pad1)                            # N x 64 x 12 x 12
        if self.config.lrn:
            x = kernels.relu_lrn(x, **CMRNORM, backend=self.backend)   # ReLU, rnorm1
        else:
            x = F.relu(x)
        x = self.conv2(x)                                       # N x 64 x 12 x 12 (pre-ReLU)
        if self.config.lrn:
            x = F.pad(x, (0, self.pad2, 0, self.pad2))
            x = kernels.relu_lrn_pool(x, **CMRNORM, kernel_size=POOL["kernel_size"], stride=POOL["stride"],
                                      backend=self.backend)    # ReLU, rnorm2, pool2: N x 64 x 6 x 6
        else:
            x = F.relu(self._pool(x, self.pad2))                # N x 64 x 6 x 6
        x = F.relu(self.local3(x))                              # N x 64|32 x 6 x 6
        x = F.relu(self.local4(x))                              # N x 32 x 6 x 6
        return self.fc10(x.flatten(1))                          # N x 10

    def weight_layers(self) -> dict[str, nn.Module]:
        """The cfg's weight layers by name (the keys of ``LAYER_PARAMS``)."""
        return {name: getattr(self, name) for name in INIT_STD}


def cmrnorm_reference(a: torch.Tensor, size: int = 9, scale: float = 0.001, pow: float = 0.75) -> torch.Tensor:
    """cuda-convnet's cross-map response normalisation written from its source, for tests:
    ``layer.py`` stores ``scale / size``; ``kFCNorm`` sums squares over channels
    ``[max(0, c - size//2), min(C, c - size//2 + size))`` and returns ``a * (1 + scale' * sum) ** -pow``."""
    add_scale = scale / size
    c_total = a.shape[1]
    out = torch.empty_like(a)
    for c in range(c_total):
        start = -(size // 2) + c
        lo, hi = max(0, start), min(c_total, start + size)
        denom = 1 + add_scale * (a[:, lo:hi] ** 2).sum(dim=1)
        out[:, c] = a[:, c] * denom ** -pow
    return out
