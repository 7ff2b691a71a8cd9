"""The CIFAR-10 study's per-arm learning rates and its two-tower net: the validation split (held out of the
training set, disjoint from it and from the test set, the same every time), the rule that picks each arm's
rate from validation error alone, the verdicts "depends on lr" and "not a test of normalisation", the
two-tower net's connectivity and parameter counts, and the report rendered from a tiny per-arm study."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cifar_cnn import CifarCNN
from bench.ablations import cifar, cifar_report, cifar_train
from bench.ablations.cifar_train import RunSpec, holdout_indices, load_cifar_tensors, train_run

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------- validation split
def test_holdout_indices_are_a_fixed_partition():
    train, val = holdout_indices(50_000, 5_000)
    assert len(val) == 5_000 and len(train) == 45_000
    assert not set(train) & set(val) and set(train) | set(val) == set(range(50_000))
    again = holdout_indices(50_000, 5_000)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])  # stable within a process ...
    # ... and across machines and NumPy releases (default_rng's permutation is a stable stream)
    assert holdout_indices(10, 3)[1].tolist() == [2, 4, 6]
    assert not np.array_equal(val, holdout_indices(50_000, 5_000, seed=1)[1])
    with pytest.raises(ValueError, match="between 1 and 9"):
        holdout_indices(10, 10)


def test_validation_split_is_disjoint_from_training_and_test_images():
    full = load_cifar_tensors("synthetic", synthetic_train=120, synthetic_test=30)
    split = load_cifar_tensors("synthetic", synthetic_train=120, synthetic_test=30, val_images=20)
    assert split.val_x.shape == (20, 3, 32, 32) and len(split.train_y) == 100 and len(split.test_y) == 30
    def rows(t):  # one normalisation for all three splits, so equal images give equal rows
        return {tuple(np.round(r.numpy(), 3)) for r in t.flatten(1)}
    assert not rows(split.val_x) & rows(split.train_x) and not rows(split.val_x) & rows(split.test_x)
    # the held-out images are exactly the training images holdout_indices names, with their labels
    _, held = holdout_indices(120, 20)
    assert torch.equal(split.val_y, full.train_y[torch.from_numpy(held)])
    assert split.describe()["val_images"] == 20 and "val_images" not in full.describe()
    # the normalisation comes from the remaining training images alone
    assert abs(float(split.train_x.mean())) < 1e-4


def test_a_run_records_validation_error_and_a_trial_never_sees_the_test_set(monkeypatch):
    data = load_cifar_tensors("synthetic", synthetic_train=80, synthetic_test=16, val_images=16)
    splits = []
    real = cifar_train.test_error
    monkeypatch.setattr(cifar_train, "test_error", lambda *a, **k: splits.append(k.get("split", "test")) or real(*a, **k))
    trial = train_run(RunSpec(batch_size=8, max_epochs=2, val_images=16, test_every_epoch=False, test_at_end=False), data)
    assert splits == ["val"] and trial["test_top1_err"] is None and 0 <= trial["val_top1_err"] <= 1
    full = train_run(RunSpec(batch_size=8, max_epochs=2, val_images=16), data)
    assert full["test_top1_err"] is not None and len(full["val_curve"]) == 2
    with pytest.raises(ValueError, match="validation images"):
        train_run(RunSpec(batch_size=8, max_epochs=1, val_images=8), data)


def test_old_records_match_specs_without_the_new_fields():
    stored = json.loads((REPO / "reports/cifar10-cpu/runs/paper/ablation/base/seed0.json").read_text())["spec"]
    assert "val_images" not in stored and "layout" not in stored
    args = cifar.build_parser().parse_args(["--regime", "paper", "--protocol", "single-lr"])
    cifar._check(args)
    assert cifar.ablation_spec(args, "base", 0, "paper", lr=0.005).matches(stored)
    assert not cifar.tuned_spec(args, "base", 0, "paper", 0.005).matches(stored)


# ---------------------------------------------------------------------------------------- the per-arm rule
def _trial(val, test=None, diverged=False):
    return {"val_top1_err": val, "test_top1_err": test, "diverged": diverged}


def test_per_arm_rule_reads_validation_error_only():
    # the test errors rank the rates the other way: a rule that read them would pick 0.01
    grid = {0.01: [_trial(0.40, test=0.10)], 0.005: [_trial(0.30, test=0.50)], 0.0025: [_trial(0.35, test=0.20)]}
    assert cifar_report.best_val_lr(grid) == 0.005
    # the mean over trial seeds decides; a trial without a validation error ranks last
    grid = {0.01: [_trial(0.2), _trial(None, diverged=True)], 0.005: [_trial(0.3), _trial(0.3)]}
    assert cifar_report.best_val_lr(grid) == 0.005
    with pytest.raises(ValueError):
        cifar_report.best_val_lr({})


def test_choosing_an_arms_rate_never_evaluates_on_the_test_set(tmp_path, monkeypatch):
    args = cifar.build_parser().parse_args([
        "--data", "synthetic", "--synthetic-train", "64", "--synthetic-test", "16", "--val-images", "16",
        "--batch-size", "8", "--amp", "off", "--grid-epochs", "1", "--unit-lr-grid", "0.02,0.005",
        "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "state")])
    cifar._check(args)
    splits = []
    real = cifar_train.test_error
    monkeypatch.setattr(cifar_train, "test_error", lambda *a, **k: splits.append(k.get("split", "test")) or real(*a, **k))
    study = cifar.Study(args, log=lambda *_: None)
    lr = cifar.choose_arm_lr(study, "lrn", "unit", [0])
    assert lr in (0.02, 0.005) and splits == ["val", "val"]
    recs = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs" / "lr-grid").rglob("*.json")]
    assert len(recs) == 2 and all(r["test_top1_err"] is None and r["test_curve"] == [] for r in recs)
    best = min(recs, key=lambda r: (r["val_top1_err"], r["spec"]["lr"]))
    assert best["spec"]["lr"] == lr


# ---------------------------------------------------------------------------------------- verdict rules
def _grid_analysis(deltas_pp: dict[float, list[float]]) -> dict:
    """A regime's analysis with LRN/base grid trials whose validation errors differ by ``deltas_pp`` per seed,
    and tuned runs with LRN 2 pp better on every seed."""
    def rec(val, test=None, lrn=False, seed=0):
        return {"val_top1_err": val, "test_top1_err": test, "diverged": False, "stop_reason": "budget",
                "at_chance": False, "epochs_run": 3, "train_seconds": 30.0,
                "spec": {"lr": 0.01, "lr_drop_epochs": [], "max_epochs": 3, "momentum": 0.9, "weight_decay": 5e-4,
                         "batch_size": 128, "val_images": 5000, "lrn": lrn}}
    grids = {"base": {}, "lrn": {}}
    for lr, ds in deltas_pp.items():
        grids["base"][lr] = {s: rec(0.40) for s in range(len(ds))}
        grids["lrn"][lr] = {s: rec(0.40 + d / 100, lrn=True) for s, d in enumerate(ds)}
    tuned = {"base": {s: rec(0.3, 0.30 + 0.001 * s) for s in range(5)},
             "lrn": {s: rec(0.3, 0.28 + 0.0012 * s, lrn=True) for s in range(5)}}
    a = {"regime": "paper", "runs": {}, "fig1": {}, "arms": {}, "trials": {}, "settings": {}, "grids": grids,
         "tuned": tuned, "chosen_lr": {"base": 0.005, "lrn": 0.005}}
    a["sensitivity"] = cifar_report.sensitivity(a)
    a["claims"] = cifar_report.claims(a)
    return a


def test_a_verdict_that_flips_inside_the_grid_reads_depends_on_lr():
    steady = _grid_analysis({0.01: [-3.0], 0.005: [-2.5], 0.0025: [-0.5]})
    row = next(r for r in steady["claims"] if r.key == "lrn")
    assert not steady["sensitivity"]["lrn"]["flips"] and not row.verdict.startswith("depends on lr")
    flips = _grid_analysis({0.01: [-3.0], 0.005: [-2.5], 0.0025: [+4.0]})
    row = next(r for r in flips["claims"] if r.key == "lrn")
    assert flips["sensitivity"]["lrn"]["flips"] and row.verdict.startswith("depends on lr")
    # from one seed, a delta under the margin is no direction; with seeds, the interval decides
    small = _grid_analysis({0.01: [-3.0], 0.0025: [+1.0]})
    assert not small["sensitivity"]["lrn"]["flips"]
    paired = _grid_analysis({0.01: [-3.0, -2.8, -3.1], 0.0025: [+1.0, +1.1, +0.9]})
    assert paired["sensitivity"]["lrn"]["flips"]
    noisy = _grid_analysis({0.01: [-3.0, -2.8, -3.1], 0.0025: [+4.0, -4.0, +3.0]})
    assert not noisy["sensitivity"]["lrn"]["flips"]


def _terms(top: float) -> list[dict]:
    layer = lambda name: {"layer": name, "k": 2.0, "beta": 0.75, "mean": top / 10, "max": top,  # noqa: E731
                          "p50": top / 20, "p99": top / 2}
    return [{"epoch": e, "layers": [layer("LRN1"), layer("LRN2")]} for e in (0, 4, 8)]


def test_an_lrn_row_whose_probe_shows_a_constant_factor_is_not_a_test_of_normalisation():
    assert "constant factor" in cifar_report.lrn_absent({"seed": 0, "terms": _terms(0.03)})
    assert cifar_report.lrn_absent({"seed": 0, "terms": _terms(0.5)}) is None
    assert cifar_report.lrn_absent({"seed": 0, "terms": _terms(0.03),
                                    "all": {0: _terms(0.03), 1: _terms(3.0)}}) is None  # any seed that normalises
    # the committed unit-regime probe: alpha * sum a^2 <= 0.03 against k = 2
    analysis = cifar_report.analyse(cifar_report.load_study(REPO / "reports/cifar10-cpu"))
    unit = cifar_report._row(analysis, "unit", "lrn-single-lr")
    paper = cifar_report._row(analysis, "paper", "lrn-single-lr")
    assert unit.verdict == cifar_report.NOT_NORMALISATION and unit.details["verdict_as_measured"] == "disagrees"
    assert paper.verdict != cifar_report.NOT_NORMALISATION  # there the term reaches far above k


def test_a_row_whose_arms_shared_one_rate_gives_no_verdict():
    analysis = cifar_report.analyse(cifar_report.load_study(REPO / "reports/cifar10-cpu"))
    paper_lrn = cifar_report._row(analysis, "paper", "lrn-single-lr")
    paper_pool = cifar_report._row(analysis, "paper", "pool-single-lr")
    for row in (paper_lrn, paper_pool):
        assert row.verdict == cifar_report.SHARED_RATE
    # what the interval alone reads stays in the row: LRN's -9 pp resolved, pooling's +3 pp against the paper
    assert paper_lrn.details["verdict_as_measured"].startswith("agrees in direction")
    assert paper_pool.details["verdict_as_measured"] == "disagrees"
    # the mechanism's absence holds at any rate, so it keeps its reading; per-arm rows keep the interval's
    assert cifar_report._row(analysis, "unit", "lrn-single-lr").verdict == cifar_report.NOT_NORMALISATION
    assert cifar_report.SHARED_RATE not in {r.verdict for g in cifar_report.REGIMES
                                            for r in analysis["regimes"][g]["claims"] if r.key in ("lrn", "pool")}


# ---------------------------------------------------------------------------------------- two towers
def _block1(model: CifarCNN, x: torch.Tensor) -> torch.Tensor:
    return model.features[2](model.features[1](model.features[0](x)))  # conv1 -> ReLU -> pool


def test_two_towers_join_only_at_conv3_and_the_classifier():
    torch.manual_seed(0)
    net = CifarCNN(layout="two-gpu")
    x = torch.randn(2, 3, 32, 32)
    h1 = _block1(net, x).detach().requires_grad_(True)
    conv2, conv3 = net.features[3], net.features[6]
    a2 = conv2(h1)
    a2[:, :16].sum().backward()  # tower A's conv2 outputs
    g = h1.grad.abs().sum(dim=(0, 2, 3))
    assert (g[:16] > 0).all() and (g[16:] == 0).all()  # no gradient from tower B's conv1 activations
    h1.grad = None
    conv2(h1)[:, 16:].sum().backward()
    g = h1.grad.abs().sum(dim=(0, 2, 3))
    assert (g[:16] == 0).all() and (g[16:] > 0).all()
    # conv3 of either tower sees both towers' conv2 maps
    h2 = net.features[5](net.features[4](a2)).detach().requires_grad_(True)
    conv3(h2)[:, :32].sum().backward()
    g = h2.grad.abs().sum(dim=(0, 2, 3))
    assert (g[:16] > 0).all() and (g[16:] > 0).all()
    # the one-tower net of the same width: conv2 sees every conv1 map
    full = CifarCNN()
    h1 = _block1(full, x).detach().requires_grad_(True)
    full.features[3](h1)[:, :16].sum().backward()
    assert (h1.grad.abs().sum(dim=(0, 2, 3)) > 0).all()


def test_tower_nets_parameter_counts_and_lrn_within_towers():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    full, two, half = CifarCNN(), CifarCNN(layout="two-gpu"), CifarCNN(widths=(16, 16, 32))
    # conv1 3*32*25+32, conv2 per tower 16*16*25 (+32 biases), conv3 32*64*25+64, fc 1024*10+10
    assert count(full) == 89_578 and count(two) == 76_778 and count(half) == 25_594
    assert two.features[3].weight.shape == (32, 16, 5, 5) and two.classifier.in_features == 1024
    assert half.classifier.in_features == 512
    # LRN normalises within a tower: tower A's output ignores tower B's channels
    lrn = CifarCNN(layout="two-gpu", lrn=True).features[3]
    x = torch.rand(1, 32, 8, 8) * 100
    y = x.clone()
    y[:, 16:] *= 10
    assert torch.equal(lrn(x)[:, :16], lrn(y)[:, :16]) and not torch.equal(lrn(x)[:, 16:], lrn(y)[:, 16:])
    with pytest.raises(ValueError, match="multiples of 2"):
        CifarCNN(layout="two-gpu", widths=(31, 32, 64))


# ---------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_per_arm_study_end_to_end_tiny(tmp_path):
    out = tmp_path / "out"
    args = ["--data", "synthetic", "--amp", "off", "--synthetic-train", "64", "--synthetic-test", "16",
            "--val-images", "16", "--batch-size", "8", "--seeds", "2", "--epochs", "2", "--lr-drop-epoch", "1",
            "--grid-epochs", "1", "--paper-lr-grid", "0.01,0.001", "--paper-epochs", "2", "--paper-lr-drops", "1",
            "--regime", "paper", "--experiments", "lrn,towers", "--threads", "1", "--out", str(out),
            "--state-dir", str(tmp_path / "state")]
    r = subprocess.run([sys.executable, "-m", "bench.ablations.cifar", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {p.relative_to(out / "runs").as_posix() for p in (out / "runs").rglob("*.json")}
    assert {"paper/tuned/two-tower/seed1.json", "paper/tuned/one-tower-half/seed0.json",
            "paper/lr-grid/lrn-lr0.001/seed0.json", "paper/tuned/lrn/seed1.json"} <= runs
    tuned = json.loads((out / "runs/paper/tuned/two-tower/seed0.json").read_text())
    assert tuned["spec"]["layout"] == "two-gpu" and tuned["spec"]["lr_drop_epochs"] == [1]
    assert tuned["data"]["val_images"] == 16 and tuned["test_top1_err"] is not None
    md = (out / "README.md").read_text()
    for text in ("## Sensitivity to the learning rate", "## Each arm at its own learning rate",
                 "Two towers beat one tower with half the kernels", "s per epoch", "76,778", "25,594"):
        assert text in md, text
    assert (out / "sensitivity.png").stat().st_size > 5000 and (out / "curves-tuned-paper.png").exists()
    # the report re-renders from the records alone, identically
    (out / "README.md").unlink()
    assert cifar_report.cli([str(out)]) == 0 and (out / "README.md").read_text() == md
