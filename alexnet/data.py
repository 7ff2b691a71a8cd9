"""Datasets for AlexNet training: ImageFolder directories, .tar.gz archives (CIFAR-10), synthetic data.

``build_data(data, image_size=S, ...)`` returns a ``DataBundle`` of two uint8 datasets (train, val),
the class names and the training set's ``PixelStats``. Real images are prepared once, as in the paper
(section 2): shorter side resized to S (PIL bilinear, antialiased), centre S x S crop, converted to
RGB (grayscale, palette, CMYK, 16-bit and RGBA/LA - alpha dropped). The result is cached as memory-
mappable ``.npy`` files (uint8 N x 3 x S x S, int64 labels) plus ``stats.npz`` in a directory of the
cache (``cache_dir``, else ``$ALEXNET_CACHE``, else ``~/.cache/alexnet-kernels``) whose name hashes the
source (path, size, mtime; for directories every image's path, size and mtime), S, the split settings,
``limit_per_class`` and ``on_corrupt``. The directory is built under a temporary name and renamed into
place (atomic), under a file lock so concurrent ranks decode once. CIFAR-10's 50,000 training images at
S=256 are 9.8 GB: the arrays are opened with ``np.load(mmap_mode="r")`` and never loaded whole.

Layouts (``root`` is a directory or the inside of a .tar/.tar.gz archive, after stripping a single
top-level folder): ``root/train/<class>/**/<image>`` with ``root/val|validation|test/<class>/...``
gives those two splits; ``root/<class>/**/<image>`` (or only a ``train/``) gets a seeded, per-class
split of ``val_fraction``. Classes are the sorted folder names; an empty class folder, a validation
class missing from train, or no images at all is a ``DataError`` naming the folder. Archives are read
as a stream (no extraction) and checked against a ``SHA256SUMS`` file lying beside them.

Decoding runs in a process pool. A corrupt or unreadable image raises ``CorruptImageError`` naming
the file (``on_corrupt="error"``), or is left out and counted in ``DataBundle.skipped``
(``on_corrupt="skip"``). ``limit_per_class`` keeps the first N images (sorted by path) of every class
in each split.

``PixelStats`` (train split only, one streaming pass with float64 accumulators): the per-pixel mean
image (3 x S x S, 0..255 scale) and the eigen-decomposition of the 3 x 3 covariance of RGB values
scaled to [0, 1] (as in the common AlexNet/ResNet reimplementations; ``alexnet.augment`` multiplies
the lighting offset by 255 for 0..255 images).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tarfile
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from alexnet.synthetic import make_synthetic
from infra.errors import UsageError

CACHE_FORMAT = 1  # bump when the cached bytes would change for the same inputs
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
VAL_SPLIT_NAMES = ("val", "validation", "test")  # first one present is the validation split
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DECODE_CHUNK = 64  # images per process-pool task
STATS_CHUNK = 64  # images per step of the statistics pass
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR10 = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
DEFAULT_SYNTHETIC_TRAIN = 5000
DEFAULT_SYNTHETIC_VAL = 1000


class DataError(UsageError, ValueError):
    """The data source is unusable: missing path, bad layout, empty class folder, no images."""


class CorruptImageError(DataError):
    """An image file cannot be decoded; the message names the file."""


@dataclass
class PixelStats:
    """Training-set statistics. ``mean``: 3 x S x S float32 mean image, 0..255 scale. ``eigvals`` (3,)
    descending and ``eigvecs`` (3 x 3, column i belongs to eigvals[i]) of the RGB covariance with pixel
    values scaled to [0, 1]."""
    mean: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor

    @property
    def image_size(self) -> int:
        return int(self.mean.shape[-1])

    @property
    def channel_std(self) -> torch.Tensor:
        """(3,) standard deviation of each colour channel over all training pixels, 0..255 scale."""
        cov = self.eigvecs.double() @ torch.diag(self.eigvals.double()) @ self.eigvecs.double().T
        return (255.0 * cov.diagonal().clamp_min(0).sqrt()).float()


@dataclass
class DataBundle:
    train: Dataset
    val: Dataset
    classes: list
    image_size: int
    stats: PixelStats
    skipped: int = 0
    source: str = ""  # what was loaded, for logs: "synthetic", an archive or directory path
    cache_path: Path | None = None  # the cache directory (None for synthetic data)


class UInt8ImageDataset(Dataset):
    """Items ``(uint8 tensor 3 x S x S, int label)`` from an N x 3 x S x S uint8 array in memory or in a
    ``.npy`` file opened memory-mapped (re-opened in each DataLoader worker instead of pickled)."""

    def __init__(self, images: np.ndarray | str | os.PathLike, labels: np.ndarray):
        self._path = None if isinstance(images, np.ndarray) else Path(images)
        self._images = images if isinstance(images, np.ndarray) else None
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self._path, mmap_mode="r")
        return self._images

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self.images[index])), int(self.labels[index])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_images"] = None  # workers map the file themselves
        return state


# ----------------------------------------------------------------------------------------------------
# public entry points


def build_data(data: str | os.PathLike | None = None, *, image_size: int = 256, synthetic_classes: int = 10,
               synthetic_train: int = DEFAULT_SYNTHETIC_TRAIN, synthetic_val: int = DEFAULT_SYNTHETIC_VAL,
               cache_dir: str | os.PathLike | None = None, on_corrupt: str = "error",
               limit_per_class: int | None = None, seed: int = 0, val_fraction: float = 0.1,
               decode_workers: int | None = None) -> DataBundle:
    """Load ``data``: None/"synthetic", "cifar10", an ImageFolder directory or a .tar(.gz) archive.

    ``seed`` fixes the synthetic images and the train/val split of layouts without one.
    ``decode_workers``: processes decoding images (default: one per core up to 16; 1 below 256 images).
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if on_corrupt not in ("error", "skip"):
        raise ValueError(f"on_corrupt must be 'error' or 'skip', got {on_corrupt!r}")
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be at least 1 or None, got {limit_per_class}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")

    if data is None or str(data) == "synthetic":
        return _synthetic_bundle(synthetic_classes, synthetic_train, synthetic_val, image_size, seed)
    path = cifar10_archive() if str(data) == "cifar10" else Path(data).expanduser()
    if not path.exists():
        raise DataError(f"data {str(data)!r}: no such file or directory {path} (expected 'synthetic', "
                        "'cifar10', an ImageFolder directory or a .tar.gz archive)")
    source = _TarSource(path) if path.is_file() else _DirectorySource(path)
    settings = dict(format=CACHE_FORMAT, image_size=image_size, limit_per_class=limit_per_class,
                    on_corrupt=on_corrupt, seed=seed, val_fraction=val_fraction)
    return _cached_bundle(source, settings, Path(cache_dir) if cache_dir else default_cache_dir(), decode_workers)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, num_workers: int = 0,
                sampler: Sampler | None = None, drop_last: bool = False) -> DataLoader:
    """Batches of ``(uint8 N x 3 x S x S, int64 N)``; augmentation happens later, on the device.

    ``sampler`` (e.g. a DistributedSampler) overrides ``shuffle``; ``seed`` fixes the shuffle order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                      persistent_workers=num_workers > 0, generator=generator)


def compute_pixel_stats(images: np.ndarray) -> PixelStats:
    """Mean image and RGB-covariance eigen-decomposition of uint8 N x 3 x S x S ``images`` (may be a
    memmap: read in chunks of ``STATS_CHUNK`` images, float64 accumulators)."""
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise DataError(f"statistics need uint8 N x 3 x S x S images, got {images.dtype} {tuple(images.shape)}")
    n, _, h, w = images.shape
    if n == 0:
        raise DataError("statistics need at least one training image")
    pixel_sum = torch.zeros(3, h, w, dtype=torch.float64)
    channel_sum = torch.zeros(3, dtype=torch.float64)
    outer_sum = torch.zeros(3, 3, dtype=torch.float64)
    for start in range(0, n, STATS_CHUNK):
        chunk = torch.from_numpy(np.array(images[start:start + STATS_CHUNK]))
        pixel_sum += chunk.sum(0, dtype=torch.int32)  # exact: at most STATS_CHUNK * 255
        centred = chunk.transpose(0, 1).reshape(3, -1).double().sub_(128.0)  # 3 x (n*h*w); shift: less cancellation
        channel_sum += centred.sum(1)
        outer_sum += centred @ centred.T
    count = n * h * w
    mu = channel_sum / count  # of x - 128
    cov = (outer_sum / count - torch.outer(mu, mu)) / 255.0 ** 2  # population covariance, [0, 1] scale
    eigvals, eigvecs = torch.linalg.eigh(cov)
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)  # descending
    eigvecs = eigvecs * torch.where(eigvecs.sum(0) < 0, -1.0, 1.0)  # fixed sign: components sum >= 0
    return PixelStats(mean=(pixel_sum / n).float(), eigvals=eigvals.clamp_min(0).float(), eigvecs=eigvecs.float())


def decode_image(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """One image file (path or bytes) as uint8 3 x size x size: shorter side resized to ``size``
    (bilinear, antialiased), centre crop, RGB. Raises whatever PIL raises on a bad file."""
    fileobj = BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    with Image.open(fileobj) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4, 1/8 scale when both sides stay >= size
        rgb = _to_rgb(img)
    w, h = rgb.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        rgb = rgb.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALEXNET_CACHE") or Path.home() / ".cache" / "alexnet-kernels")


def cifar10_archive() -> Path:
    """``$ALEXNET_CIFAR10`` or ``../shared/data/cifar10-jpg.tar.gz`` beside the repository."""
    env = os.environ.get("ALEXNET_CIFAR10")
    path = Path(env).expanduser() if env else DEFAULT_CIFAR10
    if not path.exists():
        raise DataError(f"CIFAR-10 archive not found at {path} (set $ALEXNET_CIFAR10 to its path, or pass the "
                        "path of the archive or of its unpacked train/ and test/ folders)")
    return path


# ----------------------------------------------------------------------------------------------------
# synthetic data


def _synthetic_bundle(classes: int, n_train: int, n_val: int, image_size: int, seed: int) -> DataBundle:
    train_x, train_y = make_synthetic(classes, n_train, image_size, seed, split_seed=2 * seed + 1)
    val_x, val_y = make_synthetic(classes, n_val, image_size, seed, split_seed=2 * seed + 2)
    return DataBundle(train=UInt8ImageDataset(train_x, train_y), val=UInt8ImageDataset(val_x, val_y),
                      classes=[f"class{c:0{len(str(classes - 1))}d}" for c in range(classes)],
                      image_size=image_size, stats=compute_pixel_stats(train_x), skipped=0, source="synthetic")


# ----------------------------------------------------------------------------------------------------
# sources: a directory or an archive, each listing its entries and yielding the bytes/paths to decode


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


class _DirectorySource:
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.dirs, self.files = set(), []  # relative posix paths; files: (rel, size, mtime_ns)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            prefix = "" if rel_dir == "." else rel_dir + "/"
            if prefix and not _hidden(rel_dir):
                self.dirs.add(rel_dir)
            for name in sorted(filenames):
                rel = prefix + name
                if _is_image(name) and not _hidden(rel):
                    st = os.stat(os.path.join(dirpath, name))
                    self.files.append((rel, st.st_size, st.st_mtime_ns))

    def describe(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def fingerprint(self) -> dict:
        listing = hashlib.sha256("\n".join(f"{r}\t{s}\t{m}" for r, s, m in self.files).encode()).hexdigest()
        return {"kind": "directory", "path": str(self.root), "listing": listing}

    def verify(self) -> None:
        pass

    def payloads(self, wanted: dict[str, object]) -> Iterator[tuple[object, str, object]]:
        for rel, key in wanted.items():
            yield key, self.describe(rel), str(self.root / rel)  # workers read the file themselves


class _TarSource:
    """A tar archive, listed only when the cache must be built (Python's header parsing is slow)."""

    def __init__(self, path: Path):
        self.path = path.resolve()
        if not self.path.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"{self.path}: a data file must be a tar archive ({', '.join(ARCHIVE_SUFFIXES)})")
        self._members = None  # rel -> TarInfo of image files

    def _list(self) -> None:
        self._dirs, self._members = set(), {}
        try:
            with tarfile.open(self.path, "r|*") as tar:
                for member in tar:
                    rel = _member_name(member)
                    if rel is None or _hidden(rel):
                        continue
                    if member.isdir():
                        self._dirs.add(rel)
                    elif member.isfile() and _is_image(rel):
                        self._members[rel] = member
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"cannot read archive {self.path}: {exc}") from exc

    @property
    def dirs(self) -> set[str]:
        if self._members is None:
            self._list()
        return self._dirs

    @property
    def files(self) -> list[tuple[str, int, int]]:
        if self._members is None:
            self._list()
        return sorted((rel, m.size, m.mtime) for rel, m in self._members.items())

    def describe(self, rel: str = "") -> str:
        return f"{self.path}:{rel}" if rel else str(self.path)

    def fingerprint(self) -> dict:
        st = self.path.stat()
        return {"kind": "archive", "path": str(self.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def verify(self) -> None:
        """Check the archive against a SHA256SUMS file beside it, when there is one listing it."""
        sums = self.path.parent / "SHA256SUMS"
        if not sums.is_file():
            return
        expected = None
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == self.path.name:
                expected = parts[0].lower()
        if expected is None:
            return
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise DataError(f"{self.path}: SHA-256 {digest.hexdigest()} does not match {expected} in {sums} "
                            "(corrupt or partial download)")

    def payloads(self, wanted: dict[str, object]) -> Iterator[tuple[object, str, object]]:
        """Member bytes in archive order: forward seeks to the offsets found by the listing (cheap even
        in a compressed stream, where a seek decompresses and discards)."""
        members = sorted((self._members[rel] for rel in wanted), key=lambda m: m.offset_data)
        with tarfile.open(self.path, "r:*") as tar:
            for member in members:
                rel = _member_name(member)
                try:
                    data = tar.extractfile(member).read()
                except (tarfile.TarError, OSError, EOFError) as exc:
                    raise DataError(f"cannot read {self.describe(rel)}: {exc}") from exc
                yield wanted[rel], self.describe(rel), data


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The member's path relative to the archive root, or None for unsafe names (absolute, '..')."""
    parts = [p for p in member.name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or member.name.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


# ----------------------------------------------------------------------------------------------------
# layout: which files are which class in which split


def _resolve_layout(source, seed: int, val_fraction: float, limit: int | None):
    """(classes, {"train": [(rel, label)], "val": [...]}) from the source's listing."""
    files = [rel for rel, _, _ in source.files]
    dirs = set(source.dirs)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {source.describe()}")
    prefix = ""
    while True:  # strip a single top-level folder holding everything (e.g. an archive's "cifar10/")
        tops = {rel[len(prefix):].split("/")[0] for rel in files}
        depths = {rel[len(prefix):].count("/") for rel in files}
        top = next(iter(tops))
        if len(tops) == 1 and min(depths) >= 2 and top != "train":
            prefix += top + "/"
        else:
            break
    files = [rel[len(prefix):] for rel in files]
    dirs = {d[len(prefix):] for d in dirs if d.startswith(prefix) and len(d) > len(prefix)}
    tops = {rel.split("/")[0] for rel in files if "/" in rel} | {d.split("/")[0] for d in dirs}

    def class_folders(base: str) -> dict[str, list[str]]:
        """class name -> sorted image paths under base/<class>/ (base "" = root); empty folders included."""
        b = base + "/" if base else ""
        out = defaultdict(list)
        for d in dirs:
            if d.startswith(b) and len(d) > len(b) and "/" not in d[len(b):]:
                out[d[len(b):]]
        for rel in files:
            if rel.startswith(b) and rel[len(b):].count("/") >= 1:
                out[rel[len(b):].split("/")[0]].append(prefix + rel)
        for name, images in out.items():
            if not images:
                raise DataError(f"class folder {source.describe(prefix + b + name)} contains no images "
                                f"({', '.join(IMAGE_EXTENSIONS)})")
        return {name: sorted(out[name]) for name in sorted(out)}

    val_name = next((v for v in VAL_SPLIT_NAMES if v in tops), None)
    if "train" in tops:
        train = class_folders("train")
        if not train:
            raise DataError(f"{source.describe(prefix + 'train')} has no class folders with images")
        val = class_folders(val_name) if val_name else None
    else:
        train, val = class_folders(""), None
        if not train:
            raise DataError(f"no class folders with images in {source.describe(prefix)} "
                            "(expected <class>/<image> or train/<class>/<image>)")
    classes = list(train)
    if val is None:
        rng = np.random.default_rng(seed)
        val = {}
        for name in classes:
            images = train[name]
            n_val = min(len(images) - 1, max(1, round(val_fraction * len(images)))) if len(images) > 1 else 0
            picked = set(rng.permutation(len(images))[:n_val].tolist())
            val[name] = [p for i, p in enumerate(images) if i in picked]
            train[name] = [p for i, p in enumerate(images) if i not in picked]
    unknown = sorted(set(val) - set(classes))
    if unknown:
        raise DataError(f"validation class folder(s) {unknown} in {source.describe(prefix + val_name)} have no "
                        f"training folder; training classes: {classes}")
    splits = {}
    for split, folders in (("train", train), ("val", val)):
        splits[split] = [(rel, label) for label, name in enumerate(classes)
                         for rel in folders.get(name, [])[:limit]]
    if not splits["val"]:
        raise DataError(f"{source.describe()}: no validation images (add a val/ or test/ folder, or more images)")
    return classes, splits


# ----------------------------------------------------------------------------------------------------
# decoding into the cache


def _decode_chunk(items: list, size: int) -> list:
    """Worker: [(key, name, path or bytes)] -> [(key, array or None, error message or None)]."""
    out = []
    for key, name, payload in items:
        try:
            out.append((key, decode_image(payload, size), None))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file's name
            out.append((key, None, f"{type(exc).__name__}: {exc}"))
    return out


def _chunks(iterable, n: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _decoded(payloads: Iterator, size: int, workers: int) -> Iterator[tuple]:
    """Decode in a process pool (bounded read-ahead, so archives are not read into memory whole)."""
    if workers <= 1:
        for chunk in _chunks(payloads, DECODE_CHUNK):
            yield from _decode_chunk(chunk, size)
        return
    # Not "fork": the caller may run threads (torch's OpenMP pool, Inductor's compile workers, a test
    # runner's), and a child forked while one of them holds a lock can wait on it for ever. A forkserver
    # forks its children from its own single-threaded process.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        pending = []
        try:
            for chunk in _chunks(payloads, DECODE_CHUNK):
                pending.append(pool.submit(_decode_chunk, chunk, size))
                if len(pending) >= 4 * workers:
                    yield from pending.pop(0).result()
            while pending:
                yield from pending.pop(0).result()
        finally:
            for fut in pending:
                fut.cancel()


def _write_cache(source, classes, splits, settings, target: Path, workers: int | None) -> None:
    """Decode every image of ``splits`` into ``target`` (a fresh directory): arrays, stats, info."""
    size = settings["image_size"]
    total = sum(len(refs) for refs in splits.values())
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = 1 if total < 256 else min(16, cores)
    source.verify()
    arrays = {split: np.lib.format.open_memmap(target / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                               shape=(len(refs), 3, size, size))
              for split, refs in splits.items()}
    ok = {split: np.ones(len(refs), dtype=bool) for split, refs in splits.items()}
    wanted = {rel: (split, i) for split, refs in splits.items() for i, (rel, _) in enumerate(refs)}
    skipped = []
    results = _decoded(source.payloads(wanted), size, workers)
    bar = tqdm(total=total, desc=f"decoding {source.describe()}", unit="img", leave=False, disable=total < 5000)
    with bar, closing(results):
        for (split, i), array, error in results:
            bar.update(1)
            if error is None:
                arrays[split][i] = array
                continue
            name = source.describe(splits[split][i][0])
            if settings["on_corrupt"] == "error":
                raise CorruptImageError(f"cannot decode image {name}: {error} "
                                        "(pass on_corrupt='skip' / --on-corrupt skip to leave it out)")
            ok[split][i] = False
            skipped.append(name)

    for split, refs in splits.items():
        labels = np.array([label for _, label in refs], dtype=np.int64)
        images = arrays.pop(split)
        if not ok[split].all():  # compact: rewrite without the skipped rows
            keep = np.flatnonzero(ok[split])
            if len(keep) == 0:
                raise DataError(f"every {split} image of {source.describe()} failed to decode")
            compact = np.lib.format.open_memmap(target / f"{split}_images.tmp.npy", mode="w+", dtype=np.uint8,
                                                shape=(len(keep), 3, size, size))
            for start in range(0, len(keep), STATS_CHUNK):
                compact[start:start + STATS_CHUNK] = images[keep[start:start + STATS_CHUNK]]
            compact.flush()
            del images, compact
            os.replace(target / f"{split}_images.tmp.npy", target / f"{split}_images.npy")
            labels = labels[keep]
        else:
            images.flush()
            del images
        np.save(target / f"{split}_labels.npy", labels)

    stats = compute_pixel_stats(np.load(target / "train_images.npy", mmap_mode="r"))
    np.savez(target / "stats.npz", mean=stats.mean.numpy(), eigvals=stats.eigvals.numpy(),
             eigvecs=stats.eigvecs.numpy())
    info = {"source": source.describe(), "settings": settings, "classes": classes,
            "skipped": len(skipped), "skipped_files": skipped[:100]}
    (target / "info.json").write_text(json.dumps(info, indent=1))


@contextmanager
def _locked(lock_path: Path):
    """Exclusive advisory lock; yields whether it is real (no fcntl on Windows: builders race, and the
    final rename keeps the cache consistent)."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cached_bundle(source, settings: dict, cache_dir: Path, workers: int | None) -> DataBundle:
    key_material = json.dumps({"source": source.fingerprint(), **settings}, sort_keys=True)
    key = hashlib.sha256(key_material.encode()).hexdigest()[:16]
    stem = Path(source.describe()).name.split(".")[0] or "data"
    final = cache_dir / f"{stem}-S{settings['image_size']}-{key}"
    if not (final / "info.json").is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(cache_dir / f"{final.name}.lock") as exclusive:
            if not (final / "info.json").is_file():  # another process may have built it meanwhile
                for stale in cache_dir.glob(f".{final.name}.*") if exclusive else ():  # from a killed build
                    shutil.rmtree(stale, ignore_errors=True)
                classes, splits = _resolve_layout(source, settings["seed"], settings["val_fraction"],
                                                  settings["limit_per_class"])
                tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
                try:
                    _write_cache(source, classes, splits, settings, tmp, workers)
                    if final.exists():  # a stale, incomplete directory (no info.json)
                        shutil.rmtree(final)
                    os.replace(tmp, final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    return _load_cached(final)


def _load_cached(path: Path) -> DataBundle:
    info = json.loads((path / "info.json").read_text())
    with np.load(path / "stats.npz") as z:
        stats = PixelStats(mean=torch.from_numpy(z["mean"]), eigvals=torch.from_numpy(z["eigvals"]),
                           eigvecs=torch.from_numpy(z["eigvecs"]))
    splits = {split: UInt8ImageDataset(path / f"{split}_images.npy", np.load(path / f"{split}_labels.npy"))
              for split in ("train", "val")}
    return DataBundle(train=splits["train"], val=splits["val"], classes=info["classes"],
                      image_size=info["settings"]["image_size"], stats=stats, skipped=info["skipped"],
                      source=info["source"], cache_path=path)


def _to_rgb(img):
    """PIL image in any mode -> RGB (16-bit grayscale scaled to 8 bits; alpha dropped)."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")
