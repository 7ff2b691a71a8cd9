"""The ablation harness: the 4-layer CIFAR CNN, the one-switch variant table, and the whole study end to
end on CPU at a tiny budget (one seed, a few steps, synthetic data): runs, resumes without redoing
anything, refuses stale run directories, and writes the report files."""
import json

import pytest
import torch

from alexnet.cifar_cnn import CifarCNN
from bench import ablations


def test_cifar_cnn_shapes_and_one_switch():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    relu = CifarCNN(activation="relu")
    torch.manual_seed(0)
    tanh = CifarCNN(activation="tanh")
    assert relu(x).shape == (4, 10) and relu.classifier.in_features == 64 * 4 * 4
    # same seed -> identical initial weights; only the nonlinearity differs
    for (n1, p1), (n2, p2) in zip(relu.named_parameters(), tanh.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert not torch.allclose(relu(x), tanh(x))
    lrn = CifarCNN(lrn=True)
    assert sum(p.numel() for p in lrn.parameters()) == sum(p.numel() for p in relu.parameters())
    assert sum(isinstance(m, torch.nn.LocalResponseNorm) for m in lrn.modules()) == 2


def test_cifar_cnn_lrn_uses_paper_alpha_convention():
    lrn = next(m for m in CifarCNN(lrn=True).modules() if isinstance(m, torch.nn.LocalResponseNorm))
    a = torch.rand(1, 8, 2, 2) * 50
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    i = 3  # channels 1..5 are inside the window of channel 3
    expected = a[0, i] / (k + alpha * (a[0, 1:6] ** 2).sum(0)) ** beta
    assert torch.allclose(lrn(a)[0, i], expected, rtol=1e-5)


def test_cifar_cnn_rejects_bad_input():
    with pytest.raises(ValueError, match="activation"):
        CifarCNN(activation="sigmoid")
    with pytest.raises(ValueError, match="32 px"):
        CifarCNN()(torch.randn(2, 3, 24, 24))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        CifarCNN()(torch.randn(3, 32, 32))


def test_variants_differ_from_baseline_in_one_switch():
    assert ablations.VARIANTS["baseline"] == []
    for name, flags in ablations.VARIANTS.items():
        if name != "baseline":
            assert flags and flags[0].startswith("--") and sum(f.startswith("--") for f in flags) <= 2
    assert ablations.VARIANTS["one-gpu-half"] == ["--layout", "one-gpu", "--width", "half"]
    assert ablations.parse_seeds("3") == [0, 1, 2] and ablations.parse_seeds("4,9") == [4, 9]
    with pytest.raises(SystemExit, match="--seeds"):
        ablations.parse_seeds("0")


TINY = ["--data", "synthetic", "--seeds", "1", "--epochs", "1", "--max-steps", "1", "--batch-size", "8",
        "--synthetic-train", "16", "--synthetic-val", "8", "--image-size", "70", "--crop-size", "67",
        "--recipes", "base", "--cifar-epochs", "1", "--cifar-max-steps", "2", "--cifar-batch-size", "8",
        "--cifar-lrs", "0.01", "--cifar-points-per-epoch", "1", "--study", "tiny",
        # two AlexNet variants keep CI short (each run writes a 455 MB checkpoint); every variant's flags are
        # checked against alexnet.train below
        "--variants", "baseline,no-lrn"]


def test_every_variant_is_a_valid_alexnet_train_config():
    from alexnet import train

    common = ablations.common_train_flags(ablations.build_parser().parse_args(TINY))
    seen = {}
    for recipe in ("base", "warmup"):
        extra = ablations.recipe_flags(recipe, ablations.build_parser().parse_args(TINY))
        for name, flags in ablations.VARIANTS.items():
            args, _ = train.resolve_config(train.build_parser().parse_args([*common, *extra, *flags, "--out", "x"]),
                                           on_gpu=False)
            seen[(recipe, name)] = train.model_config(args, num_classes=10).to_dict()
    base = seen[("base", "baseline")]
    diff = {name: {k for k in base if seen[("base", name)][k] != base[k]} for name in ablations.VARIANTS}
    assert diff == {"baseline": set(), "no-lrn": {"lrn"}, "pool-2x2": {"pool_kernel"},
                    "one-gpu-half": {"layout", "conv_widths"}, "no-pca": set(), "no-dropout": {"dropout"}}


@pytest.mark.slow
def test_study_end_to_end_tiny_cpu(tmp_path, capsys):
    argv = [*TINY, "--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "reports")]
    results = ablations.main(ablations.build_parser().parse_args(argv))
    study = tmp_path / "runs" / "tiny"
    for variant in ("baseline", "no-lrn"):
        assert (study / "base" / variant / "seed0" / "summary.json").is_file(), variant
        assert results["alexnet"]["base"][variant]["0"]["status"] in ("ok", "diverged", "exploded", "at-chance")
    assert set(results["crops"]["base"]["0"]) >= {"centre", "ten_crop"} or results["crops"]["base"]["0"]["status"] == "diverged"
    assert len(results["cifar"]["fig1"]["relu"]["runs"]["0"]["curve"]) >= 1
    claim_names = {r["claim"] for r in results["claims"]}
    assert {"LRN", "10-crop vs centre-crop test", "CIFAR 4-layer CNN: LRN (13% -> 11% test error)",
            "Figure 1: ReLU vs tanh speed-up (4-layer CNN)"} <= claim_names
    reports = tmp_path / "reports"
    md = (reports / "ablations_tiny.md").read_text()
    assert "| claim | metric | recipe | paper delta | measured delta +/- 95% CI" in md
    assert "-1.4 pp" in md and "Scale: the paper vs this study" in md
    assert (reports / "ablations_tiny_figure1.png").stat().st_size > 1000
    assert json.loads((study / "results.json").read_text())["study"] == "tiny"

    # resumable: a second invocation redoes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in study.rglob("summary.json")}
    capsys.readouterr()
    ablations.main(ablations.build_parser().parse_args(argv))
    out = capsys.readouterr().out
    assert "python -m alexnet.train" not in out and "CIFAR CNN {" not in out
    assert {p: p.stat().st_mtime_ns for p in study.rglob("summary.json")} == mtimes

    # a run directory made with other flags is refused, not silently reused
    stale = [*argv[:argv.index("--max-steps") + 1], "2", *argv[argv.index("--max-steps") + 2:]]
    with pytest.raises(SystemExit, match="made with flags"):
        ablations.main(ablations.build_parser().parse_args(stale))
