"""Statistics of the ablation study: t quantiles, paired-by-seed CIs, epochs-to-threshold, run status and
the claim rows (sign convention, pairing, exclusion of failed seeds)."""
import math
import statistics

import pytest

from bench.ablations.alexnet_report import claims, fmt_measured
from bench.report.claim_row import ClaimRow
from bench.ablations.alexnet_study import run_status
from bench.ablations.stats import epochs_to_threshold, mean_sd, paired_delta, paired_ratio, t_cdf, t_quantile, verdict

# Two-sided 95% critical values t_{0.975, df}: NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2
# (upper critical values of Student's t distribution), 3 decimals.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 100: 1.984}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_quantile_matches_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=6e-4)


def test_t_cdf_closed_forms_and_symmetry():
    for t in (-3.0, -0.4, 0.0, 0.7, 5.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
        for df in (3, 4, 7, 12):
            assert t_cdf(t, df) + t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)
    assert t_quantile(0.025, 5) == pytest.approx(-t_quantile(0.975, 5))
    assert t_quantile(0.995, 3) == pytest.approx(5.841, abs=6e-4)  # same table, 99% two-sided
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_cdf(1.0, 0)
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(1.0, 3)


def test_paired_delta_mean_and_ci_by_hand():
    base = {0: 0.25, 1: 0.24, 2: 0.26}
    var = {0: 0.23, 1: 0.23, 2: 0.25}
    d = paired_delta(base, var)
    diffs = [-0.02, -0.01, -0.01]
    half = 4.302653 * statistics.stdev(diffs) / math.sqrt(3)
    assert d.n == 3 and d.seeds == [0, 1, 2]
    assert d.mean == pytest.approx(statistics.mean(diffs))
    assert d.ci[0] == pytest.approx(d.mean - half, rel=1e-5) and d.ci[1] == pytest.approx(d.mean + half, rel=1e-5)
    assert d.includes_zero is True  # upper end is +0.0010


def test_pairing_removes_seed_to_seed_spread():
    # seeds differ by several points, the variant is always exactly 1 point better: paired CI excludes 0
    base = {0: 0.30, 1: 0.25, 2: 0.35, 3: 0.28}
    var = {s: v - 0.01 for s, v in base.items()}
    d = paired_delta(base, var)
    assert d.mean == pytest.approx(-0.01) and d.sd == pytest.approx(0.0, abs=1e-12)
    assert d.includes_zero is False
    # an unpaired comparison of the same numbers would not resolve it
    m_b, sd_b = mean_sd(base.values())
    assert sd_b > 0.02


def test_pairing_uses_only_common_finite_seeds():
    d = paired_delta({0: 0.2, 1: 0.3, 2: 0.4, 3: 0.5}, {1: 0.25, 2: float("nan"), 3: 0.45, 7: 0.1})
    assert d.seeds == [1, 3] and d.diffs == pytest.approx([-0.05, -0.05])


def test_one_pair_has_no_interval_and_zero_pairs_no_mean():
    one = paired_delta({0: 0.2}, {0: 0.25})
    assert one.n == 1 and one.mean == pytest.approx(0.05)
    assert one.ci is None and one.includes_zero is None and one.half_width is None
    assert "n/a" in fmt_measured(ClaimRow("LRN", "-1.4", unit="pp", mean=100 * one.mean, ci=one.ci, n=one.n))
    none = paired_delta({0: 0.2}, {1: 0.25})
    assert none.n == 0 and none.mean is None and none.ci is None


def test_epochs_to_threshold_interpolates_first_crossing():
    pts = [(1, 0.5), (2, 0.2), (3, 0.1)]
    assert epochs_to_threshold(pts, 0.25) == pytest.approx(1 + 0.25 / 0.3)
    # first crossing counts even if the error goes back up later
    assert epochs_to_threshold([(1, 0.3), (2, 0.2), (3, 0.4)], 0.25) == pytest.approx(1.5)
    # exactly at the threshold: that measurement
    assert epochs_to_threshold([(1, 0.4), (2, 0.25)], 0.25) == pytest.approx(2.0)
    # already below at the first measurement: interpolated from the start point, else the first x
    assert epochs_to_threshold([(1, 0.2)], 0.25, start=(0, 0.9)) == pytest.approx(0.65 / 0.7)
    assert epochs_to_threshold([(1, 0.2)], 0.25) == 1.0
    assert epochs_to_threshold([(1, 0.9), (2, 0.3)], 0.25) is None
    assert epochs_to_threshold([], 0.25) is None
    assert epochs_to_threshold([(1, 0.9), (2, float("nan")), (3, 0.1)], 0.25) == pytest.approx(1 + 2 * 0.65 / 0.8)
    with pytest.raises(ValueError, match="sorted"):
        epochs_to_threshold([(2, 0.5), (1, 0.2)], 0.25)


def test_run_status():
    assert run_status(float("nan"), 0.9, False, 10) == "diverged"
    assert run_status(1.0, 0.3, True, 10) == "diverged"
    assert run_status(None, None, False, 10) == "diverged"
    assert run_status(1e4, 0.9, False, 10) == "exploded"
    assert run_status(2.303, 0.90, False, 10) == "at-chance"  # the collapse seen on the H100 without LRN
    assert run_status(0.8, 0.25, False, 10) == "ok"
    assert run_status(4.0, 0.95, False, 1000) == "ok"  # 5% accuracy is 50x chance with 1000 classes


def _run(err, status="ok", top5=0.05, train=0.1):
    return {"status": status, "val_top1_err": err, "val_top5_err": top5, "train_top1_err": train,
            "gap_top1": err - train, "config": {"data": "synthetic", "epochs": 2, "num_classes": 10}}


def test_claims_sign_pairing_and_stability():
    results = {"seeds": [0, 1, 2], "alexnet": {"base": {
        "baseline": {"0": _run(0.24), "1": _run(0.25), "2": _run(0.23)},
        # without LRN: 1 point worse where it trains, seed 2 collapsed to chance
        "no-lrn": {"0": _run(0.25), "1": _run(0.26), "2": _run(0.90, status="at-chance")},
    }}}
    rows = [r for r in claims(results) if r.claim == "LRN" and r.metric == "top-1"]
    assert len(rows) == 1
    row = rows[0]
    assert row.paper_value == -1.4
    assert row.n == 2 and row.seeds == ("0", "1")
    assert row.mean == pytest.approx(-1.0)  # with LRN - without, in pp: negative = LRN helps
    assert "2/3 ok, 1 at-chance" in row.stability
    assert "-1.00" in fmt_measured(row)


def test_paired_ratio_is_geometric_mean_with_log_interval():
    relu = {0: 2.0, 1: 4.0, 2: 3.0, 3: 5.0}
    tanh = {0: 12.0, 1: 24.0, 2: None, 3: 10.0}  # seed 2 never reached the threshold: it drops out
    r = paired_ratio(relu, tanh)
    assert r.n == 3 and r.seeds == [0, 1, 3] and r.ratios == pytest.approx([6.0, 6.0, 2.0])
    logs = [math.log(6.0), math.log(6.0), math.log(2.0)]
    half = 4.302653 * statistics.stdev(logs) / math.sqrt(3)
    assert r.mean == pytest.approx((6.0 * 6.0 * 2.0) ** (1 / 3))
    assert r.ci == pytest.approx((math.exp(statistics.mean(logs) - half), math.exp(statistics.mean(logs) + half)),
                                 rel=1e-5)
    assert r.ci[0] > 0  # a ratio's interval never crosses zero
    same = paired_ratio({0: 2.0, 1: 3.0}, {0: 12.0, 1: 18.0})
    assert same.mean == pytest.approx(6.0) and same.ci == pytest.approx((6.0, 6.0))
    assert paired_ratio({0: 2.0}, {0: 8.0}).ci is None


@pytest.mark.parametrize("ci,paper,null,expected", [
    ((-3.0, -1.0), -2.0, 0.0, "agrees"),
    ((-1.0, -0.5), -2.0, 0.0, "agrees in direction, smaller"),
    ((-4.0, -3.0), -2.0, 0.0, "agrees in direction, larger"),
    ((-0.5, 0.5), -2.0, 0.0, "disagrees"),  # no effect of the paper's size
    ((0.2, 1.0), -2.0, 0.0, "disagrees"),  # the opposite effect
    ((-3.0, 0.5), -2.0, 0.0, "inconclusive"),
    (None, -2.0, 0.0, "inconclusive"),
    ((4.0, 7.0), 6.0, 1.0, "agrees"),
    ((1.5, 3.0), 6.0, 1.0, "agrees in direction, smaller"),
    ((0.5, 0.9), 6.0, 1.0, "disagrees"),
    ((0.8, 1.2), 6.0, 1.0, "disagrees"),
    ((0.8, 9.0), 6.0, 1.0, "inconclusive"),
])
def test_verdict_comes_from_the_interval(ci, paper, null, expected):
    assert verdict(ci, paper, null) == expected
