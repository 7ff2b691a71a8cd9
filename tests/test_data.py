"""Data pipeline: ImageFolder directories and archives (every colour mode, any size), clear errors for
corrupt images, empty class folders and bad layouts, the uint8 cache, pixel statistics against numpy,
the loader, the learnable synthetic data, and the CIFAR-10 archive (skipped with the reason when absent)."""
import hashlib
import io
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import alexnet.data as data_module
from alexnet.data import (CorruptImageError, DataError, PixelStats, UInt8ImageDataset, build_data,
                          compute_pixel_stats, decode_image, make_loader)
from alexnet.synthetic import make_synthetic
from tests.conftest import CIFAR10_ARCHIVE

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def save(path, img, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def solid(mode, size, value):
    return Image.new(mode, size, value)


def make_folder(root, per_class=3, classes=("cat", "dog")):
    """root/<class>/<i>.png solid images whose colour encodes (class, index)."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            save(root / name / f"{i:03d}.png", solid("RGB", (12 + i, 9 + c), (40 * c + 10, 5 * i, 99)))
    return root


# ---------------------------------------------------------------------------------------------------
# decoding


@pytest.mark.parametrize("mode, value, ext, expected", [
    ("RGB", (10, 200, 30), "jpg", None),  # JPEG is lossy: compared with a tolerance below
    ("RGB", (10, 200, 30), "png", (10, 200, 30)),
    ("L", 77, "png", (77, 77, 77)),
    ("RGBA", (1, 2, 3, 4), "png", (1, 2, 3)),
    ("LA", (90, 0), "png", (90, 90, 90)),
    ("CMYK", (0, 0, 0, 0), "jpg", None),
    ("P", 0, "gif", None),
    ("I;16", 257 * 100, "png", (100, 100, 100)),
])
def test_decode_any_mode_to_rgb(tmp_path, mode, value, ext, expected):
    path = save(tmp_path / f"img.{ext}", solid(mode, (23, 17), value))
    out = decode_image(str(path), 8)
    assert out.dtype == np.uint8 and out.shape == (3, 8, 8)
    if expected is None:  # lossy or palette: compare with what PIL itself makes of the file
        with Image.open(path) as img:
            expected = img.convert("RGB").getpixel((0, 0))
        assert np.abs(out.astype(int) - np.array(expected)[:, None, None]).max() <= 2
    else:
        assert (out == np.array(expected, dtype=np.uint8)[:, None, None]).all(), out[:, 0, 0]
    assert np.array_equal(decode_image(path.read_bytes(), 8), out)  # bytes and path agree


@pytest.mark.parametrize("wide", [True, False])
def test_decode_resizes_shorter_side_and_crops_centre(tmp_path, wide):
    # 80 x 20 image: only columns 24..55 are green. Shorter side 20 -> 10 makes it 40 x 10; the centre
    # 10 x 10 crop is source columns 30..49 (bilinear support +-2 px), so it must be pure green.
    arr = np.zeros((20, 80, 3), np.uint8)
    arr[:, :, 0] = 255
    arr[:, 24:56] = (0, 255, 0)
    if not wide:
        arr = arr.transpose(1, 0, 2).copy()
    path = save(tmp_path / "img.png", Image.fromarray(arr))
    out = decode_image(str(path), 10)
    assert out.shape == (3, 10, 10)
    assert (out[1] == 255).all() and (out[0] == 0).all(), "centre crop is not the middle of the image"
    assert decode_image(str(path), 40).shape == (3, 40, 40)  # upscaling works too


def test_image_folder_of_mixed_modes_and_sizes(tmp_path):
    root = tmp_path / "imgs"
    save(root / "b_gray" / "0.png", solid("L", (30, 50), 77))
    save(root / "b_gray" / "1.jpg", solid("CMYK", (64, 20), (0, 0, 0, 0)))
    save(root / "a_colour" / "0.png", solid("RGBA", (9, 9), (1, 2, 3, 4)))
    save(root / "a_colour" / "sub" / "1.png", solid("RGB", (200, 100), (5, 6, 7)))  # nested folders count
    save(root / "a_colour" / "2.png", solid("RGB", (7, 11), (8, 9, 10)))
    (root / "a_colour" / "notes.txt").write_text("not an image, ignored")
    bundle = build_data(root, image_size=6, cache_dir=tmp_path / "cache", val_fraction=0.34)
    assert bundle.classes == ["a_colour", "b_gray"]
    assert bundle.image_size == 6 and bundle.skipped == 0
    assert len(bundle.train) + len(bundle.val) == 5 and len(bundle.val) == 2  # one per class
    items = [bundle.train[i] for i in range(len(bundle.train))] + [bundle.val[i] for i in range(len(bundle.val))]
    for img, label in items:
        assert img.dtype == torch.uint8 and img.shape == (3, 6, 6) and label in (0, 1)
    colours = {(tuple(img[:, 0, 0].tolist()), label) for img, label in items}
    assert ((77, 77, 77), 1) in colours and ((1, 2, 3), 0) in colours and ((5, 6, 7), 0) in colours


# ---------------------------------------------------------------------------------------------------
# clear errors


def corrupt_folder(tmp_path, n_good=3):
    root = make_folder(tmp_path / "imgs", per_class=n_good)
    bad = root / "dog" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return root, bad


@pytest.mark.parametrize("workers", [1, 2])  # in-process and in the process pool
def test_corrupt_image_error_names_the_file(tmp_path, workers):
    root, bad = corrupt_folder(tmp_path)
    with pytest.raises(CorruptImageError, match="bad.jpg") as info:
        build_data(root, image_size=8, cache_dir=tmp_path / "cache", decode_workers=workers)
    assert str(bad) in str(info.value) and "on_corrupt" in str(info.value)
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert not leftovers, f"a failed build left {leftovers} in the cache"


def test_truncated_image_is_corrupt(tmp_path):
    root = make_folder(tmp_path / "imgs")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "cat" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(CorruptImageError, match="cut.jpg"):
        build_data(root, image_size=8, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_image_skipped_and_counted(tmp_path, workers):
    root, _ = corrupt_folder(tmp_path, n_good=4)
    bundle = build_data(root, image_size=8, cache_dir=tmp_path / "cache", on_corrupt="skip", decode_workers=workers)
    assert bundle.skipped == 1
    assert len(bundle.train) + len(bundle.val) == 8
    labels = np.concatenate([bundle.train.labels, bundle.val.labels])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4
    for ds in (bundle.train, bundle.val):  # rows compacted: every stored image is a real one
        assert all(ds[i][0][2, 0, 0] == 99 for i in range(len(ds)))


def test_empty_class_folder_is_named(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "emu").mkdir()
    with pytest.raises(DataError, match="emu.*contains no images"):
        build_data(root, image_size=8, cache_dir=tmp_path / "cache")


def test_class_folder_with_only_other_files_is_empty(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "emu").mkdir()
    (root / "emu" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="emu"):
        build_data(root, image_size=8, cache_dir=tmp_path / "cache")


def test_no_images_at_all(tmp_path):
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        build_data(tmp_path / "imgs", image_size=8, cache_dir=tmp_path / "cache")


def test_missing_path_and_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        build_data(tmp_path / "nowhere", image_size=8, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="on_corrupt"):
        build_data(None, on_corrupt="ignore")
    with pytest.raises(ValueError, match="image_size"):
        build_data(None, image_size=0)
    with pytest.raises(ValueError, match="limit_per_class"):
        build_data(None, limit_per_class=0)


def test_validation_class_unknown_to_training(tmp_path):
    make_folder(tmp_path / "imgs" / "train")
    make_folder(tmp_path / "imgs" / "val", classes=("cat", "cow"))
    with pytest.raises(DataError, match="cow"):
        build_data(tmp_path / "imgs", image_size=8, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------
# layouts, splits, cache, archives


def test_train_and_test_folders_are_the_splits(tmp_path):
    make_folder(tmp_path / "imgs" / "train", per_class=4)
    make_folder(tmp_path / "imgs" / "test", per_class=2)
    bundle = build_data(tmp_path / "imgs", image_size=8, cache_dir=tmp_path / "cache", limit_per_class=3)
    assert bundle.classes == ["cat", "dog"]
    assert bundle.train.labels.tolist() == [0, 0, 0, 1, 1, 1]  # first 3 of each class (limit)
    assert bundle.val.labels.tolist() == [0, 0, 1, 1]
    # first sorted files: 000, 001, 002 -> green channel 0, 5, 10
    assert [bundle.train[i][0][1, 0, 0].item() for i in range(3)] == [0, 5, 10]


def test_seeded_split_is_stratified_disjoint_and_reproducible(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=10)
    a = build_data(root, image_size=8, cache_dir=tmp_path / "c1", seed=1, val_fraction=0.2)
    b = build_data(root, image_size=8, cache_dir=tmp_path / "c2", seed=1, val_fraction=0.2)
    c = build_data(root, image_size=8, cache_dir=tmp_path / "c1", seed=2, val_fraction=0.2)
    assert a.val.labels.tolist() == [0, 0, 1, 1] and len(a.train) == 16
    assert np.array_equal(a.val.images, b.val.images)

    def keys(ds):  # (class, index) of each image, from its encoded colour
        return {(ds[i][1], ds[i][0][1, 0, 0].item()) for i in range(len(ds))}

    assert not keys(a.train) & keys(a.val) and len(keys(a.train) | keys(a.val)) == 20
    assert keys(c.val) != keys(a.val), "a different seed should give a different split"


def test_cache_is_reused_memory_mapped_and_invalidated(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "imgs", per_class=4)
    first = build_data(root, image_size=8, cache_dir=tmp_path / "cache")
    assert isinstance(first.train.images, np.memmap)
    assert sorted(p.name for p in first.cache_path.iterdir()) == [
        "info.json", "stats.npz", "train_images.npy", "train_labels.npy", "val_images.npy", "val_labels.npy"]

    def no_decoding(*args, **kwargs):
        raise AssertionError("cache was not reused")

    monkeypatch.setattr(data_module, "_write_cache", no_decoding)
    again = build_data(root, image_size=8, cache_dir=tmp_path / "cache")
    assert again.cache_path == first.cache_path
    assert np.array_equal(again.train.images, first.train.images)
    torch.testing.assert_close(again.stats.mean, first.stats.mean)
    monkeypatch.undo()

    stale = first.cache_path.parent / f".{first.cache_path.name}.killed"  # a killed build's leftovers
    stale.mkdir()
    shutil.rmtree(first.cache_path)
    rebuilt = build_data(root, image_size=8, cache_dir=tmp_path / "cache")
    assert rebuilt.cache_path == first.cache_path and not stale.exists()

    save(root / "cat" / "000.png", solid("RGB", (30, 30), (1, 1, 1)))  # a changed file -> new cache entry
    changed = build_data(root, image_size=8, cache_dir=tmp_path / "cache")
    assert changed.cache_path != first.cache_path
    assert build_data(root, image_size=9, cache_dir=tmp_path / "cache").cache_path != changed.cache_path


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "envcache"))
    bundle = build_data(make_folder(tmp_path / "imgs"), image_size=8)
    assert bundle.cache_path.parent == tmp_path / "envcache"


def make_archive(tmp_path, root, name="imgs.tar.gz"):
    archive = tmp_path / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="dataset")  # a single top-level folder, as most archives have
    return archive


def test_archive_matches_directory_and_checks_sha256(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root / "train", per_class=3)
    make_folder(root / "test", per_class=2)
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "0.png").write_bytes((root / "train" / "cat" / "000.png").read_bytes())
    archive = make_archive(tmp_path, root)
    from_dir = build_data(root, image_size=8, cache_dir=tmp_path / "cache")
    from_tar = build_data(archive, image_size=8, cache_dir=tmp_path / "cache")
    assert from_tar.classes == from_dir.classes == ["cat", "dog", "emu"]
    for split in ("train", "val"):
        a, b = getattr(from_dir, split), getattr(from_tar, split)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)

    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {archive.name}\n")
    with pytest.raises(DataError, match="SHA-256"):
        build_data(archive, image_size=7, cache_dir=tmp_path / "cache")
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  {archive.name}\n")
    assert len(build_data(archive, image_size=7, cache_dir=tmp_path / "cache").train) == 7


def test_archive_with_corrupt_member_and_empty_folder(tmp_path):
    root, _ = corrupt_folder(tmp_path)
    archive = make_archive(tmp_path, root)
    with pytest.raises(CorruptImageError, match=r"imgs\.tar\.gz:dataset/dog/bad\.jpg"):
        build_data(archive, image_size=8, cache_dir=tmp_path / "cache")
    (root / "dog" / "bad.jpg").unlink()
    (root / "emu").mkdir()
    archive = make_archive(tmp_path, root, "other.tar.gz")
    with pytest.raises(DataError, match="emu.*contains no images"):
        build_data(archive, image_size=8, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------
# statistics


def test_pixel_stats_match_numpy(monkeypatch):
    monkeypatch.setattr(data_module, "STATS_CHUNK", 3)  # several chunks: the streaming sums must add up
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (7, 3, 5, 5))
    images = np.clip(base + np.array([0, 30, -20])[None, :, None, None] * rng.random((7, 1, 1, 1)), 0, 255)
    images = images.astype(np.uint8)
    stats = compute_pixel_stats(images)
    assert stats.mean.shape == (3, 5, 5) and stats.mean.dtype == torch.float32
    np.testing.assert_allclose(stats.mean.numpy(), images.astype(np.float64).mean(0), rtol=1e-6)

    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) / 255.0
    cov = np.cov(pixels, bias=True)
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    np.testing.assert_allclose(stats.eigvals.numpy(), vals, rtol=1e-5)
    for i in range(3):  # eigenvectors agree up to sign
        v, ref = stats.eigvecs[:, i].double().numpy(), vecs[:, i]
        assert min(np.abs(v - ref).max(), np.abs(v + ref).max()) < 1e-5
    np.testing.assert_allclose(stats.channel_std.numpy(), 255 * pixels.std(1), rtol=1e-5)
    recon = stats.eigvecs.double() @ torch.diag(stats.eigvals.double()) @ stats.eigvecs.double().T
    np.testing.assert_allclose(recon.numpy(), cov, atol=1e-7)


def test_pixel_stats_reject_bad_input():
    with pytest.raises(DataError, match="uint8"):
        compute_pixel_stats(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(DataError, match="at least one"):
        compute_pixel_stats(np.zeros((0, 3, 4, 4), np.uint8))


# ---------------------------------------------------------------------------------------------------
# loader


def test_loader_batches_uint8_and_is_seeded(tmp_path):
    images = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(3, 1).repeat(4, 2).repeat(4, 3)
    ds = UInt8ImageDataset(images, np.arange(10) % 3)
    x, y = next(iter(make_loader(ds, 4, shuffle=False, seed=0)))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 4, 4) and y.dtype == torch.int64
    assert x[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    order = lambda seed: torch.cat([b[0][:, 0, 0, 0] for b in make_loader(ds, 3, shuffle=True, seed=seed)]).tolist()
    assert order(5) == order(5) and order(5) != order(6) and sorted(order(5)) == list(range(10))
    assert len(list(make_loader(ds, 4, shuffle=False, seed=0, drop_last=True))) == 2
    sampler = torch.utils.data.SequentialSampler(range(10))
    first = next(iter(make_loader(ds, 4, shuffle=True, seed=0, sampler=sampler)))[0]
    assert first[:, 0, 0, 0].tolist() == [0, 1, 2, 3], "a sampler must override shuffle"


def test_loader_workers_read_the_memory_mapped_cache(tmp_path):
    bundle = build_data(make_folder(tmp_path / "imgs", per_class=5), image_size=8, cache_dir=tmp_path / "cache")
    loader = make_loader(bundle.train, 4, shuffle=False, seed=0, num_workers=1)
    x = torch.cat([b[0] for b in loader])
    assert np.array_equal(x.numpy(), np.asarray(bundle.train.images))


# ---------------------------------------------------------------------------------------------------
# synthetic data


def test_synthetic_is_deterministic_and_balanced():
    a_img, a_lab = make_synthetic(4, 40, 16, seed=3, split_seed=1)
    b_img, b_lab = make_synthetic(4, 40, 16, seed=3, split_seed=1)
    c_img, _ = make_synthetic(4, 40, 16, seed=3, split_seed=2)
    assert a_img.dtype == np.uint8 and a_img.shape == (40, 3, 16, 16)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab) and not np.array_equal(a_img, c_img)
    assert np.bincount(a_lab).tolist() == [10, 10, 10, 10]
    assert a_img.std() > 20, "synthetic images should not be flat"
    bundle = build_data(None, image_size=16, synthetic_classes=4, synthetic_train=40, synthetic_val=8)
    assert bundle.classes == ["class0", "class1", "class2", "class3"] and len(bundle.val) == 8
    assert isinstance(bundle.stats, PixelStats) and bundle.stats.mean.shape == (3, 16, 16)


def test_synthetic_is_learnable():
    """A tiny CNN on random crops + flips gets far above chance (10%) on held-out synthetic images."""
    from alexnet.augment import EvalTransform, TrainAugment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and stall on a busy machine)
    try:
        torch.manual_seed(0)
        bundle = build_data(None, image_size=20, synthetic_classes=10, synthetic_train=400, synthetic_val=200)
        augment, centre = TrainAugment(bundle.stats, crop_size=16), EvalTransform(bundle.stats, crop_size=16)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(32, 10))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for epoch in range(3):
            for x, y in make_loader(bundle.train, 50, shuffle=True, seed=epoch):
                loss = torch.nn.functional.cross_entropy(net(augment(x, gen)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        x, y = next(iter(make_loader(bundle.val, 200, shuffle=False, seed=0)))
        with torch.no_grad():
            accuracy = (net(centre(x)[0]).argmax(1) == y).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    assert accuracy > 0.5, f"synthetic validation accuracy {accuracy:.2f} is not well above chance (0.10)"


# ---------------------------------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.data
def test_cifar10_archive_subset(tmp_path, monkeypatch):
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(f"CIFAR-10 archive not found at {CIFAR10_ARCHIVE}")
    monkeypatch.setenv("ALEXNET_CIFAR10", str(CIFAR10_ARCHIVE))
    bundle = build_data("cifar10", image_size=36, limit_per_class=20, cache_dir=tmp_path / "cache")
    assert bundle.classes == CIFAR10_CLASSES
    assert len(bundle.train) == 200 and len(bundle.val) == 200 and bundle.skipped == 0
    assert np.bincount(bundle.train.labels).tolist() == [20] * 10
    img, label = bundle.train[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 36, 36) and label == 0
    # natural images: a mean near mid-grey, and a dominant (brightness-like) colour component
    assert 80 < bundle.stats.mean.mean().item() < 170
    assert bundle.stats.eigvals[0] > 5 * bundle.stats.eigvals[1] > 0
    assert (bundle.stats.eigvecs[:, 0] > 0.4).all(), "first colour component should weight R, G and B alike"
    x, y = next(iter(make_loader(bundle.val, 50, shuffle=False, seed=0)))
    assert x.shape == (50, 3, 36, 36) and y.tolist() == [0] * 20 + [1] * 20 + [2] * 10
