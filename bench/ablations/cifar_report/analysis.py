"""The study's analysis: runs grouped by regime and experiment, each arm's rate, the claim rows.

``analyse(loaded)`` (from ``records.load_study``) splits the runs by regime and, in each, groups them into
the experiments (Figure 1's ReLU/tanh grids; the per-arm protocol's learning-rate grids and claim runs for
LRN, pooling and the two towers; the earlier single-lr study's arms and lr trials); ``claims`` computes one
row per claim - the paper's figure, the measured mean with its 95% interval (``bench.ablations.stats``:
paired by seed), the seeds, and the interval's verdict - and ``sensitivity`` each claim's effect at every
rate of the grid. Two rules then qualify a verdict: one that flips inside the grid reads "depends on lr"
(``lr_dependence``), and a claim whose mechanism the recorded probe shows absent reads what it is
(``MECHANISM_CHECKS``: LRN whose term stays far below k acts as a constant factor, "not a test of
normalisation"). A row of the earlier single-lr study, whose arms all ran at one rate, gives no verdict
(``SHARED_RATE``): its interval's reading stays in its details. Also the rules the study itself uses while it runs (``fastest_lr``, ``trial_trains``,
``best_val_lr``).
"""
from __future__ import annotations

import math

from bench.ablations.cifar_report.records import REGIMES, RUN_NAME
from bench.ablations.stats import epochs_to_threshold, mean_sd, paired_delta, paired_ratio, whole_epoch_errors
from bench.report.claim_row import ClaimRow

# the claim rows, in order (each regime gets each row, measured or not); "-single-lr" rows are the earlier
# study's (one rate for every arm), kept as they were measured
# (training seconds to 25% are no claim row: they measure the machine's kernels for each activation and
# precision as much as the activation, see the report's section on them; the per-run tables keep them)
CLAIM_KEYS = ("fig1-epochs", "fig1-whole", "lrn", "pool", "towers", "lrn-single-lr", "pool-single-lr")
CLAIM_TEXT = {
    "fig1-epochs": ("Figure 1: ReLU reaches 25% training error sooner than tanh", "epochs to 25% training error", "6x"),
    "fig1-whole": ("Figure 1: ReLU reaches 25% training error sooner than tanh",
                   "epochs to 25%, whole-epoch training error", "6x"),
    "lrn": ("LRN lowers test error", "test top-1 error, with - without (pp)", "-2.0 pp"),
    "pool": ("Overlapping pooling (3/2 vs 2/2) lowers test error", "test top-1 error, with - without (pp)", "-0.4 pp"),
    "towers": ("Two towers beat one tower with half the kernels (sec. 3.2)",
               "test top-1 error, two towers - one half-width tower (pp)", "-1.7 pp"),
    "lrn-single-lr": ("LRN lowers test error (earlier single-lr study)", "test top-1 error, with - without (pp)",
                      "-2.0 pp"),
    "pool-single-lr": ("Overlapping pooling lowers test error (earlier single-lr study)",
                       "test top-1 error, with - without (pp)", "-0.4 pp"),
}
# claim -> (feature-on arm, feature-off arm, paper delta in pp of test error, what the paper says and where)
DELTA_CLAIMS = {
    "lrn": ("lrn", "base", -2.0, "13% -> 11% test error on CIFAR-10 with a four-layer CNN (sec. 3.3)"),
    "pool": ("base", "pool-2x2", -0.4, "-0.4% top-1 (-0.3% top-5) on ImageNet with AlexNet (sec. 3.4); "
                                       "the paper gives no CIFAR-10 figure"),
    "towers": ("two-tower", "one-tower-half", -1.7, "-1.7% top-1 (-1.2% top-5) on ImageNet with AlexNet (sec. 3.2), "
                                                    "and 'slightly less' training time; no CIFAR-10 figure"),
}
SINGLE_LR = "-single-lr"  # suffix of the earlier study's rows (records under ablation/)
# a per-rate delta from one seed counts as a direction only this far from zero (pp of error); with two or
# more seeds, only when its 95% interval excludes zero
SENSITIVITY_MARGIN_PP = 2.0
DEPENDS_ON_LR = "depends on lr"
# LRN is "absent" when alpha * sum a^2 stays below this fraction of k everywhere the runs measured it: the
# divisor (k + term)^beta is then within (1 + 0.05)^0.75 - 1 = 3.7% of k^beta, a constant factor
LRN_ABSENT_FRACTION = 0.05
NOT_NORMALISATION = "not a test of normalisation"
# the reading of an earlier single-lr row: one rate for every arm cannot separate the switch from the rate
SHARED_RATE = "no verdict: one shared rate"


def fastest_lr(grid: dict[float, dict]) -> float:
    """The rate whose run reaches the threshold soonest (in epochs); among rates that never do, the lowest
    final training error; a diverged run ranks last."""
    def key(lr):
        r = grid[lr]
        if r["diverged"]:
            return (math.inf, math.inf)
        ep = r["epochs_to_threshold"]
        return (ep if ep is not None else math.inf,
                r["final_train_err"] if r["final_train_err"] is not None else math.inf)
    return min(grid, key=key)


def best_val_lr(grid: dict[float, list[dict]]) -> float:
    """The per-arm rule: the rate whose trials (one per grid seed) end with the lowest mean validation error;
    a trial without one (diverged before any evaluation) ranks last; ties go to the smaller rate. Reads
    ``val_top1_err`` alone - never a test error."""
    def key(lr):
        errs = [r.get("val_top1_err") for r in grid[lr]]
        ok = [e for e in errs if e is not None and math.isfinite(e)]
        return (sum(ok) / len(ok) if ok and len(ok) == len(errs) else math.inf, lr)
    if not grid:
        raise ValueError("no learning-rate trial to choose from")
    return min(grid, key=key)


def analyse(loaded: dict) -> dict:
    """Split the runs by regime; in each, group them by experiment, pick each activation's rate, compute the
    claim rows (``analyse_regime``)."""
    by_regime: dict[str, dict] = {r: {} for r in REGIMES}
    for name, rec in loaded["runs"].items():
        by_regime[RUN_NAME.match(name)["regime"] or "unit"][name] = rec
    invocations = loaded["study"].get("invocations", [])
    regimes = {}
    for regime in REGIMES:
        mine = [i for i in invocations if i.get("settings", {}).get("regime", "unit") == regime]
        regimes[regime] = analyse_regime(by_regime[regime], _merged_settings(mine), regime)
    terms = {"unit": _unit_terms(loaded, regimes["unit"]), "paper": _run_terms(regimes["paper"])}
    tuned_terms = {g: _run_terms(regimes[g], "tuned") for g in REGIMES}
    for g in REGIMES:  # the mechanism rule, on the terms recorded by the runs of each row
        regimes[g]["claims"] = [_shared_rate_checked(_mechanism_checked(
            row, terms[g] if row.key.endswith(SINGLE_LR) else tuned_terms[g])) for row in regimes[g]["claims"]]
    return {"regimes": regimes, "lrn_regime": loaded.get("lrn_regime"), "lrn_terms": terms, "tuned_lrn_terms": tuned_terms}


def _mechanism_checked(row: ClaimRow, terms: dict | None) -> ClaimRow:
    """``row``, read "not a test of normalisation" when the runs' probe shows its mechanism absent."""
    check = MECHANISM_CHECKS.get(row.key.removesuffix(SINGLE_LR))
    absent = check(terms) if check and terms else None
    if not absent:
        return row
    return row.overridden(NOT_NORMALISATION, mechanism_absent=absent, verdict_as_measured=row.verdict)


def _shared_rate_checked(row: ClaimRow) -> ClaimRow:
    """``row``, read "no verdict: one shared rate" when it is the earlier single-lr study's and no rule that
    holds at any rate (the mechanism's absence) has read it already."""
    if not row.key.endswith(SINGLE_LR) or row.verdict_override is not None or row.mean is None:
        return row
    return row.overridden(SHARED_RATE, verdict_as_measured=row.verdict)


def lrn_absent(terms: dict) -> str | None:
    """Why LRN acted as a constant factor in these runs (None if it normalised somewhere): the largest
    ``alpha * sum a^2`` recorded at any layer, point and seed stays below ``LRN_ABSENT_FRACTION`` of k."""
    points = [p for runs in (terms.get("all") or {terms["seed"]: terms["terms"]}).values() for p in runs]
    layers = [layer for p in points for layer in p["layers"]]
    if not layers:
        return None
    top = max(layer["max"] for layer in layers)
    k, beta = layers[0]["k"], layers[0]["beta"]
    if top > LRN_ABSENT_FRACTION * k:
        return None
    return (f"alpha * sum a^2 is at most {top:.2g} against k = {k:g} at every LRN layer and recorded point, so LRN "
            f"multiplied every activation by {k ** -beta:.2f} to within {100 * ((1 + top / k) ** beta - 1):.1f}%: "
            "a constant factor, not a normalisation")


# claim -> the check that the recorded probe shows the claim's mechanism at work (a reason when absent)
MECHANISM_CHECKS = {"lrn": lrn_absent}


def analyse_regime(runs: dict, settings: dict, regime: str) -> dict:
    fig1: dict = {}
    arms: dict = {}
    trials: dict = {}
    grids: dict = {}  # per-arm protocol: arm -> lr -> seed -> record
    tuned: dict = {}  # per-arm protocol: arm -> seed -> record
    for name, rec in runs.items():
        m = RUN_NAME.match(name)
        seed = int(m["seed"])
        if m["act"]:
            fig1.setdefault(m["act"], {}).setdefault(float(m["lr"]), {})[seed] = rec
        elif m["trial_arm"]:
            trials.setdefault(float(m["trial_lr"]), {})[m["trial_arm"]] = rec
        elif m["grid_arm"]:
            grids.setdefault(m["grid_arm"], {}).setdefault(float(m["grid_lr"]), {})[seed] = rec
        elif m["tuned_arm"]:
            tuned.setdefault(m["tuned_arm"], {})[seed] = rec
        else:
            arms.setdefault(m["arm"], {})[seed] = rec
    for act, by_lr in fig1.items():
        seeds = {s for runs in by_lr.values() for s in runs}
        grid_seed = _first_seed(settings.get("fig1_seeds"), seeds)
        grid = {lr: runs[grid_seed] for lr, runs in by_lr.items() if grid_seed in runs}
        best = fastest_lr(grid) if grid else None
        fig1[act] = {"by_lr": by_lr, "grid_seed": grid_seed, "grid": grid, "best_lr": best,
                     "runs": by_lr.get(best, {})}
    chosen = {arm: best_val_lr({lr: list(by_seed.values()) for lr, by_seed in by_lr.items()})
              for arm, by_lr in grids.items() if by_lr}
    analysis = {"regime": regime, "runs": runs, "fig1": fig1, "arms": arms, "trials": trials, "settings": settings,
                "grids": grids, "tuned": tuned, "chosen_lr": chosen}
    analysis["sensitivity"] = sensitivity(analysis)
    analysis["claims"] = claims(analysis)
    return analysis


def _direction(delta: dict, margin: float) -> int:
    """+1 / -1 when a per-rate effect is resolved (its 95% interval excludes ``null``; from one seed, it is
    at least ``margin`` away), else 0. ``delta``: mean, ci, n, null."""
    mean, ci, null = delta["mean"], delta["ci"], delta["null"]
    if mean is None:
        return 0
    if ci is not None:
        return 1 if ci[0] > null else -1 if ci[1] < null else 0
    return 1 if mean - null >= margin else -1 if null - mean >= margin else 0


def sensitivity(analysis: dict) -> dict:
    """Each claim's effect at every rate of the grid, both arms at that same rate: the delta of validation
    error after the trial budget (pp, paired by seed) for LRN, pooling and towers; the tanh/ReLU ratio of
    epochs to 25% for Figure 1 (its grid seed). Per claim: rows (lr, mean, ci, pairs, direction) and whether
    the direction flips inside the grid."""
    out = {}
    grids = analysis["grids"]
    for claim, (on, off, _, _) in DELTA_CLAIMS.items():
        if on not in grids or off not in grids:
            continue
        rows = []
        for lr in sorted(set(grids[on]) & set(grids[off])):
            val = lambda runs: {s: r.get("val_top1_err") for s, r in runs.items()}  # noqa: E731
            d = paired_delta(val(grids[off][lr]), val(grids[on][lr]))
            row = {"lr": lr, "mean": None if d.mean is None else 100 * d.mean, "n": d.n, "null": 0.0,
                   "ci": None if d.ci is None else (100 * d.ci[0], 100 * d.ci[1]),
                   "failed": sorted(a for a, runs in ((on, grids[on][lr]), (off, grids[off][lr]))
                                    if any(_failed(r) for r in runs.values()))}
            row["direction"] = _direction(row, SENSITIVITY_MARGIN_PP)
            rows.append(row)
        out[claim] = {"rows": rows, "flips": lr_dependence(rows), "arms": (on, off),
                      "chosen": {a: analysis["chosen_lr"].get(a) for a in (on, off)}}
    fig1 = analysis["fig1"]
    if "relu" in fig1 and "tanh" in fig1:
        rows = []
        for lr in sorted(set(fig1["relu"]["grid"]) & set(fig1["tanh"]["grid"])):
            relu, tanh = fig1["relu"]["grid"][lr], fig1["tanh"]["grid"][lr]
            e_r, e_t = relu["epochs_to_threshold"], tanh["epochs_to_threshold"]
            if e_r is not None and e_t is not None:
                ratio, bound = e_t / e_r, None
            elif e_r is not None:  # tanh never got there in the epochs it ran: the ratio is at least this
                ratio, bound = tanh["epochs_run"] / e_r, ">="
            elif e_t is not None:
                ratio, bound = e_t / relu["epochs_run"], "<="
            else:
                ratio, bound = None, None
            row = {"lr": lr, "mean": ratio, "bound": bound, "ci": None, "n": 1, "null": 1.0,
                   "relu": e_r, "tanh": e_t, "relu_run": relu["epochs_run"], "tanh_run": tanh["epochs_run"]}
            d = 0 if ratio is None else _direction({**row, "mean": math.log(ratio), "null": 0.0}, math.log(1.25))
            row["direction"] = d if bound is None or (bound == ">=") == (d > 0) else 0  # a bound resolves one way only
            rows.append(row)
        out["fig1-epochs"] = {"rows": rows, "flips": lr_dependence(rows), "arms": ("tanh", "relu"),
                              "chosen": {a: fig1[a]["best_lr"] for a in ("tanh", "relu")}}
    return out


def lr_dependence(rows: list[dict]) -> bool:
    """True when the effect's resolved direction flips inside the grid (one rate shows it one way, another
    the other way)."""
    directions = {r["direction"] for r in rows}
    return 1 in directions and -1 in directions


def _unit_terms(loaded: dict, unit: dict) -> dict | None:
    """The unit regime's LRN terms: from its retrained LRN run (``probes/lrn_terms_unit.json``), with the
    committed record of the same seed to compare its test error with."""
    probe = loaded.get("unit_lrn_probe")
    if not probe or not probe.get("lrn_terms"):
        return None
    committed = unit["arms"].get("lrn", {}).get(probe["spec"]["seed"])
    return {"seed": probe["spec"]["seed"], "terms": probe["lrn_terms"], "images": probe.get("lrn_probe_images"),
            "impl": probe.get("lrn_impl"), "test_err": probe["test_top1_err"],
            "committed_test_err": committed["test_top1_err"] if committed else None, "source": "retrained"}


def _run_terms(analysis: dict, source: str = "arms") -> dict | None:
    runs = {s: r for s, r in analysis[source].get("lrn", {}).items() if r.get("lrn_terms")}
    if not runs:
        return None
    seed = min(runs)
    r = runs[seed]
    return {"seed": seed, "terms": r["lrn_terms"], "images": r.get("lrn_probe_images"), "impl": r.get("lrn_impl"),
            "test_err": r["test_top1_err"], "committed_test_err": None, "source": "run",
            "seeds": sorted(runs), "all": {s: v["lrn_terms"] for s, v in runs.items()}}


def _merged_settings(invocations: list[dict]) -> dict:
    """The settings of the invocations, later ones winning, with the union of their experiments and of
    their seeds (several processes may each run part of one study)."""
    merged: dict = {}
    experiments: list[str] = []
    seeds: dict[str, set] = {"seeds": set(), "fig1_seeds": set()}
    for inv in invocations:
        s = inv.get("settings", {})
        merged.update(s)
        experiments += [e.strip() for e in str(s.get("experiments", "")).split(",") if e.strip()]
        for key in seeds:
            seeds[key] |= set(_seed_list(s.get(key)))
    if experiments:
        merged["experiments"] = ",".join(dict.fromkeys(experiments))
    for key, values in seeds.items():
        if values:
            merged[key] = ",".join(str(v) for v in sorted(values))
    return merged


def _seed_list(spec) -> list[int]:
    """'3' -> [0, 1, 2]; '0,4' or '4,' -> those (as the study's --seeds); anything else -> []."""
    try:
        text = str(spec)
        return [int(v) for v in text.split(",") if v.strip()] if "," in text else list(range(int(text)))
    except ValueError:
        return []


def _first_seed(spec, seeds: set) -> int:
    listed = _seed_list(spec)
    return listed[0] if listed and listed[0] in seeds else min(seeds)


def epoch_errors(rec: dict) -> list[tuple[float, float]]:
    """The running training error per whole epoch of a run record (``stats.whole_epoch_errors``)."""
    return whole_epoch_errors(rec["curve"])


def per_epoch_crossing(rec: dict) -> float | None:
    threshold = rec["spec"].get("threshold") or 0.25
    return epochs_to_threshold(epoch_errors(rec), threshold, start=(0.0, 1.0 - 1.0 / rec["data"]["num_classes"]))


def claims(analysis: dict) -> list[ClaimRow]:
    rows = []
    fig1 = analysis["fig1"]
    if "relu" in fig1 and "tanh" in fig1:
        for info in fig1.values():
            for rec in info["runs"].values():
                rec["epochs_to_threshold_per_epoch"] = per_epoch_crossing(rec)
        for row_key, metric, key, paper in (
                ("fig1-epochs", "epochs to 25% training error", "epochs_to_threshold", 6.0),
                ("fig1-whole", "epochs to 25%, whole-epoch training error", "epochs_to_threshold_per_epoch", 6.0)):
            relu, tanh = fig1["relu"]["runs"], fig1["tanh"]["runs"]
            r = paired_ratio({s: v[key] for s, v in relu.items()}, {s: v[key] for s, v in tanh.items()})
            missing = {act: sorted(s for s, v in fig1[act]["runs"].items() if v[key] is None) for act in ("relu", "tanh")}
            row = ClaimRow(
                key=row_key, claim="Figure 1: ReLU reaches 25% training error sooner than tanh", metric=metric,
                unit="x", paper="6x sooner (in epochs)", paper_value=paper, null=1.0, mean=r.mean, ci=r.ci, n=r.n,
                seeds=tuple(r.seeds),
                recipe=(f"no regularisation; lr per activation, fastest of the grid: ReLU {fig1['relu']['best_lr']:g}, "
                        f"tanh {fig1['tanh']['best_lr']:g}; tanh/ReLU ratio, geometric mean over seeds"),
                details={"seed_count": _seed_count(relu, tanh, r.n),
                         "not_reached": {a: v for a, v in missing.items() if v}})
            rows.append(_qualified(row, analysis["sensitivity"].get("fig1-epochs")))
    sources = [(claim, "tuned", claim) for claim in DELTA_CLAIMS]
    sources += [(claim + SINGLE_LR, "arms", claim) for claim in ("lrn", "pool")]
    for key, source, claim in sources:
        on, off, paper, says = DELTA_CLAIMS[claim]
        if on not in analysis[source] or off not in analysis[source]:
            continue
        a_on, a_off = analysis[source][on], analysis[source][off]
        ok = lambda runs: {s: r["test_top1_err"] for s, r in runs.items() if not _failed(r)}  # noqa: E731
        d = paired_delta(ok(a_off), ok(a_on))
        row = ClaimRow(
            key=key, claim=CLAIM_TEXT[key][0], metric=CLAIM_TEXT[key][1], unit="pp", paper=says, paper_value=paper,
            null=0.0, mean=None if d.mean is None else 100 * d.mean,
            ci=None if d.ci is None else (100 * d.ci[0], 100 * d.ci[1]), n=d.n, seeds=tuple(d.seeds),
            recipe=_ablation_recipe(a_on) if source == "arms" else _tuned_recipe(a_on, a_off),
            details={
                "seed_count": _seed_count(a_on, a_off, d.n), "protocol": source,
                "diverged": sorted(s for runs in (a_on, a_off) for s, r in runs.items() if r["diverged"]),
                "failed": {arm: sorted(s for s, r in runs.items() if _failed(r))
                           for arm, runs in ((on, a_on), (off, a_off)) if any(_failed(r) for r in runs.values())},
                "arm_means": {arm: mean_sd(r["test_top1_err"] for r in runs.values() if not _failed(r))
                              for arm, runs in ((on, a_on), (off, a_off))},
                "epoch_seconds": {arm: mean_sd(r["train_seconds"] / r["epochs_run"] for r in runs.values()
                                               if r["epochs_run"])
                                  for arm, runs in ((on, a_on), (off, a_off))}})
        rows.append(_qualified(row, analysis["sensitivity"].get(claim) if source == "tuned" else None))
    return rows


def _qualified(row: ClaimRow, sens: dict | None) -> ClaimRow:
    """``row``, its verdict read "depends on lr (...)" when the effect flips inside the grid."""
    if not (sens and sens["flips"]):
        return row
    return row.overridden(f"{DEPENDS_ON_LR} (at each arm's own rate: {row.verdict})")


def _tuned_recipe(a_on: dict, a_off: dict) -> str:
    """The per-arm protocol's recipe: the schedule, and each arm's own rate."""
    on, off = (next(iter(runs.values()))["spec"] for runs in (a_on, a_off))
    drops = on["lr_drop_epochs"]
    sched = ("constant rate" if not drops else "rate / 10 from epoch " + " and ".join(str(e + 1) for e in drops))
    return (f"{on['max_epochs']} epochs, {sched}, SGD momentum {on['momentum']:g}, weight decay {on['weight_decay']:g}, "
            f"random flips, batch {on['batch_size']}, "
            f"{'bfloat16 autocast' if on.get('amp') == 'bf16' else 'float32'}, {on.get('val_images', 0):,} training "
            "images held out for "
            f"validation; each arm's own rate (lowest validation error of the grid): lr {on['lr']:g} with, "
            f"{off['lr']:g} without")


def _failed(rec: dict) -> bool:
    """A run that diverged or ended at chance: a result, reported, but no test error to pair."""
    return bool(rec["diverged"] or rec.get("at_chance") or rec["stop_reason"] == "at-chance")


def _seed_count(a: dict, b: dict, pairs: int) -> str:
    return f"{pairs} paired ({len(a)} + {len(b)} runs)"


def _ablation_recipe(runs: dict) -> str:
    spec = next(iter(runs.values()))["spec"]
    drops = spec["lr_drop_epochs"]
    sched = f"lr {spec['lr']:g}" + (f", /10 from epoch {drops[0] + 1}" if drops else "")
    return (f"{spec['max_epochs']} epochs, {sched}, SGD momentum {spec['momentum']:g}, weight decay "
            f"{spec['weight_decay']:g}, random flips, batch {spec['batch_size']}")


def _row(analysis: dict, regime: str, key: str) -> ClaimRow | None:
    """The claim row ``key`` of ``regime``; None when it was not measured."""
    return next((r for r in analysis["regimes"][regime]["claims"] if r.key == key), None)



def _expected_runs(analysis: dict) -> int | None:
    """About how many runs one regime's invocations asked for (lr trials not counted)."""
    s = analysis["settings"]
    if not s:
        return None
    n_fig1, n_seeds = len(_seed_list(s.get("fig1_seeds"))), len(_seed_list(s.get("seeds")))
    experiments = [e.strip() for e in str(s.get("experiments", "")).split(",")]
    if not n_fig1 and not n_seeds:
        return None
    total = 0
    lrs = s.get("lrs" if analysis["regime"] == "unit" else "paper_lrs") or []
    if "fig1" in experiments:
        for act in ("relu", "tanh"):
            grid = len(analysis["fig1"].get(act, {}).get("grid", {})) or len(lrs) or 4
            total += grid + n_fig1 - 1
    single = {n for n in analysis["runs"] if RUN_NAME.match(n)["arm"] or RUN_NAME.match(n)["trial_arm"]}
    if s.get("protocol", "single-lr") == "single-lr":
        arms = {"base"} | ({"lrn"} if "lrn" in experiments else set()) | ({"pool-2x2"} if "pool" in experiments else set())
        if len(arms) > 1:
            total += len(arms) * n_seeds
        return total + sum(1 for n in single if RUN_NAME.match(n)["trial_arm"])  # as many trials as finished
    total += len(single)  # the earlier single-lr study's runs, as many as finished
    arms = {a for e, pair in (("lrn", ("base", "lrn")), ("pool", ("base", "pool-2x2")),
                              ("towers", ("two-tower", "one-tower-half"))) if e in experiments for a in pair}
    grid = len(s.get("unit_lr_grid" if analysis["regime"] == "unit" else "paper_lr_grid") or [])
    return total + len(arms) * (n_seeds + grid * max(len(_seed_list(s.get("grid_seeds"))), 1))



TRIAL_MARGIN = 0.10  # a learning-rate trial "trains" when its running error ends this far below chance


def trial_trains(rec: dict) -> bool:
    """A learning-rate trial trains: finite loss, and its last running error well below chance."""
    err, loss = rec["final_train_err"], rec["final_train_loss"]
    return (not rec["diverged"] and err is not None and loss is not None and math.isfinite(loss)
            and err <= 1.0 - 1.0 / rec["data"]["num_classes"] - TRIAL_MARGIN)



def boundary_drop(fig1: dict) -> float | None:
    """Mean of (last window of epoch e) - (first window of epoch e+1) over the Figure-1 runs, e >= 1."""
    drops = []
    for info in fig1.values():
        for runs in info["by_lr"].values():
            for rec in runs.values():
                by_epoch: dict[int, list] = {}
                for p in rec["curve"]:
                    by_epoch.setdefault(int(p["epoch"]), []).append(p["train_top1_err"])
                drops += [by_epoch[e][-1] - by_epoch[e + 1][0] for e in by_epoch if e >= 1 and e + 1 in by_epoch]
    return sum(drops) / len(drops) if drops else None
