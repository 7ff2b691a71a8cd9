"""The AlexNet ablation harness: the one-switch variant table, and the whole study end to end on CPU at a
tiny budget (one seed, a few steps, synthetic data): runs, resumes without redoing anything, refuses
stale run directories, and writes the report files."""
import json

import pytest

from bench.ablations import alexnet_study as ablations
from infra.errors import UsageError


def test_variants_differ_from_baseline_in_one_switch():
    assert ablations.VARIANTS["baseline"] == []
    for name, flags in ablations.VARIANTS.items():
        if name != "baseline":
            assert flags and flags[0].startswith("--") and sum(f.startswith("--") for f in flags) <= 2
    assert ablations.VARIANTS["one-gpu-half"] == ["--layout", "one-gpu", "--width", "half"]
    assert ablations.parse_seeds("3") == [0, 1, 2] and ablations.parse_seeds("4,9") == [4, 9]
    with pytest.raises(UsageError, match="--seeds"):
        ablations.parse_seeds("0")


TINY = ["--data", "synthetic", "--seeds", "1", "--epochs", "1", "--max-steps", "1", "--batch-size", "8",
        "--synthetic-train", "16", "--synthetic-val", "8", "--image-size", "70", "--crop-size", "67",
        "--recipes", "base", "--study", "tiny",
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
    claim_names = {r["claim"] for r in results["claims"]}
    assert {"LRN", "10-crop vs centre-crop test"} <= claim_names
    reports = tmp_path / "reports"
    md = (reports / "ablations_tiny.md").read_text()
    assert "| claim | metric | recipe | paper delta | measured delta +/- 95% CI" in md
    assert "-1.4 pp" in md and "Scale: the paper vs this study" in md
    assert (reports / "ablations_tiny_deltas.png").stat().st_size > 1000
    assert json.loads((study / "results.json").read_text())["study"] == "tiny"

    # resumable: a second invocation redoes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in study.rglob("summary.json")}
    capsys.readouterr()
    ablations.main(ablations.build_parser().parse_args(argv))
    out = capsys.readouterr().out
    assert "python -m alexnet.train" not in out
    assert {p: p.stat().st_mtime_ns for p in study.rglob("summary.json")} == mtimes

    # a run directory made with other flags is refused, not silently reused
    stale = [*argv[:argv.index("--max-steps") + 1], "2", *argv[argv.index("--max-steps") + 2:]]
    with pytest.raises(UsageError, match="made with flags"):
        ablations.main(ablations.build_parser().parse_args(stale))
