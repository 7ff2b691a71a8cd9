"""Report of the CPU-scale CIFAR-10 study (``bench.ablations.cifar``), rendered from its per-run files alone.

``load_study(out)`` reads ``<out>/runs/**/*.json`` (one record per finished run) and ``<out>/study.json``
(the invocations: command, machine, versions, dates, wall time); ``analyse`` groups the runs into the
three experiments and computes one claim row each - the paper's figure, the measured mean with its 95%
interval (``bench.ablations.stats``: paired by seed), the seeds, and the interval's verdict;
``write_report(out)`` writes ``<out>/README.md`` with ``figure1.png``, ``deltas.png`` and
``curves.png``. A study still running renders too: what is missing is counted, never filled in.

``python -m bench.ablations.cifar_report [OUT] [--update-readme README.md]`` re-renders without training
anything; ``--update-readme`` also puts the claim rows, with their caveats, between the README's
``<!-- cifar10-cpu:begin -->`` and ``<!-- cifar10-cpu:end -->`` lines.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from alexnet.atomic_io import write_text_atomic
from alexnet.errors import UsageError, run_cli
from bench.ablations.stats import epochs_to_threshold, mean_sd, paired_delta, paired_ratio, verdict

DEFAULT_OUT = "reports/cifar10-cpu"
RUN_NAME = re.compile(r"^(?:(?P<regime>paper)/)?(?:fig1/(?P<act>relu|tanh)-lr(?P<lr>[0-9.e+-]+)|ablation/(?P<arm>[a-z0-9-]+)"
                      r"|lr-trial/(?P<trial_arm>[a-z0-9-]+?)-lr(?P<trial_lr>[0-9.e+-]+))/seed(?P<seed>\d+)$")
# the two regimes, in the order of the report's columns
REGIMES = ("unit", "paper")
REGIME_LABELS = {"unit": "unit-variance inputs, PyTorch init", "paper": "paper regime: 0-255 px, cuda-convnet init"}
REGIME_TEXT = {"unit": "inputs mean-subtracted and divided by the per-channel std, PyTorch's default initialisation",
               "paper": "cuda-convnet's regime: mean-subtracted 0-255 pixels (not divided by the std), Gaussian "
                        "weights with std 1e-4 in conv1 and 1e-2 in the other layers, biases 0"}
FIG_SUFFIX = {"unit": "", "paper": "-paper"}
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
UNIT_LRN_PROBE = "lrn_terms_unit"
ARM_LABELS = {"base": "baseline: ReLU, 3/2 pooling, no LRN", "lrn": "+ LRN (k=2, n=5, alpha=1e-4, beta=0.75)",
              "pool-2x2": "2/2 pooling instead of 3/2"}
# claim -> (feature-on arm, feature-off arm, paper delta in pp of test error, what the paper says and where)
DELTA_CLAIMS = {
    "lrn": ("lrn", "base", -2.0, "13% -> 11% test error on CIFAR-10 with a four-layer CNN (sec. 3.3)"),
    "pool": ("base", "pool-2x2", -0.4, "-0.4% top-1 (-0.3% top-5) on ImageNet with AlexNet (sec. 3.4); "
                                       "the paper gives no CIFAR-10 figure"),
}


class ReportError(UsageError, ValueError):
    """The study folder cannot be read (missing, or a run file that is not valid JSON)."""


def load_study(out: str | Path) -> dict:
    out = Path(out)
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir} does not exist: no run of the study has finished there "
                          "(run python -m bench.ablations.cifar first)")
    runs = {}
    for path in sorted(runs_dir.rglob("*.json")):
        name = path.relative_to(runs_dir).with_suffix("").as_posix()
        if not RUN_NAME.match(name):
            raise ReportError(f"{path} is not a run record of this study (unexpected name {name!r})")
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path} is not valid JSON ({exc}); delete it and rerun the study to redo that run") from None
        if not isinstance(rec, dict) or "spec" not in rec or "curve" not in rec:
            raise ReportError(f"{path} is not a run record (no spec or curve); delete it and rerun the study")
        runs[name] = rec
    study_path, probe_path = out / "study.json", out / "probes" / "lrn_regime.json"
    terms_path = out / "probes" / f"{UNIT_LRN_PROBE}.json"
    try:
        study = json.loads(study_path.read_text()) if study_path.exists() else {}
        probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
        terms = json.loads(terms_path.read_text()) if terms_path.exists() else None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{study_path}, {probe_path} or {terms_path} is not valid JSON ({exc})") from None
    return {"runs": runs, "study": study, "lrn_regime": probe, "unit_lrn_probe": terms}


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


# ----------------------------------------------------------------------------------------------------
# rendering


def fmt_measured(row: dict) -> str:
    m = row["measured"]
    if m["mean"] is None:
        return "no finished pair yet"
    if row["unit"] == "x":
        ci = "CI n/a (1 seed)" if m["ci"] is None else f"95% CI [{m['ci'][0]:.2f}x, {m['ci'][1]:.2f}x]"
        return f"**{m['mean']:.2f}x**, {ci}"
    if m["ci_pp"] is None:
        return f"**{m['mean_pp']:+.2f} pp**, CI n/a (1 pair)"
    half = (m["ci_pp"][1] - m["ci_pp"][0]) / 2
    return f"**{m['mean_pp']:+.2f} +/- {half:.2f} pp** (95% CI [{m['ci_pp'][0]:+.2f}, {m['ci_pp'][1]:+.2f}])"


def fmt_paper(row: dict) -> str:
    if row["paper_value"] is None:
        return row["paper"]
    return f"{row['paper_value']:g}x" if row["unit"] == "x" else f"{row['paper_value']:+.1f} pp"


def _row(analysis: dict, regime: str, key: str) -> dict | None:
    return next((r for r in analysis["regimes"][regime]["claims"] if r["key"] == key), None)


def fmt_cell(row: dict | None) -> str:
    """A regime's measurement of one claim: mean, interval, seeds - or 'not measured yet'."""
    if row is None:
        return "not measured yet"
    text = f"{fmt_measured(row)}; {row['seeds']}"
    failed = row.get("failed") or {}
    if failed:
        text += "; diverged or at chance, left out: " + ", ".join(
            f"{ARM_LABELS.get(a, a).split(':')[0]} seed(s) {', '.join(map(str, v))}" for a, v in failed.items())
    if row.get("not_reached"):
        text += "; never reached 25%, left out: " + ", ".join(
            f"{a} seed(s) {', '.join(map(str, v))}" for a, v in row["not_reached"].items())
    return text


def headline_rows(analysis: dict) -> list[str]:
    """The claim rows, both regimes side by side, as Markdown table lines (the README's first screen)."""
    lines = ["| claim | paper | " + " | ".join(f"{REGIME_LABELS[g]}: measured mean, 95% CI | verdict" for g in REGIMES)
             + " |", "|---|---|" + "---|---|" * len(REGIMES)]
    for key in CLAIM_KEYS:
        claim, metric, paper = CLAIM_TEXT[key]
        cells = []
        for g in REGIMES:
            r = _row(analysis, g, key)
            cells += [fmt_cell(r), r["verdict"] if r else "-"]
        lines.append(f"| {claim} ({metric}) | {paper} | " + " | ".join(cells) + " |")
    return lines


def _pct(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}%"


def _num(v, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def _reached(r: dict, key: str = "epochs_to_threshold", spec: str = ".2f") -> str:
    if r[key] is not None:
        return format(r[key], spec)
    if r["stop_reason"] == "slower-than-best":
        return f"stopped at epoch {r['epochs_run']}: slower than the best rate"
    if r["diverged"]:
        return "diverged"
    return f"not reached in {r['epochs_run']} epochs"


def render_markdown(loaded: dict, analysis: dict, figures: dict[str, str]) -> str:
    study, runs = loaded["study"], loaded["runs"]
    L = ["# The paper's CIFAR-10 experiments on a CPU: ReLU vs tanh, LRN, overlapping pooling, in two regimes", "",
         "Krizhevsky et al. (2012) make two of their claims on CIFAR-10 with a small four-layer CNN (Figure 1, "
         "section 3.3), and one on ImageNet (overlapping pooling, section 3.4). This report measures all three "
         "on that CNN (`alexnet/cifar_cnn.py`: conv 32@5x5 -> pool -> conv 32@5x5 -> pool -> conv 64@5x5 -> "
         f"pool -> fc 10) with {_data_text(runs)}, on a CPU, at a budget of minutes per run, in two regimes "
         "that differ in two switches of a run's settings, the net the same:", ""]
    for g in REGIMES:
        L.append(f"- **{REGIME_LABELS[g]}**: {REGIME_TEXT[g]}"
                 + (" (the first study)." if g == "unit" else
                    " - the paper's own setting, from its code (cuda-convnet's `layers-18pct`; records in `runs/paper/`)."))
    L += ["", "Everything below is computed from the per-run records in `runs/` (and `probes/`).", ""]
    L += _provenance(study, runs, analysis)
    for g in REGIMES:
        expected = _expected_runs(analysis["regimes"][g])
        done = len(analysis["regimes"][g]["runs"])
        if expected is not None and done < expected:
            L += [f"**{REGIME_LABELS[g]}: partial, {done} of about {expected} runs have finished.** Its rows use "
                  "the finished runs only.", ""]
        elif not done:
            L += [f"**{REGIME_LABELS[g]}: not measured yet** (no finished run).", ""]
    L += ["## Claims", "",
          "Verdict, from the 95% interval alone: *agrees* (the effect is resolved and the paper's figure is inside "
          "the interval), *agrees in direction, smaller/larger* (resolved, but the paper's figure is outside), "
          "*disagrees* (the interval excludes the paper's figure and either includes no effect or shows the "
          "opposite one), *inconclusive* (both no effect and the paper's figure are inside).", "",
          *headline_rows(analysis), ""]
    for g in REGIMES:
        recipes = list(dict.fromkeys(f"{r['claim'].split(':')[0]}: {r['recipe']}"
                                     for r in analysis["regimes"][g]["claims"]))
        if recipes:
            L.append(f"Recipes, {REGIME_LABELS[g]}: " + "; ".join(recipes) + ".")
            L.append("")
    if figures.get("deltas"):
        L += [f"![measured effects against the paper's]({figures['deltas']})", ""]
    L += _discussion(analysis)
    L += _lrn_terms_section(analysis)
    for g in REGIMES:
        L += _fig1_section(analysis["regimes"][g], figures)
    for g in REGIMES:
        L += _trials_section(analysis["regimes"][g])
        L += _ablation_section(analysis["regimes"][g], figures)
    return "\n".join(L) + "\n"


def _data_text(runs: dict) -> str:
    kinds = {json.dumps({k: v for k, v in r.get("data", {}).items() if k not in ("prepare_seconds", "pixel_std")},
                        sort_keys=True) for r in runs.values()}
    if len(kinds) != 1:
        return "data that differ between runs (see each record's 'data')"
    d = next(iter(runs.values()))["data"]
    return (f"`{Path(str(d.get('data'))).name}` ({d.get('train_images'):,} training and {d.get('test_images'):,} test "
            f"images, {d.get('num_classes')} classes, 32 px)")


def _machines(inv: list) -> str:
    """Each CPU the invocations ran on, with how many ran there (a study may move between machines)."""
    counts: dict[str, int] = {}
    for i in inv:
        m = i.get("machine", {})
        key = f"{m.get('cpu_model')}, {m.get('cpu_usable_cores')} cores"
        counts[key] = counts.get(key, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{k} ({n} invocation{'s' if n > 1 else ''})" for k, n in counts.items())


def _provenance(study: dict, runs: dict, analysis: dict | None = None) -> list[str]:
    inv = study.get("invocations", [])
    if not inv:
        return ["Provenance: no `study.json` (no invocation recorded).", ""]
    m = inv[-1].get("machine", {})
    commands = list(dict.fromkeys(i["command"] for i in inv))
    timed = [i["seconds"] for i in inv if isinstance(i.get("seconds"), (int, float))]
    wall = sum(timed)
    untimed = len(inv) - len(timed)
    train = sum(r.get("wall_seconds", 0) for r in runs.values())
    ips = [r["images_per_s"] for r in runs.values() if r.get("images_per_s")]
    return [
        "| | |", "|---|---|",
        f"| command | {'; '.join(f'`{c}`' for c in commands)} |",
        f"| machine | {_machines(inv)}; {m.get('torch_threads')} torch threads, no GPU ({m.get('platform')}) |",
        f"| software | Python {m.get('python')}, torch {m.get('torch')} |",
        f"| code | {', '.join(dict.fromkeys(str(i.get('code')) for i in inv))} |",
        f"| dates (UTC) | {inv[0].get('started')} to "
        f"{max((i['finished'] for i in inv if i.get('finished')), default='(running)')} ({len(inv)} invocation(s)"
        + (", one still running" if any(not i.get("finished") for i in inv) else "") + ") |",
        f"| wall time | {wall / 60:.0f} min over the invocations"
        + (f" ({untimed} without a recorded duration)" if untimed else "")
        + f"; {train / 60:.0f} min of training and evaluation in the {len(runs)} finished runs (processes ran "
        "side by side) |",
        *([f"| training time per regime | " + "; ".join(
            f"{REGIME_LABELS[g]}: {sum(r.get('wall_seconds', 0) for r in analysis['regimes'][g]['runs'].values()) / 60:.0f} "
            f"min in {len(analysis['regimes'][g]['runs'])} runs" for g in REGIMES) + " |"] if analysis else []),
        f"| throughput | {min(ips):,.0f}-{max(ips):,.0f} training images/s per run (median "
        f"{sorted(ips)[len(ips) // 2]:,.0f}), CPU |" if ips else "| throughput | n/a |",
        "",
        "Seconds are wall-clock on a shared 2-core machine and vary with its load; epochs are the primary measure.",
        ""]


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


def _discussion(analysis: dict) -> list[str]:
    """Plain statements of what the rows show, regime by regime; contradictions said as such."""
    L = ["## What this shows", ""]
    names = {"fig1-epochs": "Figure 1", "lrn": "LRN", "pool": "Overlapping pooling"}
    for key, name in names.items():
        rows = {g: _row(analysis, g, key) for g in REGIMES}
        parts = []
        for g, r in rows.items():
            if r is None or r["measured"]["mean"] is None:
                parts.append(f"{REGIME_LABELS[g]}: not measured yet")
                continue
            if r["unit"] == "x":
                whole = _row(analysis, g, "fig1-whole")
                parts.append(f"{REGIME_LABELS[g]}: tanh needed {r['measured']['mean']:.2f}x ReLU's epochs to 25% "
                             f"({r['verdict']}" + (f"; {whole['measured']['mean']:.2f}x by the whole-epoch error, "
                                                   f"{whole['verdict']}" if whole and whole['measured']['mean'] else "")
                             + ")")
            else:
                parts.append(f"{REGIME_LABELS[g]}: {r['measured']['mean_pp']:+.2f} pp ({r['verdict']})")
            if r.get("failed"):
                parts[-1] += ", with runs that diverged or stayed at chance left out of the mean (see its table)"
        text = f"- **{name}** (paper: {CLAIM_TEXT[key][2]}): " + "; ".join(parts) + "."
        u, q = rows["unit"], rows["paper"]
        if u and q and u["measured"]["mean"] is not None and q["measured"]["mean"] is not None:
            if u["verdict"] == q["verdict"]:
                text += f" The verdict is the same in the paper's own regime: it does not come from the regime."
            else:
                text += (f" The verdict changes with the regime ({u['verdict']} -> {q['verdict']}): this claim "
                         "depends on input scale and initialisation, which the paper does not state.")
        if key == "lrn" and any(r and r["verdict"] == "disagrees" for r in rows.values()):
            text += (" Later work found no gain from LRN on other nets either: Simonyan & Zisserman (VGG, ICLR 2015, "
                     "sec. 4.1) report that LRN 'does not improve the performance' of their 11-layer net on ILSVRC.")
        if key == "pool":
            text += (" The paper's -0.4 pp is an ImageNet/AlexNet figure: this is another dataset and a far smaller "
                     "net, so it tests the mechanism, not the number.")
        if key == "fig1-epochs":
            text += (" The runs differ from the paper's also in what it does not state for this net: SGD momentum "
                     "0.9 here and each net's own best rate.")
        L.append(text)
    L.append("")
    return L


def _lrn_terms_section(analysis: dict) -> list[str]:
    """Where LRN acts: alpha * sum a^2 against k at the start, middle and end of an LRN run, per regime."""
    terms = analysis["lrn_terms"]
    L = ["## Where LRN acts: alpha * sum a^2 against k", "",
         "LRN divides each activation by (k + alpha * sum a_j^2)^beta. With the paper's k = 2, it normalises only "
         "where alpha * sum a^2 is comparable to k; far below, it is the constant factor k^-beta = "
         f"{2.0 ** -0.75:.2f}. Measured at each LRN layer over a fixed batch (the first training images, at the "
         "run's input scale and precision) before the first step, after the middle epoch and after the last; "
         "percentiles over every position and channel. The last column is how far the median position's divisor "
         "is from the constant one: (1 + median / k)^-beta (1.00 = no normalisation).", "",
         "| regime | run | layer | epoch | median | 90th pct | 99th pct | 99.9th pct | max | k | (1 + median/k)^-beta |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for g in REGIMES:
        t = terms.get(g)
        if t is None:
            L.append(f"| {REGIME_LABELS[g]} | not measured yet | | | | | | | | | |")
            continue
        run = (f"LRN arm, seed {t['seed']}" + (" (retrained)" if t["source"] == "retrained" else ""))
        for point in t["terms"]:
            for layer in point["layers"]:
                med = layer.get("p50")
                factor = None if med is None else (1 + med / layer["k"]) ** -layer["beta"]
                L.append(f"| {REGIME_LABELS[g]} | {run} | {layer['layer']} | {point['epoch']} | {_sci(med)} | "
                         f"{_sci(layer.get('p90'))} | {_sci(layer.get('p99'))} | {_sci(layer.get('p99.9'))} | "
                         f"{_sci(layer['max'])} | {layer['k']:g} | {_num(factor, '.3f')} |")
        if t["source"] == "retrained":
            notes.append(f"The unit regime's committed LRN records predate this measurement, so its LRN arm was "
                         f"retrained once (seed {t['seed']}, the same settings, `probes/{UNIT_LRN_PROBE}.json`): its "
                         f"test error {_pct(t['test_err'])} against the committed record's "
                         f"{_pct(t['committed_test_err'])}"
                         + (f" ({100 * (t['test_err'] - t['committed_test_err']):+.2f} pp: the same settings; LRN now "
                            "computed by kernels.relu_lrn instead of the einsum, and floating-point order may differ)."
                            if t["committed_test_err"] is not None else "."))
        if t.get("seeds") and len(t["seeds"]) > 1:
            meds = [p["layers"][0].get("p50") for s in t["seeds"] for p in t["all"][s][-1:]]
            meds = [m for m in meds if m is not None]
            if meds:
                notes.append(f"{REGIME_LABELS[g]}: the table shows seed {t['seed']}; at the end of training LRN1's "
                             f"median over seeds {', '.join(map(str, t['seeds']))} lies in "
                             f"[{_sci(min(meds))}, {_sci(max(meds))}].")
        if t.get("impl"):
            notes.append(f"{REGIME_LABELS[g]}: LRN computed by {t['impl']}.")
    L.append("")
    init = analysis.get("lrn_regime")
    if init and init.get("layers"):
        notes.append("At initialisation only, an earlier probe of the unit regime (`probes/lrn_regime.json`, "
                     f"{init['images']} images) found " + "; ".join(
                         f"{x['layer']}: mean {x['mean_alpha_sum']:.1e}, 99th percentile {x['p99_alpha_sum']:.1e}"
                         for x in init["layers"]) + ".")
    if notes:
        L += [" ".join(notes), ""]
    return L


TRIAL_MARGIN = 0.10  # a learning-rate trial "trains" when its running error ends this far below chance


def trial_trains(rec: dict) -> bool:
    """A learning-rate trial trains: finite loss, and its last running error well below chance."""
    err, loss = rec["final_train_err"], rec["final_train_loss"]
    return (not rec["diverged"] and err is not None and loss is not None and math.isfinite(loss)
            and err <= 1.0 - 1.0 / rec["data"]["num_classes"] - TRIAL_MARGIN)


def _sci(v) -> str:
    return "n/a" if v is None else f"{v:.2g}"


def _trials_section(analysis: dict) -> list[str]:
    trials = analysis["trials"]
    if not trials:
        return []
    chosen = next(iter(analysis["arms"].get("base", {}).values()), {}).get("spec", {}).get("lr")
    L = [f"## {REGIME_LABELS[analysis['regime']]}: the ablation's learning rate", "",
         "The unit regime's rate (0.01) is not assumed to train here, so one rule picks the rate for every arm: the "
         "largest rate tried, from the top, at which a one-epoch trial of each arm (baseline, LRN, 2/2; seed 0; the "
         "same settings as the real run's first epoch) ends with a finite loss and a running training error at least "
         "10 pp below chance. The real runs all use that rate." + (f" Chosen: **{chosen:g}**." if chosen else ""), "",
         "| lr | arm | running train err after 1 epoch | test err | trains? |", "|---|---|---|---|---|"]
    for lr in sorted(trials, reverse=True):
        for arm, r in trials[lr].items():
            L.append(f"| {lr:g} | {ARM_LABELS.get(arm, arm)} | {_pct(r['final_train_err'], 1)} | "
                     f"{_pct(r['test_top1_err'], 1)} | {'yes' if trial_trains(r) else 'diverged' if r['diverged'] else 'no'} |")
    L.append("")
    return L


def _fig1_section(analysis: dict, figures: dict) -> list[str]:
    fig1 = analysis["fig1"]
    title = f"## Figure 1: ReLU vs tanh, {REGIME_LABELS[analysis['regime']]}"
    if not fig1:
        return [title, "", "Not measured yet.", ""]
    any_run = next(iter(next(iter(fig1.values()))["by_lr"].values()))
    spec = next(iter(any_run.values()))["spec"]
    window = next(iter(any_run.values()))
    L = [title, "",
         f"Training error is the running top-1 error over windows of {window['window_batches']} batches "
         f"({window['window_batches'] * spec['batch_size']:,} images, {spec['points_per_epoch']} windows per epoch, "
         "running on across epoch boundaries), each point at its window's middle; the 25% crossing is linearly "
         "interpolated between points (from chance error at epoch 0). No weight decay, no augmentation, no LRN, "
         f"SGD momentum {spec['momentum']:g}, batch {spec['batch_size']}, {REGIME_TEXT[analysis['regime']]}. Each "
         f"activation uses the fastest rate of a grid on seed {next(iter(fig1.values()))['grid_seed']}, as the paper "
         "chose each net's rate to train as fast as possible; a grid run stops once it is slower than the best so "
         f"far; a run stops one epoch after its crossing or at {spec['max_epochs']} epochs.", ""]
    fig_key = "figure1" + FIG_SUFFIX[analysis["regime"]]
    if figures.get(fig_key):
        L += [f"![training error against epochs]({figures[fig_key]})", ""]
    drop = boundary_drop(fig1)
    if drop is not None:
        L += [f"The running error falls at each epoch boundary, by {100 * drop:.1f} pp on average (last window of an "
              "epoch against the first of the next, all Figure-1 runs from epoch 2 on), which points to memory rather than noise: "
              "an image at the start of an epoch was last seen half an epoch earlier on average, one at its end one "
              "and a half epochs earlier, and without augmentation the net partly remembers it. The 25% crossings "
              "therefore tend to land just after a boundary. The whole-epoch error (the column after, and the "
              "second claim row) averages the effect out.", ""]
    L += ["| activation | lr | seed | epochs to 25% | whole-epoch error: epochs to 25% | seconds to 25% | epochs run | "
          "train err at stop | test err at stop | images/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for act, info in sorted(fig1.items()):
        for lr in sorted(info["by_lr"]):
            for seed, r in sorted(info["by_lr"][lr].items()):
                chosen = " (chosen)" if lr == info["best_lr"] else ""
                L.append(f"| {act} | {lr:g}{chosen} | {seed} | {_reached(r)} | {_num(per_epoch_crossing(r))} | "
                         f"{_num(r['seconds_to_threshold'], '.0f')} | {r['epochs_run']} | "
                         f"{_pct(r['final_train_err'], 1)} | {_pct(r['test_top1_err'], 1)} | "
                         f"{_num(r['images_per_s'], ',.0f')} |")
    L.append("")
    return L


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


def _ablation_section(analysis: dict, figures: dict) -> list[str]:
    arms = analysis["arms"]
    title = f"## LRN and overlapping pooling, {REGIME_LABELS[analysis['regime']]}"
    if not arms:
        return [title, "", "Not measured yet.", ""]
    L = [title, "",
         f"One recipe for every arm: {_ablation_recipe(next(iter(arms.values())))}; test error on the "
         f"{next(iter(next(iter(arms.values())).values()))['data']['test_images']:,} test images after the last epoch. Each arm differs from the baseline in one switch; a seed gives every arm the "
         "same initial weights (the parameter shapes are equal) and the same batches. The paper's nets trained far "
         "longer with cuda-convnet's recipe, so absolute errors here are higher than its 11-13%.", "",
         "| arm | seeds | test err mean (sd) | per seed | train err at end | images/s |", "|---|---|---|---|---|---|"]
    for arm in [a for a in ARM_LABELS if a in arms]:
        runs = arms[arm]
        m, sd = mean_sd(r["test_top1_err"] for r in runs.values() if not _failed(r))
        per = ", ".join(f"{s}: {_pct(r['test_top1_err'])}" + (" (diverged)" if r["diverged"] else
                                                               " (at chance)" if _failed(r) else "")
                        for s, r in sorted(runs.items()))
        tr, _ = mean_sd(r["final_train_err"] for r in runs.values())
        ips, _ = mean_sd(r["images_per_s"] for r in runs.values())
        L.append(f"| {ARM_LABELS[arm]} | {len(runs)} | {_pct(m)} ({_num(None if sd is None else 100 * sd)}) | {per} | "
                 f"{_pct(tr, 1)} | {_num(ips, ',.0f')} |")
    L.append("")
    fig_key = "curves" + FIG_SUFFIX[analysis["regime"]]
    if figures.get(fig_key):
        L += [f"![learning curves of the arms]({figures[fig_key]})", ""]
    return L


# ----------------------------------------------------------------------------------------------------
# plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_figure1(analysis: dict, path: Path) -> bool:
    """Training error against epochs, ReLU solid, tanh dashed, one line per seed (the paper's Figure 1)."""
    fig1 = analysis["fig1"]
    if not any(info["runs"] for info in fig1.values()):
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for act, style, color in (("relu", "-", "C0"), ("tanh", "--", "C3")):
        info = fig1.get(act)
        if not info:
            continue
        for i, (seed, r) in enumerate(sorted(info["runs"].items())):
            ax.plot([0.0] + [p["epoch"] for p in r["curve"]], [0.9] + [p["train_top1_err"] for p in r["curve"]],
                    style, color=color, lw=1.4, alpha=0.85,
                    label=f"{'ReLU' if act == 'relu' else 'tanh'}, lr {info['best_lr']:g} ({len(info['runs'])} seeds)"
                    if i == 0 else None)
    ax.axhline(0.25, color="k", ls=":", lw=0.9)
    ax.text(ax.get_xlim()[1], 0.25, " 25%", va="center", ha="left", fontsize=8)
    ax.set_xlabel("epochs")
    ax.set_ylabel("training error rate")
    ax.set_ylim(0, 0.9)
    ax.set_title(f"Four-layer CNN, {REGIME_LABELS[analysis['regime']]}:\nReLU (solid) vs tanh (dashed)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_deltas(analysis: dict, path: Path) -> bool:
    """Each claim's measured effect with its 95% interval beside the paper's figure, one marker per regime:
    deltas (pp) on the left, the Figure-1 ratios on the right (log scale)."""
    keys = [k for k in CLAIM_KEYS if k != "fig1-seconds"]
    measured = {(k, g): r for k in keys for g in REGIMES
                if (r := _row(analysis, g, k)) is not None and r["measured"]["mean"] is not None}
    if not measured:
        return False
    plt = _plt()
    panels = [p for p in ([k for k in ("lrn", "pool") if any((k, g) in measured for g in REGIMES)],
                          [k for k in ("fig1-epochs", "fig1-whole") if any((k, g) in measured for g in REGIMES)]) if p]
    labels = {"lrn": "LRN", "pool": "3/2 vs 2/2\npooling", "fig1-epochs": "Figure 1, quarter-epoch windows:\ntanh / ReLU epochs",
              "fig1-whole": "Figure 1, whole-epoch error:\ntanh / ReLU epochs"}
    paper = {"lrn": -2.0, "pool": -0.4, "fig1-epochs": 6.0, "fig1-whole": 6.0}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, group in zip(axes[0], panels):
        ratio = group[0].startswith("fig1")
        for y, key in enumerate(group):
            for j, (g, color) in enumerate(zip(REGIMES, ("C0", "C2"))):
                r = measured.get((key, g))
                if r is None:
                    continue
                m = r["measured"]
                mean, ci = (m["mean"], m["ci"]) if ratio else (m["mean_pp"], m["ci_pp"])
                yy = y + (0.12 if j == 0 else -0.12)
                if ci is not None:
                    ax.plot(ci, [yy, yy], color=color, lw=2.5, solid_capstyle="butt")
                ax.plot(mean, yy, "o", color=color, label=f"{REGIME_LABELS[g]}, 95% CI" if y == 0 else None)
            ax.plot(paper[key], y, "x", color="C3", ms=9, mew=2, label="paper" if y == 0 else None)
        ax.axvline(1.0 if ratio else 0.0, color="k", lw=0.8)
        ax.set_yticks(range(len(group)))
        ax.set_yticklabels([labels[k] for k in group], fontsize=8)
        ax.set_ylim(-0.6, len(group) - 0.4)
        if ratio:
            from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

            ax.set_xscale("log")
            lo, hi = ax.get_xlim()
            ax.xaxis.set_major_locator(FixedLocator([t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= t <= hi]))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlabel("ratio (1 = no speed-up)", fontsize=8)
        else:
            ax.set_xlabel("test error, with - without (pp)", fontsize=8)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Measured effects vs the paper, both regimes (4-layer CNN, CPU)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_curves(analysis: dict, path: Path) -> bool:
    """Training error (running) and test error against epochs for each arm, one thin line per seed."""
    arms = analysis["arms"]
    if not arms:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for i, arm in enumerate(a for a in ARM_LABELS if a in arms):
        for j, (seed, r) in enumerate(sorted(arms[arm].items())):
            label = ARM_LABELS[arm] if j == 0 else None
            axes[0].plot([p["epoch"] for p in r["curve"]], [p["train_top1_err"] for p in r["curve"]], color=f"C{i}",
                         lw=0.9, alpha=0.8, label=label)
            axes[1].plot([p["epoch"] for p in r["test_curve"]], [p["test_top1_err"] for p in r["test_curve"]],
                         "o-", color=f"C{i}", lw=0.9, ms=2.5, alpha=0.8, label=label)
    for ax, what in zip(axes, ("training error (running)", "test error")):
        ax.set_xlabel("epochs")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"LRN and pooling arms, {REGIME_LABELS[analysis['regime']]}, one line per seed", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(out: str | Path) -> list[Path]:
    """Write ``<out>/README.md`` and its plots from ``<out>/runs``; return the paths written."""
    out = Path(out)
    loaded = load_study(out)
    analysis = analyse(loaded)
    written, figures = [], {}
    plots = [("deltas", plot_deltas, analysis)]
    for g in REGIMES:
        plots += [("figure1" + FIG_SUFFIX[g], plot_figure1, analysis["regimes"][g]),
                  ("curves" + FIG_SUFFIX[g], plot_curves, analysis["regimes"][g])]
    for key, plot, part in plots:
        path = out / f"{key}.png"
        if plot(part, path):
            written.append(path)
            figures[key] = path.name
    md = write_text_atomic(out / "README.md", render_markdown(loaded, analysis, figures))
    return [md, *written]


README_BEGIN, README_END = "<!-- cifar10-cpu:begin -->", "<!-- cifar10-cpu:end -->"


def readme_block(out: Path) -> str:
    """The claim rows of both regimes and their caveats (machine, precision, budget, dates, command) for the README."""
    loaded = load_study(out)
    analysis = analyse(loaded)
    inv = loaded["study"].get("invocations", [])
    m = inv[-1].get("machine", {}) if inv else {}
    spec = next(iter(loaded["runs"].values()))["spec"] if loaded["runs"] else {}
    budgets = []
    for g in REGIMES:
        arms = analysis["regimes"][g]["arms"]
        budgets.append(f"{REGIME_LABELS[g]}: {_ablation_recipe(next(iter(arms.values()))) if arms else 'not measured yet'}")
    lines = [f"The paper's CIFAR-10 claims on its four-layer CNN, measured on a CPU ({_machines(inv)}, "
             f"torch {m.get('torch')}; "
             f"{'bfloat16 autocast, LRN in float32' if spec.get('amp') == 'bf16' else 'float32'}; "
             f"{inv[0].get('started', '?')[:10] if inv else '?'}), in two regimes: inputs scaled to unit variance "
             "with PyTorch's initialisation, and the paper's own (cuda-convnet: mean-subtracted 0-255 pixels, "
             "Gaussian init std 1e-4 conv1, 1e-2 elsewhere). LRN and pooling: " + "; ".join(budgets)
             + ", far shorter than the paper's training. 95% intervals, paired by seed; details, curves, where LRN "
             f"actually normalises, and every run's record: [`{out.as_posix()}/`]({out.as_posix()}/README.md).",
             "", *headline_rows(analysis)]
    return "\n".join(lines)


def update_readme(readme: Path, out: Path) -> None:
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ReportError(f"{readme} has no {README_BEGIN} ... {README_END} block to fill")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    write_text_atomic(readme, f"{head}{README_BEGIN}\n{readme_block(out)}\n{README_END}{tail}")


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ablations.cifar_report",
                                description="Re-render the CIFAR-10 study's report from its per-run records.")
    p.add_argument("out", nargs="?", default=DEFAULT_OUT, help="the study folder (holds runs/ and study.json)")
    p.add_argument("--update-readme", type=Path, default=None, metavar="README",
                   help="also fill README's cifar10-cpu block with the claim rows")
    a = p.parse_args(argv)

    def body():
        for path in write_report(a.out):
            print(f"wrote {path}")
        if a.update_readme is not None:
            update_readme(a.update_readme, Path(a.out))
            print(f"updated {a.update_readme}")
    return run_cli(p.prog, body)


if __name__ == "__main__":
    sys.exit(cli())
