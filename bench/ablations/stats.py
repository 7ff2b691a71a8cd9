"""Statistics of the ablation study: paired-by-seed deltas with a t-based 95% CI, and epochs-to-threshold.

* ``t_quantile(p, df)``: the Student-t quantile, computed (no SciPy) by bisection on the exact CDF for
  integer degrees of freedom (Abramowitz & Stegun 26.7.3-26.7.4, finite trigonometric series).
* ``paired_delta(baseline, variant)``: ``variant - baseline`` per seed present in both, mean and 95% CI
  ``mean +/- t_{0.975, n-1} * sd / sqrt(n)``. One pair gives a mean but no interval (``ci = None``,
  rendered "n/a", never zero width); no pair gives no mean.
* ``paired_ratio(baseline, variant)``: the geometric mean of per-seed ratios ``variant[s] / baseline[s]``
  with its 95% CI (the t interval of the log ratios, exponentiated), e.g. tanh's epochs over ReLU's.
* ``verdict(ci, paper, null)``: agrees / disagrees / inconclusive, from the interval alone.
* ``epochs_to_threshold(points, threshold)``: the first moment the training error falls to the
  threshold, linearly interpolated between the two measurements that straddle it (see its docstring).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer ``df`` >= 1 (exact finite series, A&S 26.7.3/26.7.4)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df!r}")
    if t == 0:
        return 0.5
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:  # A(t|df) = 2/pi * (theta + sin(theta) * (cos + 2/3 cos^3 + ... ))
        series, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            if k > 1:
                term *= c2 * (2 * k - 2) / (2 * k - 1)
            series += term
        a = 2.0 / math.pi * (theta + s * series) if df > 1 else 2.0 * theta / math.pi
    else:  # A(t|df) = sin(theta) * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        series, term = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            series += term
        a = s * series
    a = min(max(a, 0.0), 1.0)  # probability that |T| < |t|
    return 0.5 + 0.5 * a if t > 0 else 0.5 - 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass
class PairedDelta:
    """``variant - baseline`` over the seeds both have; ``ci`` is None when it is undefined (n < 2)."""

    n: int
    seeds: list
    diffs: list
    mean: float | None
    sd: float | None
    ci: tuple[float, float] | None
    level: float = 0.95

    @property
    def half_width(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    @property
    def includes_zero(self) -> bool | None:
        """True when the interval contains zero (the delta is not resolved); None without an interval."""
        return None if self.ci is None else self.ci[0] <= 0.0 <= self.ci[1]

    def to_dict(self) -> dict:
        return {**asdict(self), "half_width": self.half_width, "includes_zero": self.includes_zero}


def paired_delta(baseline: Mapping, variant: Mapping, level: float = 0.95) -> PairedDelta:
    """Mean of per-seed differences ``variant[s] - baseline[s]`` with a two-sided t confidence interval.

    ``baseline`` and ``variant`` map seed -> value; only seeds present in both (with finite values) pair
    up, so one missing or failed run drops its seed from both sides instead of biasing the mean.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    seeds = sorted(s for s in baseline if s in variant and _finite(baseline[s]) and _finite(variant[s]))
    diffs = [float(variant[s]) - float(baseline[s]) for s in seeds]
    n = len(diffs)
    if n == 0:
        return PairedDelta(0, [], [], None, None, None, level)
    mean = sum(diffs) / n
    if n == 1:
        return PairedDelta(1, seeds, diffs, mean, None, None, level)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return PairedDelta(n, seeds, diffs, mean, sd, (mean - half, mean + half), level)


@dataclass
class PairedRatio:
    """Geometric mean of ``variant / baseline`` over the seeds both have; ``ci`` None when n < 2."""

    n: int
    seeds: list
    ratios: list
    mean: float | None
    ci: tuple[float, float] | None
    level: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def paired_ratio(baseline: Mapping, variant: Mapping, level: float = 0.95) -> PairedRatio:
    """``exp`` of ``paired_delta`` on the logs: a ratio is symmetric in log space (2x and 0.5x are equally
    far from 1), and the interval stays positive. Seeds with a missing or non-positive value drop out."""
    logs = [{s: math.log(v) for s, v in side.items() if _finite(v) and v > 0} for side in (baseline, variant)]
    d = paired_delta(*logs, level=level)
    return PairedRatio(d.n, d.seeds, [math.exp(x) for x in d.diffs], None if d.mean is None else math.exp(d.mean),
                       None if d.ci is None else (math.exp(d.ci[0]), math.exp(d.ci[1])), level)


def verdict(ci: Sequence[float] | None, paper: float, null: float = 0.0) -> str:
    """What the 95% interval says about the paper's figure ``paper`` (a delta, or a ratio with ``null`` 1).

    * ``agrees``: the interval excludes ``null`` on the paper's side and contains the paper's value;
    * ``agrees in direction, smaller`` / ``... larger``: the effect is resolved on the paper's side but the
      interval excludes the paper's value;
    * ``disagrees``: the interval lies entirely on the other side of ``null`` (the opposite effect),
      or contains ``null`` while excluding the paper's value (no effect of the paper's size);
    * ``inconclusive``: the interval contains both ``null`` and the paper's value, or there is none.
    """
    if ci is None:
        return "inconclusive"
    lo, hi = ci
    side = 1.0 if paper > null else -1.0
    has_paper, has_null = lo <= paper <= hi, lo <= null <= hi
    if has_null:
        return "inconclusive" if has_paper else "disagrees"
    resolved_same_side = (lo - null) * side > 0
    if not resolved_same_side:
        return "disagrees"
    if has_paper:
        return "agrees"
    farther_end = lo if side < 0 else hi  # the interval's end farthest from null
    return "agrees in direction, smaller" if (paper - farther_end) * side > 0 else "agrees in direction, larger"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def epochs_to_threshold(points: Sequence[tuple[float, float]], threshold: float = 0.25,
                        start: tuple[float, float] | None = None) -> float | None:
    """When ``error`` first reaches ``threshold`` along ``points`` = [(x, error), ...] sorted by x.

    ``x`` is epochs (or seconds: pass (seconds, error) pairs). The answer is linearly interpolated
    between the last measurement above the threshold and the first one at or below it, so it does not
    snap to measurement times. ``start`` is an optional point before the first measurement (e.g.
    (0, chance error)) used when already the first measurement is at or below the threshold; without
    it that case returns the first measurement's x. Returns None if the threshold is never reached.
    """
    pts = list(points)
    if any(b[0] < a[0] for a, b in zip(pts, pts[1:])):
        raise ValueError("points must be sorted by x")
    prev = start
    for x, err in pts:
        if err is not None and math.isfinite(err) and err <= threshold:
            if prev is None or prev[1] <= threshold:
                return float(x)
            x0, e0 = prev
            return float(x0 + (e0 - threshold) / (e0 - err) * (x - x0))
        if err is not None and math.isfinite(err):
            prev = (x, err)
    return None


def whole_epoch_errors(curve: Sequence[dict]) -> list[tuple[float, float]]:
    """The running training error per whole epoch (cuda-convnet's number) from a run's windows
    ``{"epoch", "train_top1_err", "images"}``: each window counts in the epoch that holds its middle; a
    point sits at its epoch's middle."""
    sums: dict[int, list[float]] = {}
    for p in curve:
        acc = sums.setdefault(int(p["epoch"]), [0.0, 0])
        acc[0] += p["train_top1_err"] * p["images"]
        acc[1] += p["images"]
    return [(e + 0.5, wrong / n) for e, (wrong, n) in sorted(sums.items()) if n]


def mean_sd(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (sd None for fewer than two values)."""
    vals = [float(v) for v in values if _finite(v)]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
