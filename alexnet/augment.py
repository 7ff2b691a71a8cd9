"""Device-side augmentation of uint8 batches (paper, section 4.1) and the test-time crops.

``TrainAugment`` turns a uint8 N x 3 x S x S batch, on whatever device it lies, into float32
N x 3 x crop x crop network input in one gather, without a Python loop over images:

* a random crop x crop window per image (paper: 227 of 256) and a horizontal flip with probability 1/2;
* mean subtraction: the training set's per-pixel mean image (``PixelStats.mean``) cut at the same
  window with the same flip, i.e. exactly ``crop(flip(image - mean))`` (the paper subtracts "the mean
  activity over the training set from each pixel");
* PCA colour lighting: every pixel of image n gets the RGB offset ``255 * eigvecs @ (alpha_n * eigvals)``
  with alpha_n ~ N(0, pca_std) per image and per call (so per epoch). ``eigvals``/``eigvecs`` are the
  training set's RGB covariance with pixels scaled to [0, 1] (``alexnet.data.PixelStats``), hence the
  factor 255 for images on the 0..255 scale;
* ``normalize=True`` (default) then divides each channel by the training set's standard deviation
  (``PixelStats.channel_std``), giving inputs of unit variance as Kaiming initialisation assumes.
  ``normalize=False`` keeps the paper's scale: mean-subtracted raw pixel values (std about 60), for
  which the paper's N(0, 0.01) initialisation was chosen. The full AlexNet with Kaiming init and lr 0.01
  diverges on raw-scale inputs; the two transforms of a run must use the same setting.

Random numbers come from the ``generator`` passed to ``forward`` (any device; the draws are moved to
the images' device), or from the default generator of the images' device when it is None.
``sample`` and ``apply`` are split so tests can inject offsets, flips and alpha.

``EvalTransform`` gives V views: the centre crop (V=1) or the paper's ten crops (V=10: top-left,
top-right, bottom-left, bottom-right, centre, then the same five flipped), mean subtracted.
``predict_averaged(model, views)`` averages the softmax over the views.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from alexnet.data import PixelStats


def _check_batch(images: torch.Tensor, size: int, crop: int) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (augmentation runs on raw pixels), got {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != size or images.shape[3] != size:
        raise ValueError(f"images must be N x 3 x {size} x {size} (the image size of the PixelStats), "
                         f"got {tuple(images.shape)}")


def _inverse_std(stats: PixelStats) -> torch.Tensor:
    std = stats.channel_std
    if not (std > 0).all():
        raise ValueError(f"a colour channel of the training set is constant (std {std.tolist()}): cannot normalize")
    return 1.0 / std


def _check_crop(stats: PixelStats, crop_size: int) -> None:
    if not 1 <= crop_size <= stats.image_size:
        raise ValueError(f"crop_size must lie in [1, {stats.image_size}] (the stored image size), got {crop_size}")


def crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, crop: int) -> torch.Tensor:
    """Per-image crop windows and optional horizontal flips of x (N x C x S x S or C x S x S shared by
    all images) in one gather: N x C x crop x crop. ``top``, ``left``: int64 (N,); ``flip``: bool (N,)."""
    n = top.shape[0]
    size = x.shape[-1]
    ar = torch.arange(crop, device=top.device)
    rows = top[:, None] + ar  # N x crop
    cols = left[:, None] + torch.where(flip[:, None], crop - 1 - ar, ar)  # N x crop, reversed when flipped
    index = (rows[:, :, None] * size + cols[:, None, :]).reshape(n, 1, crop * crop)
    flat = x.reshape(*x.shape[:-2], size * size)
    if flat.dim() == 2:  # one image shared by the batch (the mean image)
        flat = flat.expand(n, *flat.shape)
    out = torch.gather(flat, 2, index.expand(n, flat.shape[1], crop * crop))
    return out.view(n, flat.shape[1], crop, crop)


class TrainAugment(nn.Module):
    """Random crop + horizontal flip + PCA lighting + mean subtraction: uint8 in, float32 out."""

    def __init__(self, stats: PixelStats, crop_size: int = 227, pca_std: float = 0.1, flip: bool = True,
                 lighting: bool = True, normalize: bool = True):
        super().__init__()
        _check_crop(stats, crop_size)
        if pca_std < 0:
            raise ValueError(f"pca_std must be >= 0, got {pca_std}")
        self.crop_size, self.pca_std, self.flip, self.lighting = crop_size, pca_std, flip, lighting
        self.image_size, self.normalize = stats.image_size, normalize
        self.register_buffer("mean", stats.mean.detach().float().clone(), persistent=False)
        self.register_buffer("inv_std", _inverse_std(stats) if normalize else torch.ones(3), persistent=False)
        self.register_buffer("eigvals", stats.eigvals.detach().float().clone(), persistent=False)
        self.register_buffer("eigvecs", stats.eigvecs.detach().float().clone(), persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Draw this batch's randomness: ``top``, ``left`` (int64), ``flip`` (bool), ``alpha`` (N x 3)."""
        device = torch.device(device) if device is not None else self.mean.device
        gen_device = generator.device if generator is not None else device
        span = self.image_size - self.crop_size + 1
        top = torch.randint(span, (n,), generator=generator, device=gen_device)
        left = torch.randint(span, (n,), generator=generator, device=gen_device)
        if self.flip:
            flip = torch.randint(2, (n,), generator=generator, device=gen_device).bool()
        else:
            flip = torch.zeros(n, dtype=torch.bool, device=gen_device)
        alpha = torch.randn(n, 3, generator=generator, device=gen_device) * self.pca_std
        if not self.lighting:
            alpha = torch.zeros_like(alpha)
        draws = {"top": top, "left": left, "flip": flip, "alpha": alpha}
        return {k: v.to(device, non_blocking=True) for k, v in draws.items()}

    def lighting_offset(self, alpha: torch.Tensor) -> torch.Tensor:
        """N x 3 RGB offsets on the 0..255 scale: 255 * eigvecs @ (alpha_n * eigvals) for each row alpha_n."""
        eigvals, eigvecs = self.eigvals.to(alpha.device), self.eigvecs.to(alpha.device)
        return 255.0 * (alpha.float() * eigvals) @ eigvecs.T

    def apply(self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
              alpha: torch.Tensor) -> torch.Tensor:
        """The deterministic part of ``forward`` for given draws."""
        _check_batch(images, self.image_size, self.crop_size)
        c, device = self.crop_size, images.device
        top, left, flip = top.to(device), left.to(device), flip.to(device)
        pixels = crop_flip(images, top, left, flip, c).float()
        mean = crop_flip(self.mean.to(device), top, left, flip, c)
        offset = self.lighting_offset(alpha.to(device)) if self.lighting else None
        out = pixels.sub_(mean)
        if offset is not None:
            out.add_(offset[:, :, None, None])
        if self.normalize:
            out.mul_(self.inv_std.to(out.device)[:, None, None])
        return out

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, self.image_size, self.crop_size)
        return self.apply(images, **self.sample(images.shape[0], generator, images.device))

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, crop_size={self.crop_size}, flip={self.flip}, "
                f"lighting={self.lighting}, pca_std={self.pca_std}, normalize={self.normalize}")


class EvalTransform(nn.Module):
    """Centre crop (V=1) or ten crops (V=10), mean subtracted: uint8 N x 3 x S x S -> V x N x 3 x c x c."""

    def __init__(self, stats: PixelStats, crop_size: int = 227, ten_crop: bool = False, normalize: bool = True):
        super().__init__()
        _check_crop(stats, crop_size)
        self.crop_size, self.ten_crop, self.image_size = crop_size, ten_crop, stats.image_size
        self.normalize = normalize
        self.register_buffer("mean", stats.mean.detach().float().clone(), persistent=False)
        self.register_buffer("inv_std", _inverse_std(stats) if normalize else torch.ones(3), persistent=False)

    def windows(self) -> list[tuple[int, int, bool]]:
        """(top, left, flipped) of each view, in output order."""
        s, c = self.image_size, self.crop_size
        centre = ((s - c) // 2, (s - c) // 2)
        if not self.ten_crop:
            return [(*centre, False)]
        five = [(0, 0), (0, s - c), (s - c, 0), (s - c, s - c), centre]  # TL, TR, BL, BR, centre
        return [(t, l, False) for t, l in five] + [(t, l, True) for t, l in five]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images, self.image_size, self.crop_size)
        c = self.crop_size
        centred = images.float() - self.mean.to(images.device)
        if self.normalize:
            centred.mul_(self.inv_std.to(images.device)[:, None, None])
        views = []
        for top, left, flipped in self.windows():
            view = centred[:, :, top:top + c, left:left + c]
            views.append(view.flip(-1) if flipped else view)
        return torch.stack(views)

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, crop_size={self.crop_size}, ten_crop={self.ten_crop}, "
                f"normalize={self.normalize}")


def predict_averaged(model: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """Mean over the V views of the model's softmax: views V x N x 3 x c x c -> N x classes (float32)."""
    if views.dim() != 5:
        raise ValueError(f"views must be V x N x 3 x H x W (from EvalTransform), got {tuple(views.shape)}")
    probs = None
    for view in views:
        p = torch.softmax(model(view).float(), dim=1)
        probs = p if probs is None else probs + p
    return probs / views.shape[0]
