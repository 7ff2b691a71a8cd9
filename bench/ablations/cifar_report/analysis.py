"""The study's analysis: runs grouped by regime and experiment, each activation's rate, the claim rows.

``analyse(loaded)`` (from ``records.load_study``) splits the runs by regime and, in each, groups them into
the three experiments (Figure 1's ReLU/tanh grids, the LRN and pooling arms, the ablation's lr trials);
``claims`` computes one row per claim - the paper's figure, the measured mean with its 95% interval
(``bench.ablations.stats``: paired by seed), the seeds, and the interval's verdict. Also the rules the
study itself uses while it runs (``fastest_lr``, ``trial_trains``).
"""
from __future__ import annotations

import math

from bench.ablations.cifar_report.records import REGIMES, RUN_NAME
from bench.ablations.stats import epochs_to_threshold, mean_sd, paired_delta, paired_ratio, verdict

# the claim rows, in order (each regime gets each row, measured or not)
CLAIM_KEYS = ("fig1-epochs", "fig1-whole", "fig1-seconds", "lrn", "pool")
CLAIM_TEXT = {
    "fig1-epochs": ("Figure 1: ReLU reaches 25% training error sooner than tanh", "epochs to 25% training error", "6x"),
    "fig1-whole": ("Figure 1: ReLU reaches 25% training error sooner than tanh",
                   "epochs to 25%, whole-epoch training error", "6x"),
    "fig1-seconds": ("Figure 1: ReLU reaches 25% training error sooner than tanh",
                     "training seconds to 25% training error", "not given"),
    "lrn": ("LRN lowers test error", "test top-1 error, with - without (pp)", "-2.0 pp"),
    "pool": ("Overlapping pooling (3/2 vs 2/2) lowers test error", "test top-1 error, with - without (pp)", "-0.4 pp"),
}
# claim -> (feature-on arm, feature-off arm, paper delta in pp of test error, what the paper says and where)
DELTA_CLAIMS = {
    "lrn": ("lrn", "base", -2.0, "13% -> 11% test error on CIFAR-10 with a four-layer CNN (sec. 3.3)"),
    "pool": ("base", "pool-2x2", -0.4, "-0.4% top-1 (-0.3% top-5) on ImageNet with AlexNet (sec. 3.4); "
                                       "the paper gives no CIFAR-10 figure"),
}


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
    return {"regimes": regimes, "lrn_regime": loaded.get("lrn_regime"), "lrn_terms": terms}


def analyse_regime(runs: dict, settings: dict, regime: str) -> dict:
    fig1: dict = {}
    arms: dict = {}
    trials: dict = {}
    for name, rec in runs.items():
        m = RUN_NAME.match(name)
        seed = int(m["seed"])
        if m["act"]:
            fig1.setdefault(m["act"], {}).setdefault(float(m["lr"]), {})[seed] = rec
        elif m["trial_arm"]:
            trials.setdefault(float(m["trial_lr"]), {})[m["trial_arm"]] = rec
        else:
            arms.setdefault(m["arm"], {})[seed] = rec
    for act, by_lr in fig1.items():
        seeds = {s for runs in by_lr.values() for s in runs}
        grid_seed = _first_seed(settings.get("fig1_seeds"), seeds)
        grid = {lr: runs[grid_seed] for lr, runs in by_lr.items() if grid_seed in runs}
        best = fastest_lr(grid) if grid else None
        fig1[act] = {"by_lr": by_lr, "grid_seed": grid_seed, "grid": grid, "best_lr": best,
                     "runs": by_lr.get(best, {})}
    analysis = {"regime": regime, "runs": runs, "fig1": fig1, "arms": arms, "trials": trials, "settings": settings}
    analysis["claims"] = claims(analysis)
    return analysis


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


def _run_terms(analysis: dict) -> dict | None:
    runs = {s: r for s, r in analysis["arms"].get("lrn", {}).items() if r.get("lrn_terms")}
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
    """The running training error per whole epoch (cuda-convnet's number), from the run's windows: each
    window counts in the epoch that holds its middle; a point sits at its epoch's middle."""
    sums: dict[int, list[float]] = {}
    for p in rec["curve"]:
        acc = sums.setdefault(int(p["epoch"]), [0.0, 0])
        acc[0] += p["train_top1_err"] * p["images"]
        acc[1] += p["images"]
    return [(e + 0.5, wrong / n) for e, (wrong, n) in sorted(sums.items()) if n]


def per_epoch_crossing(rec: dict) -> float | None:
    threshold = rec["spec"].get("threshold") or 0.25
    return epochs_to_threshold(epoch_errors(rec), threshold, start=(0.0, 1.0 - 1.0 / rec["data"]["num_classes"]))


def claims(analysis: dict) -> list[dict]:
    rows = []
    fig1 = analysis["fig1"]
    if "relu" in fig1 and "tanh" in fig1:
        for info in fig1.values():
            for rec in info["runs"].values():
                rec["epochs_to_threshold_per_epoch"] = per_epoch_crossing(rec)
        for row_key, metric, key, paper in (
                ("fig1-epochs", "epochs to 25% training error", "epochs_to_threshold", 6.0),
                ("fig1-whole", "epochs to 25%, whole-epoch training error", "epochs_to_threshold_per_epoch", 6.0),
                ("fig1-seconds", "training seconds to 25% training error", "seconds_to_threshold", None)):
            relu, tanh = fig1["relu"]["runs"], fig1["tanh"]["runs"]
            r = paired_ratio({s: v[key] for s, v in relu.items()}, {s: v[key] for s, v in tanh.items()})
            missing = {act: sorted(s for s, v in fig1[act]["runs"].items() if v[key] is None) for act in ("relu", "tanh")}
            rows.append({
                "key": row_key, "claim": "Figure 1: ReLU reaches 25% training error sooner than tanh", "metric": metric,
                "unit": "x", "paper": "6x sooner (in epochs)" if paper else "not given", "paper_value": paper,
                "null": 1.0, "measured": r.to_dict(), "seeds": _seed_count(relu, tanh, r.n),
                "verdict": verdict(r.ci, paper, 1.0) if paper else "-",
                "not_reached": {a: v for a, v in missing.items() if v},
                "recipe": (f"no regularisation; lr per activation, fastest of the grid: ReLU {fig1['relu']['best_lr']:g}, "
                           f"tanh {fig1['tanh']['best_lr']:g}; tanh/ReLU ratio, geometric mean over seeds"),
            })
    for claim, (on, off, paper, says) in DELTA_CLAIMS.items():
        if on not in analysis["arms"] or off not in analysis["arms"]:
            continue
        a_on, a_off = analysis["arms"][on], analysis["arms"][off]
        ok = lambda runs: {s: r["test_top1_err"] for s, r in runs.items() if not _failed(r)}  # noqa: E731
        d = paired_delta(ok(a_off), ok(a_on))
        ci_pp = None if d.ci is None else (100 * d.ci[0], 100 * d.ci[1])
        rows.append({
            "key": claim, "claim": "LRN lowers test error" if claim == "lrn" else "Overlapping pooling (3/2 vs 2/2) lowers test error",
            "metric": "test top-1 error, with - without (pp)", "unit": "pp", "paper": says, "paper_value": paper,
            "null": 0.0, "measured": {**d.to_dict(), "mean_pp": None if d.mean is None else 100 * d.mean, "ci_pp": ci_pp},
            "seeds": _seed_count(a_on, a_off, d.n), "verdict": verdict(ci_pp, paper, 0.0),
            "diverged": sorted(s for runs in (a_on, a_off) for s, r in runs.items() if r["diverged"]),
            "failed": {arm: sorted(s for s, r in runs.items() if _failed(r)) for arm, runs in ((on, a_on), (off, a_off))
                       if any(_failed(r) for r in runs.values())},
            "arm_means": {arm: mean_sd(r["test_top1_err"] for r in runs.values() if not _failed(r))
                          for arm, runs in ((on, a_on), (off, a_off))},
            "recipe": _ablation_recipe(a_on),
        })
    return rows


def _failed(rec: dict) -> bool:
    """A run that diverged or ended at chance: a result, reported, but no test error to pair."""
    return bool(rec["diverged"] or rec.get("at_chance") or rec["stop_reason"] == "at-chance")


def _regime_of(spec: dict) -> str:
    return "paper" if spec.get("input_scale", "unit") != "unit" else "unit"


def _seed_count(a: dict, b: dict, pairs: int) -> str:
    return f"{pairs} paired ({len(a)} + {len(b)} runs)"


def _ablation_recipe(runs: dict) -> str:
    spec = next(iter(runs.values()))["spec"]
    drops = spec["lr_drop_epochs"]
    sched = f"lr {spec['lr']:g}" + (f", /10 from epoch {drops[0] + 1}" if drops else "")
    return (f"{spec['max_epochs']} epochs, {sched}, SGD momentum {spec['momentum']:g}, weight decay "
            f"{spec['weight_decay']:g}, random flips, batch {spec['batch_size']}")


def _row(analysis: dict, regime: str, key: str) -> dict | None:
    """The claim row ``key`` of ``regime``; None when it was not measured."""
    return next((r for r in analysis["regimes"][regime]["claims"] if r["key"] == key), None)



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
    arms = {"base"} | ({"lrn"} if "lrn" in experiments else set()) | ({"pool-2x2"} if "pool" in experiments else set())
    if len(arms) > 1:
        total += len(arms) * n_seeds
    total += sum(1 for n in analysis["runs"] if "/lr-trial/" in n)  # as many trials as finished
    return total



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
