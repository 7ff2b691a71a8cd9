"""A learnable synthetic image-classification dataset: the default when no real data is given.

Every class has its own structure, so a small CNN gets well above chance in a short run:

* oriented sinusoidal stripes with a class angle in [0, 90) degrees and a class frequency (3 to 9
  cycles per image side). Angles stay below 90 degrees because a horizontal flip maps angle t to -t,
  which would make two classes identical under the flip augmentation;
* a class colour: the mean RGB of the image and the RGB direction the stripes are drawn in.

Per image, nuisance variation that the classes share: random stripe phase (a random shift), small
jitter of angle, frequency and colour, random contrast and brightness, a class-independent blob of
random colour at a random place, and Gaussian pixel noise. Everything is drawn from one seeded
``torch.Generator`` (CPU), so the same arguments give the same images (up to float32 rounding of
sin/exp across CPU instruction sets). The structure scales with the image side, so it survives the
random crops of ``alexnet.augment``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

GENERATION_CHUNK = 64  # images generated at once (bounds float32 scratch memory at large sizes)


def class_parameters(num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-class structure: ``angle`` (radians, [0, pi/2)), ``freq`` (cycles per side), ``colour`` and
    ``stripe_colour`` (RGB, 0..1 scale). Angles and frequencies are stratified so classes are spread."""
    if num_classes < 1:
        raise ValueError(f"synthetic data needs at least 1 class, got num_classes={num_classes}")
    gen = torch.Generator().manual_seed(seed)
    c = num_classes
    angle_slot = torch.randperm(c, generator=gen).float()
    freq_slot = torch.randperm(c, generator=gen).float()
    angle = (angle_slot + 0.5) / c * (math.pi / 2)
    freq = 3.0 + 6.0 * (freq_slot + 0.5) / c
    colour = 0.25 + 0.5 * torch.rand(c, 3, generator=gen, dtype=torch.float32)
    stripe_colour = torch.nn.functional.normalize(torch.rand(c, 3, generator=gen, dtype=torch.float32) + 0.2, dim=1)
    return {"angle": angle, "freq": freq, "colour": colour, "stripe_colour": stripe_colour}


def _render(labels: torch.Tensor, params: dict, size: int, gen: torch.Generator) -> torch.Tensor:
    """uint8 N x 3 x size x size images of the given classes."""
    n = labels.shape[0]
    dt = torch.float32
    coords = (torch.arange(size, dtype=dt) + 0.5) / size  # 0..1 across the image
    y, x = coords[:, None], coords[None, :]

    angle = params["angle"][labels] + (torch.rand(n, generator=gen, dtype=dt) - 0.5) * math.radians(4)
    freq = params["freq"][labels] * (1 + (torch.rand(n, generator=gen, dtype=dt) - 0.5) * 0.08)
    phase = torch.rand(n, generator=gen, dtype=dt) * 2 * math.pi
    along = x[None] * torch.cos(angle)[:, None, None] + y[None] * torch.sin(angle)[:, None, None]
    stripes = torch.sin(2 * math.pi * freq[:, None, None] * along + phase[:, None, None])  # N x S x S

    # built in place on one N x 3 x S x S buffer, 0..255 scale (allocations dominate at this size)
    contrast = 0.15 + 0.15 * torch.rand(n, generator=gen, dtype=dt)
    brightness = (torch.rand(n, generator=gen, dtype=dt) - 0.5) * 0.2
    colour = params["colour"][labels] + 0.05 * torch.randn(n, 3, generator=gen, dtype=dt) + brightness[:, None]
    img = stripes[:, None] * (255 * contrast[:, None] * params["stripe_colour"][labels])[:, :, None, None]
    img += (255 * colour)[:, :, None, None]

    # class-independent distractor: a soft blob of random colour at a random place
    centre = torch.rand(n, 2, generator=gen, dtype=dt)
    radius = 0.08 + 0.12 * torch.rand(n, generator=gen, dtype=dt)
    dist2 = (y[None] - centre[:, 0, None, None]) ** 2 + (x[None] - centre[:, 1, None, None]) ** 2
    blob = torch.exp_(dist2.mul_(-0.5 / radius[:, None, None] ** 2))
    blob_colour = torch.rand(n, 3, generator=gen, dtype=dt) - 0.5
    img.addcmul_(blob[:, None], (0.5 * 255 * blob_colour)[:, :, None, None])

    img.add_(torch.randn(n, 3, size, size, generator=gen, dtype=dt), alpha=0.06 * 255)
    return img.clamp_(0, 255).round_().to(torch.uint8)


def make_synthetic(num_classes: int, num_images: int, image_size: int, seed: int, *,
                   split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` images (uint8 N x 3 x S x S) and int64 labels, classes balanced and shuffled.

    ``seed`` fixes the class structure (share it between train and validation); ``split_seed`` the
    individual images (use a different one per split).
    """
    if num_images < 1:
        raise ValueError(f"synthetic split needs at least 1 image, got {num_images}")
    if image_size < 8:
        raise ValueError(f"synthetic image_size must be at least 8 pixels, got {image_size}")
    params = class_parameters(num_classes, seed)
    gen = torch.Generator().manual_seed(split_seed)
    labels = torch.arange(num_images) % num_classes
    labels = labels[torch.randperm(num_images, generator=gen)]
    images = np.empty((num_images, 3, image_size, image_size), dtype=np.uint8)
    for start in range(0, num_images, GENERATION_CHUNK):
        chunk = labels[start:start + GENERATION_CHUNK]
        images[start:start + len(chunk)] = _render(chunk, params, image_size, gen).numpy()
    return images, labels.numpy().astype(np.int64)
