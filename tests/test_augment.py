"""Device-side augmentation: the ten crops and PCA lighting against hand-computed small cases, crops and
flips against per-image slicing, mean subtraction, the random draws, seeding, bad input, softmax averaging,
and (with a CUDA device) the same result on the GPU."""
import pytest
import torch

from alexnet.augment import EvalTransform, TrainAugment, crop_flip, predict_averaged
from alexnet.data import PixelStats

ONE_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def stats_for(size, mean=None, eigvals=(0.2, 0.02, 0.005), eigvecs=None):
    mean = torch.zeros(3, size, size) if mean is None else mean
    eigvecs = torch.eye(3) if eigvecs is None else torch.tensor(eigvecs, dtype=torch.float32)
    return PixelStats(mean=mean.float(), eigvals=torch.tensor(eigvals, dtype=torch.float32), eigvecs=eigvecs)


def tiny_image():
    """1 x 3 x 4 x 4 with pixel (c, i, j) = 100 c + 10 i + j."""
    c, i, j = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(4), indexing="ij")
    return (100 * c + 10 * i + j).to(torch.uint8)[None]


def test_ten_crops_by_hand():
    views = EvalTransform(stats_for(4), crop_size=2, ten_crop=True, normalize=False)(tiny_image())
    assert views.shape == (10, 1, 3, 2, 2) and views.dtype == torch.float32
    channel0 = [
        [[0, 1], [10, 11]],    # top-left
        [[2, 3], [12, 13]],    # top-right
        [[20, 21], [30, 31]],  # bottom-left
        [[22, 23], [32, 33]],  # bottom-right
        [[11, 12], [21, 22]],  # centre: offset (4 - 2) // 2 = 1
        [[1, 0], [11, 10]],    # the same five, flipped left-right
        [[3, 2], [13, 12]],
        [[21, 20], [31, 30]],
        [[23, 22], [33, 32]],
        [[12, 11], [22, 21]],
    ]
    expected = torch.tensor(channel0, dtype=torch.float32)[:, None] + 100 * torch.arange(3.0)[:, None, None]
    assert torch.equal(views[:, 0], expected)


def test_centre_crop_and_mean_subtraction_by_hand():
    mean = torch.arange(48, dtype=torch.float32).reshape(3, 4, 4) / 4  # any non-constant mean image
    views = EvalTransform(stats_for(4, mean=mean), crop_size=2, normalize=False)(tiny_image())
    assert views.shape == (1, 1, 3, 2, 2)
    assert torch.equal(views[0, 0], tiny_image()[0, :, 1:3, 1:3].float() - mean[:, 1:3, 1:3])


def test_pca_lighting_offset_by_hand():
    # orthonormal eigenvectors (columns), eigenvalues and one injected alpha per image
    vecs = [[1.0, 0.0, 0.0], [0.0, 0.6, -0.8], [0.0, 0.8, 0.6]]
    aug = TrainAugment(stats_for(4, eigvecs=vecs), crop_size=4, flip=False, normalize=False)
    alpha = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    # alpha * eigvals = (0.1, -0.02, 0.01); eigvecs @ that = (0.1, -0.012 - 0.008, -0.016 + 0.006)
    expected = 255 * torch.tensor([[0.1, -0.02, -0.01], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(aug.lighting_offset(alpha), expected, rtol=1e-6, atol=1e-5)

    images = tiny_image().repeat(2, 1, 1, 1)
    zero = torch.zeros(2, dtype=torch.long)
    out = aug.apply(images, zero, zero, torch.zeros(2, dtype=torch.bool), alpha)
    added = out - images.float()  # mean is zero, crop is the whole image
    assert torch.allclose(added, expected[:, :, None, None].expand_as(added), atol=1e-4)
    assert torch.equal(TrainAugment(stats_for(4), crop_size=4, lighting=False, normalize=False).apply(
        images, zero, zero, torch.zeros(2, dtype=torch.bool), alpha), images.float())


def test_random_crops_and_flips_match_slicing():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (9, 3, 11, 11), dtype=torch.uint8, generator=gen)
    mean = torch.rand(3, 11, 11, generator=gen) * 255
    aug = TrainAugment(stats_for(11, mean=mean), crop_size=7, lighting=False, normalize=False)
    draws = aug.sample(9, gen)
    out = aug.apply(images, **draws)
    assert out.shape == (9, 3, 7, 7) and out.dtype == torch.float32 and out.is_contiguous()
    for n in range(9):
        t, l = draws["top"][n].item(), draws["left"][n].item()
        ref = images[n].float() - mean  # crop(flip(image - mean)): the mean is cut at the same window
        ref = ref[:, t:t + 7, l:l + 7]
        if draws["flip"][n]:
            ref = ref.flip(-1)
        torch.testing.assert_close(out[n], ref, rtol=0, atol=1e-4, msg=f"image {n} (top {t}, left {l})")


def test_normalize_divides_by_the_channel_std():
    # eigvecs I: the channel variances are the eigenvalues, so std = 255 * sqrt(eigvals)
    stats = stats_for(6, mean=torch.full((3, 6, 6), 50.0), eigvals=(0.04, 0.01, 0.0025))
    torch.testing.assert_close(stats.channel_std, torch.tensor([51.0, 25.5, 12.75]))
    images = tiny_image()[:, :, :3, :3].repeat(2, 1, 2, 2)  # 2 x 3 x 6 x 6
    aug_raw, aug = TrainAugment(stats, crop_size=5, normalize=False), TrainAugment(stats, crop_size=5)
    draws = aug.sample(2, torch.Generator().manual_seed(0))
    expected = aug_raw.apply(images, **draws) / torch.tensor([51.0, 25.5, 12.75])[:, None, None]
    torch.testing.assert_close(aug.apply(images, **draws), expected)
    views = EvalTransform(stats, crop_size=5, ten_crop=True)(images)
    raw = EvalTransform(stats, crop_size=5, ten_crop=True, normalize=False)(images)
    torch.testing.assert_close(views, raw / torch.tensor([51.0, 25.5, 12.75])[:, None, None])


def test_crop_flip_on_a_shared_image():
    img = tiny_image()[0]
    out = crop_flip(img, torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([True, False]), 2)
    assert out.shape == (2, 3, 2, 2)
    assert out[0, 0].tolist() == [[2, 1], [12, 11]] and out[1, 0].tolist() == [[20, 21], [30, 31]]


def test_draws_cover_every_offset_flip_half_and_alpha_spread():
    aug = TrainAugment(stats_for(10), crop_size=7, pca_std=0.1)
    draws = aug.sample(20000, torch.Generator().manual_seed(1))
    assert sorted(draws["top"].unique().tolist()) == [0, 1, 2, 3]  # S - crop + 1 = 4 positions
    assert sorted(draws["left"].unique().tolist()) == [0, 1, 2, 3]
    assert abs(draws["flip"].float().mean().item() - 0.5) < 0.02
    assert abs(draws["alpha"].std().item() - 0.1) < 0.005 and abs(draws["alpha"].mean().item()) < 0.005
    assert not TrainAugment(stats_for(10), crop_size=7, flip=False).sample(100)["flip"].any()


def test_generator_makes_it_reproducible():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 10, 10), dtype=torch.uint8, generator=gen)
    aug = TrainAugment(stats_for(10), crop_size=8)
    a = aug(images, torch.Generator().manual_seed(7))
    b = aug(images, torch.Generator().manual_seed(7))
    c = aug(images, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(aug(images, g), aug(images, g)), "each call (epoch) must redraw"


def test_bad_input_is_named():
    aug = TrainAugment(stats_for(10), crop_size=8)
    with pytest.raises(TypeError, match="uint8"):
        aug(torch.zeros(2, 3, 10, 10))
    with pytest.raises(ValueError, match=r"N x 3 x 10 x 10.*\(2, 3, 12, 12\)"):
        aug(torch.zeros(2, 3, 12, 12, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop_size"):
        TrainAugment(stats_for(10), crop_size=11)
    with pytest.raises(ValueError, match="crop_size"):
        EvalTransform(stats_for(10), crop_size=0)
    with pytest.raises(ValueError, match="views"):
        predict_averaged(torch.nn.Identity(), torch.zeros(2, 3, 4, 4))


class FirstTwoPixels(torch.nn.Module):
    """'Logits' = the first two pixels of channel 0, so the softmax of each view is known."""

    def forward(self, x):
        return x[:, 0, 0, :2]


def test_predict_averaged_by_hand():
    views = torch.zeros(2, 1, 3, 2, 2)
    views[1, 0, 0, 0, 0] = torch.log(torch.tensor(3.0))  # view 0: softmax (1/2, 1/2); view 1: (3/4, 1/4)
    probs = predict_averaged(FirstTwoPixels(), views)
    torch.testing.assert_close(probs, torch.tensor([[0.625, 0.375]]))


def test_buffers_follow_the_module():
    aug = TrainAugment(stats_for(10), crop_size=8).to(torch.float64)  # buffers move, stay usable
    assert aug(torch.zeros(1, 3, 10, 10, dtype=torch.uint8)).shape == (1, 3, 8, 8)
    assert not aug.state_dict(), "statistics are data, not checkpointed parameters"


@ONE_GPU
def test_gpu_matches_cpu():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8, generator=gen)
    stats = stats_for(40, mean=torch.rand(3, 40, 40, generator=gen) * 255,
                      eigvecs=[[0.58, 0.70, 0.41], [0.58, 0.0, -0.81], [0.58, -0.71, 0.41]])
    aug = TrainAugment(stats, crop_size=33, normalize=True)
    draws = aug.sample(16, gen)
    cpu = aug.apply(images, **draws)
    aug_gpu = aug.to("cuda")
    gpu = aug_gpu.apply(images.cuda(), **{k: v.cuda() for k, v in draws.items()})
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-4)
    out = aug_gpu(images.cuda(), torch.Generator(device="cuda").manual_seed(0))  # generator on the device
    assert out.device.type == "cuda" and out.shape == (16, 3, 33, 33)
    views = EvalTransform(stats, crop_size=33, ten_crop=True).to("cuda")(images.cuda())
    torch.testing.assert_close(views.cpu(), EvalTransform(stats, crop_size=33, ten_crop=True)(images))
