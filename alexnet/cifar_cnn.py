"""The paper's four-layer CIFAR-10 CNN (Figure 1: ReLU vs tanh; section 3.3: LRN 13% -> 11% test error).

The paper does not print the net; it is cuda-convnet's CIFAR-10 net (``layers-18pct`` style), which
this module builds as: conv 32@5x5 -> act -> max-pool 3/2 -> [LRN] -> conv 32@5x5 -> act -> max-pool 3/2
-> [LRN] -> conv 64@5x5 -> act -> max-pool 3/2 -> fc 10. Convolutions are padded ("same" size) and
pooling rounds up like cuda-convnet, so 32 px inputs give 16, 8, 4 px maps (64*4*4 = 1024 features).

LRN uses the AlexNet constants in the paper's convention (k=2, n=5, alpha=1e-4, beta=0.75; PyTorch's
``nn.LocalResponseNorm`` would need ``alpha * n``). ``ChannelLRN`` computes the window sums as one
matrix product with a banded 0/1 matrix (the paper's clipped window at the channel edges), which on
a 2-core CPU trains the LRN net 1.4x faster than ``nn.LocalResponseNorm`` (an ``avg_pool3d`` over
padded squares) and gives the same values. It always computes in float32, also under bfloat16
autocast, where ``k + alpha * sum`` would round to ``k``. Where its input is known to be non-negative
(after ReLU and max-pooling) it calls the project's own ``kernels.relu_lrn`` instead, whose ReLU is then a
no-op (backend ``LRN_BACKEND``, falling back to ``eager`` where that one is unavailable); after tanh it
keeps the einsum.

Towers (``layout``, the names of ``alexnet.model.LAYOUTS``): ``"one-gpu"`` is the net above, every layer
seeing every channel of the one before; ``"two-gpu"`` is the paper's two-GPU connectivity (section 3.2,
figure 2) on this net, as ``alexnet.model.Tower`` expresses it for AlexNet: each of the two towers holds
half of every conv layer's kernels (``alexnet.model.split_evenly``; ``widths`` stay the totals), and the
towers exchange activations only where AlexNet's do - at layer 3 and in the classifier. So conv1 (its
input, the image, is shared) and conv3 (AlexNet's conv3, "sees both towers") are ordinary convolutions over
all input channels, conv2 (AlexNet's conv2, "own tower only") is a grouped convolution with one group per
tower, LRN normalises within a tower's channels, and the classifier (AlexNet's fully-connected layers, each
tower computing half of the outputs from both towers' features) is one linear layer over both towers'
pooled maps. On one CPU the towers run one after the other inside each grouped op; ``alexnet.placement``
puts AlexNet's towers on two devices, which this net, sized for a CPU study, does not need. The paper's
one-GPU control ("half as many kernels in each convolutional layer") is ``layout="one-gpu"`` with half of
``widths``.

Initialisation (``init``): ``"default"`` is PyTorch's for both activations; ``"cuda-convnet"`` is the
published ``layers-18pct`` one, Gaussian weights with std 1e-4 in conv1 and 1e-2 in every other layer,
biases 0. Either way the only difference between the nets of one comparison is the switch under test.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from alexnet.model import LAYOUTS, split_evenly
from kernels.paper import PAPER_LRN

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
# cuda-convnet's layers-18pct: initW per layer (Gaussian std), conv1 first; biases 0
CUDA_CONVNET_INIT_STD = (1e-4, 1e-2, 1e-2, 1e-2)
INITS = ("default", "cuda-convnet")
# the kernels.relu_lrn backend of ChannelLRN where its input is non-negative (the fastest on this CPU,
# measured forward + backward at the CNN's shapes); "eager" where it cannot run here
LRN_BACKEND = "cpp"
_resolved_backend: list[str] = []


def lrn_backend() -> str:
    """``LRN_BACKEND`` if it can run here, else ``"eager"`` (decided once per process)."""
    if not _resolved_backend:
        from kernels.ops import BackendUnavailable, get_backend

        try:
            get_backend(LRN_BACKEND)
            _resolved_backend.append(LRN_BACKEND)
        except (BackendUnavailable, ValueError):
            _resolved_backend.append("eager")
    return _resolved_backend[0]


@dataclass
class CifarCNNConfig:
    num_classes: int = 10
    activation: str = "relu"  # "relu" | "tanh"
    lrn: bool = False
    widths: tuple = (32, 32, 64)
    kernel_size: int = 5
    pool_kernel: int = 3
    pool_stride: int = 2
    lrn_size: int = PAPER_LRN["size"]
    lrn_alpha: float = PAPER_LRN["alpha"]  # paper convention (multiplies the plain sum of squares)
    lrn_beta: float = PAPER_LRN["beta"]
    lrn_k: float = PAPER_LRN["k"]
    image_size: int = 32
    init: str = "default"  # "default" (PyTorch's) | "cuda-convnet" (Gaussian std 1e-4 conv1, 1e-2 others, biases 0)
    layout: str = "one-gpu"  # "one-gpu" (one tower) | "two-gpu" (two towers joined at conv3 and the classifier)

    @property
    def num_towers(self) -> int:
        return LAYOUTS[self.layout]

    def validate(self) -> "CifarCNNConfig":
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {self.layout!r}")
        if any(int(w) % self.num_towers for w in self.widths):
            raise ValueError(f"layout {self.layout!r} splits every conv layer over {self.num_towers} towers: "
                             f"widths {tuple(self.widths)} must be multiples of {self.num_towers}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if len(self.widths) != 3 or any(int(w) < 1 for w in self.widths):
            raise ValueError(f"widths must be three positive integers, got {self.widths!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.image_size < 4:
            raise ValueError(f"image_size must be at least 4, got {self.image_size}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


class ChannelLRN(nn.Module):
    """Cross-channel LRN in the paper's convention, ``x_c / (k + alpha * sum_{|j-c|<=n/2} x_j^2)^beta``.

    ``nonnegative=True`` promises inputs >= 0 (after ReLU and max-pooling): then ``kernels.relu_lrn``
    computes it (its ReLU changes nothing) with backend ``kernels_backend`` (default: ``lrn_backend()``),
    else the einsum below. Both in at least float32.
    """

    def __init__(self, channels: int, size: int = PAPER_LRN["size"], alpha: float = PAPER_LRN["alpha"],
                 beta: float = PAPER_LRN["beta"], k: float = PAPER_LRN["k"], nonnegative: bool = False,
                 kernels_backend: str | None = None):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number, got {size}")
        c = torch.arange(channels)
        window = ((c[:, None] - c[None, :]).abs() <= size // 2).float()
        self.register_buffer("window", window * alpha, persistent=False)  # alpha folded into the 0/1 band
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.nonnegative = nonnegative
        self.kernels_backend = kernels_backend

    def alpha_sums(self, x: torch.Tensor) -> torch.Tensor:
        """``alpha * sum_{window} x_j^2`` at every position (in float32 or wider): the term set against ``k``."""
        wide = x if x.dtype == torch.float64 else x.float()
        return torch.einsum("nchw,cd->ndhw", wide * wide, self.window.to(wide.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # at least float32, whatever the autocast dtype: in bfloat16, k + alpha * sum (2 + ~1e-3) rounds to k
        with torch.autocast(device_type=x.device.type, enabled=False):
            wide = x if x.dtype == torch.float64 else x.float()
            if self.nonnegative:
                from kernels.ops import relu_lrn

                out = relu_lrn(wide, self.size, self.alpha, self.beta, self.k,
                               backend=self.kernels_backend or lrn_backend())
            else:
                out = wide * (self.k + self.alpha_sums(wide)).pow(-self.beta)
            return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.window.shape[0]}, size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
                + (f", kernels.relu_lrn[{self.kernels_backend or lrn_backend()}]" if self.nonnegative else ""))


class TowerLRN(nn.Module):
    """LRN within each tower's channels (the towers' channels are consecutive blocks): one ``ChannelLRN``
    per tower, so no window reaches across towers, as on the paper's two GPUs."""

    def __init__(self, channels: int, towers: int, **lrn) -> None:
        super().__init__()
        self.sizes = split_evenly(channels, towers)
        self.towers = nn.ModuleList(ChannelLRN(c, **lrn) for c in self.sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([lrn(part) for lrn, part in zip(self.towers, x.split(self.sizes, dim=1))], dim=1)


def _pooled(size: int, kernel: int, stride: int) -> int:
    """Output side of a ceil-mode max-pool without padding (cuda-convnet's rounding)."""
    out = -(-(size - kernel) // stride) + 1
    if (out - 1) * stride >= size:  # PyTorch drops a last window that would start outside the input
        out -= 1
    return out


class CifarCNN(nn.Module):
    """Three conv blocks and one fully-connected layer: the paper's 'four-layer' CIFAR-10 network."""

    def __init__(self, cfg: CifarCNNConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = (cfg or CifarCNNConfig(**overrides)).validate()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, side = 3, cfg.image_size
        towers = cfg.num_towers
        for i, width in enumerate(cfg.widths):
            groups = towers if i == 1 else 1  # conv2 sees its own tower only; conv1's input and conv3 are shared
            layers += [nn.Conv2d(c_in, width, cfg.kernel_size, padding=cfg.kernel_size // 2, groups=groups),
                       ACTIVATIONS[cfg.activation](),
                       nn.MaxPool2d(cfg.pool_kernel, cfg.pool_stride, ceil_mode=True)]
            side = _pooled(side, cfg.pool_kernel, cfg.pool_stride)
            if cfg.lrn and i < 2:  # LRN after the first two pooling layers, as in cuda-convnet's net
                # after ReLU and max-pooling the input is >= 0: kernels.relu_lrn applies (its ReLU is a no-op)
                lrn = dict(size=cfg.lrn_size, alpha=cfg.lrn_alpha, beta=cfg.lrn_beta, k=cfg.lrn_k,
                           nonnegative=cfg.activation == "relu")
                layers.append(ChannelLRN(width, **lrn) if towers == 1 else TowerLRN(width, towers, **lrn))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in * side * side, cfg.num_classes)  # both towers' maps, as AlexNet's fc layers
        if cfg.init == "cuda-convnet":
            self._init_cuda_convnet()

    @torch.no_grad()
    def _init_cuda_convnet(self) -> None:
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for m, std in zip(layers, CUDA_CONVNET_INIT_STD, strict=True):
            m.weight.normal_(0.0, std)
            m.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"CifarCNN expects N x 3 x H x W images, got shape {tuple(x.shape)}")
        if x.shape[-1] != self.cfg.image_size or x.shape[-2] != self.cfg.image_size:
            raise ValueError(f"CifarCNN was built for {self.cfg.image_size} px images, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        return self.classifier(torch.flatten(self.features(x), 1))
