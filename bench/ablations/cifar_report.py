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
RUN_NAME = re.compile(r"^(?:fig1/(?P<act>relu|tanh)-lr(?P<lr>[0-9.e+-]+)|ablation/(?P<arm>[a-z0-9-]+))/seed(?P<seed>\d+)$")
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
    try:
        study = json.loads(study_path.read_text()) if study_path.exists() else {}
        probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{study_path} or {probe_path} is not valid JSON ({exc})") from None
    return {"runs": runs, "study": study, "lrn_regime": probe}


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
    """Group runs by experiment; pick each activation's rate; compute the claim rows."""
    fig1: dict = {}
    arms: dict = {}
    for name, rec in loaded["runs"].items():
        m = RUN_NAME.match(name)
        seed = int(m["seed"])
        if m["act"]:
            fig1.setdefault(m["act"], {}).setdefault(float(m["lr"]), {})[seed] = rec
        else:
            arms.setdefault(m["arm"], {})[seed] = rec
    settings = _merged_settings(loaded["study"].get("invocations", []))
    for act, by_lr in fig1.items():
        seeds = {s for runs in by_lr.values() for s in runs}
        grid_seed = _first_seed(settings.get("fig1_seeds"), seeds)
        grid = {lr: runs[grid_seed] for lr, runs in by_lr.items() if grid_seed in runs}
        best = fastest_lr(grid) if grid else None
        fig1[act] = {"by_lr": by_lr, "grid_seed": grid_seed, "grid": grid, "best_lr": best,
                     "runs": by_lr.get(best, {})}
    analysis = {"fig1": fig1, "arms": arms, "settings": settings, "lrn_regime": loaded.get("lrn_regime")}
    analysis["claims"] = claims(analysis)
    return analysis


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
        for metric, key, paper in (("epochs to 25% training error", "epochs_to_threshold", 6.0),
                                   ("epochs to 25%, whole-epoch training error", "epochs_to_threshold_per_epoch", 6.0),
                                   ("training seconds to 25% training error", "seconds_to_threshold", None)):
            relu, tanh = fig1["relu"]["runs"], fig1["tanh"]["runs"]
            r = paired_ratio({s: v[key] for s, v in relu.items()}, {s: v[key] for s, v in tanh.items()})
            missing = {act: sorted(s for s, v in fig1[act]["runs"].items() if v[key] is None) for act in ("relu", "tanh")}
            rows.append({
                "claim": "Figure 1: ReLU reaches 25% training error sooner than tanh", "metric": metric,
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
        ok = lambda runs: {s: r["test_top1_err"] for s, r in runs.items() if not r["diverged"]}  # noqa: E731
        d = paired_delta(ok(a_off), ok(a_on))
        ci_pp = None if d.ci is None else (100 * d.ci[0], 100 * d.ci[1])
        rows.append({
            "claim": "LRN lowers test error" if claim == "lrn" else "Overlapping pooling (3/2 vs 2/2) lowers test error",
            "metric": "test top-1 error, with - without (pp)", "unit": "pp", "paper": says, "paper_value": paper,
            "null": 0.0, "measured": {**d.to_dict(), "mean_pp": None if d.mean is None else 100 * d.mean, "ci_pp": ci_pp},
            "seeds": _seed_count(a_on, a_off, d.n), "verdict": verdict(ci_pp, paper, 0.0),
            "diverged": sorted(s for runs in (a_on, a_off) for s, r in runs.items() if r["diverged"]),
            "arm_means": {arm: mean_sd(r["test_top1_err"] for r in runs.values() if not r["diverged"])
                          for arm, runs in ((on, a_on), (off, a_off))},
            "recipe": _ablation_recipe(a_on),
        })
    return rows


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


def headline_rows(analysis: dict) -> list[str]:
    """The claim rows as Markdown table lines (the README's first screen shows these)."""
    lines = ["| claim | paper | measured mean, 95% CI | seeds | verdict |", "|---|---|---|---|---|"]
    for r in analysis["claims"]:
        lines.append(f"| {r['claim']} ({r['metric']}) | {fmt_paper(r)} | {fmt_measured(r)} | {r['seeds']} | "
                     f"{r['verdict']} |")
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
    L = ["# The paper's CIFAR-10 experiments on a CPU: ReLU vs tanh, LRN, overlapping pooling", "",
         "Krizhevsky et al. (2012) make two of their claims on CIFAR-10 with a small four-layer CNN (Figure 1, "
         "section 3.3), and one on ImageNet (overlapping pooling, section 3.4). This report measures all three "
         "on that CNN (`alexnet/cifar_cnn.py`: conv 32@5x5 -> pool -> conv 32@5x5 -> pool -> conv 64@5x5 -> "
         f"pool -> fc 10) with {_data_text(runs)}, on a CPU, at a budget of minutes per run. Everything below is "
         "computed from the per-run records in `runs/`.", ""]
    L += _provenance(study, runs)
    expected = _expected_runs(analysis)
    if expected is not None and len(runs) < expected:
        L += [f"**Partial: {len(runs)} of about {expected} runs have finished.** Rows use the finished runs only.", ""]
    L += ["## Claims", "",
          "Verdict, from the 95% interval alone: *agrees* (the effect is resolved and the paper's figure is inside "
          "the interval), *agrees in direction, smaller/larger* (resolved, but the paper's figure is outside), "
          "*disagrees* (the interval excludes the paper's figure and either includes no effect or shows the "
          "opposite one), *inconclusive* (both no effect and the paper's figure are inside).", "",
          "| claim | metric | paper | measured mean, 95% CI | seeds | verdict | recipe and budget here |",
          "|---|---|---|---|---|---|---|"]
    for r in analysis["claims"]:
        L.append(f"| {r['claim']} | {r['metric']} | {fmt_paper(r) if r['paper_value'] is not None else r['paper']} | "
                 f"{fmt_measured(r)} | {r['seeds']} | {r['verdict']} | {r['recipe']} |")
    L.append("")
    if figures.get("deltas"):
        L += [f"![measured effects against the paper's]({figures['deltas']})", ""]
    L += _discussion(analysis)
    L += _fig1_section(analysis, figures)
    L += _ablation_section(analysis, figures)
    return "\n".join(L) + "\n"


def _data_text(runs: dict) -> str:
    kinds = {json.dumps(r.get("data", {}), sort_keys=True) for r in runs.values()}
    if len(kinds) != 1:
        return "data that differ between runs (see each record's 'data')"
    d = next(iter(runs.values()))["data"]
    return (f"`{Path(str(d.get('data'))).name}` ({d.get('train_images'):,} training and {d.get('test_images'):,} test "
            f"images, {d.get('num_classes')} classes, 32 px)")


def _provenance(study: dict, runs: dict) -> list[str]:
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
        f"| machine | {m.get('cpu_model')}, {m.get('cpu_usable_cores')} usable cores, {m.get('torch_threads')} torch "
        f"threads, no GPU ({m.get('platform')}) |",
        f"| software | Python {m.get('python')}, torch {m.get('torch')} |",
        f"| code | {', '.join(dict.fromkeys(str(i.get('code')) for i in inv))} |",
        f"| dates (UTC) | {inv[0].get('started')} to "
        f"{max((i['finished'] for i in inv if i.get('finished')), default='(running)')} ({len(inv)} invocation(s)"
        + (", one still running" if any(not i.get("finished") for i in inv) else "") + ") |",
        f"| wall time | {wall / 60:.0f} min over the invocations"
        + (f" ({untimed} without a recorded duration)" if untimed else "")
        + f"; {train / 60:.0f} min of training and evaluation in the {len(runs)} finished runs (processes ran "
        "side by side) |",
        f"| throughput | {min(ips):,.0f}-{max(ips):,.0f} training images/s per run (median "
        f"{sorted(ips)[len(ips) // 2]:,.0f}), CPU |" if ips else "| throughput | n/a |",
        "",
        "Seconds are wall-clock on a shared 2-core machine and vary with its load; epochs are the primary measure.",
        ""]


def _expected_runs(analysis: dict) -> int | None:
    s = analysis["settings"]
    if not s:
        return None
    n_fig1, n_seeds = len(_seed_list(s.get("fig1_seeds"))), len(_seed_list(s.get("seeds")))
    experiments = [e.strip() for e in str(s.get("experiments", "")).split(",")]
    if not n_fig1 and not n_seeds:
        return None
    total = 0
    if "fig1" in experiments:
        for act in ("relu", "tanh"):
            grid = len(analysis["fig1"].get(act, {}).get("grid", {})) or len(s.get("lrs", [])) or 4
            total += grid + n_fig1 - 1
    arms = {"base"} | ({"lrn"} if "lrn" in experiments else set()) | ({"pool-2x2"} if "pool" in experiments else set())
    if len(arms) > 1:
        total += len(arms) * n_seeds
    return total


def _discussion(analysis: dict) -> list[str]:
    """Plain statements of what the rows show; contradictions said as such, with the published evidence."""
    L = ["## What this shows", ""]
    for r in analysis["claims"]:
        if r["paper_value"] is None or r["measured"]["mean"] is None:
            continue
        v = r["verdict"]
        if r["unit"] == "x":
            if r["metric"] != "epochs to 25% training error":
                continue  # one bullet for Figure 1, from both of its epoch measures
            whole = next((w for w in analysis["claims"] if w["metric"].startswith("epochs to 25%, whole")), None)
            text = (f"- **Figure 1** ({v}): tanh needed {r['measured']['mean']:.2f}x ReLU's epochs to reach 25% "
                    "training error")
            if whole is not None and whole["measured"]["mean"] is not None:
                text += (f" ({whole['measured']['mean']:.2f}x by the whole-epoch error, {whole['verdict']})")
            text += ", against the paper's 6x: here tanh trains about as fast as ReLU."
            if r["not_reached"]:
                text += " Runs that never reached 25% are left out of the ratio: " + "; ".join(
                    f"{a} seed(s) {', '.join(map(str, s))}" for a, s in r["not_reached"].items()) + "."
            if v.startswith("disagrees") or v.startswith("agrees in direction"):
                text += (" The factor depends on what the paper does not state for this net and what differs "
                         "here: PyTorch's default initialisation (small weights keep tanh in its near-linear "
                         "range), SGD momentum 0.9 and each net's own best rate.")
            L.append(text)
        elif r["claim"].startswith("LRN"):
            text = (f"- **LRN** ({v}): {r['measured']['mean_pp']:+.2f} pp test error with LRN against the paper's "
                    f"-2.0 pp (13% -> 11%), at a budget far shorter than the paper's.")
            if v == "disagrees" or v.endswith("smaller"):
                text += (" This contradicts the paper's figure; later work found the same on other nets: Simonyan & "
                         "Zisserman (VGG, ICLR 2015, sec. 4.1) report that LRN 'does not improve the performance' of "
                         "their 11-layer net on ILSVRC while costing memory and time.")
            elif v == "inconclusive":
                text += " At this budget and seed count neither the paper's gain nor no gain can be excluded."
            regime = analysis.get("lrn_regime")
            if regime and regime.get("layers"):
                layers = "; ".join(f"{layer['layer']}: mean {layer['mean_alpha_sum']:.1e}, 99th percentile "
                                   f"{layer['p99_alpha_sum']:.1e}" for layer in regime["layers"])
                k, beta = regime["layers"][0]["k"], regime["layers"][0]["beta"]
                text += (f" A caveat measured here: in the freshly initialised net, alpha * sum a^2 is tiny against "
                         f"k = {k:g} ({layers}; {regime['images']} training images), so with inputs "
                         f"{regime['input']} the paper's constants make LRN nearly the constant factor "
                         f"k^-beta = {k ** -beta:.2f}.")
                stds = regime.get("pixel_std") or []
                if stds:
                    factor = (sum(stds) / len(stds)) ** 2
                    text += (f" The paper fed mean-subtracted 0-255 pixels, about {sum(stds) / len(stds):.0f}x larger "
                             f"(the pixel std), which at initialisation scales the first term by ~{factor:,.0f} to "
                             f"~{regime['layers'][0]['mean_alpha_sum'] * factor:.2g}, comparable to k: the regime "
                             "the paper's constants were chosen for, not measured here.")
            L.append(text)
        else:
            L.append(f"- **Overlapping pooling** ({v}): {r['measured']['mean_pp']:+.2f} pp test error with 3/2 "
                     "against 2/2. The paper's -0.4 pp is an ImageNet/AlexNet figure: this is another dataset and "
                     "a far smaller net, so it tests the mechanism, not the number.")
    L.append("")
    return L if len(L) > 3 else []


def _fig1_section(analysis: dict, figures: dict) -> list[str]:
    fig1 = analysis["fig1"]
    if not fig1:
        return []
    any_run = next(iter(next(iter(fig1.values()))["by_lr"].values()))
    spec = next(iter(any_run.values()))["spec"]
    window = next(iter(any_run.values()))
    L = ["## Figure 1: ReLU vs tanh", "",
         f"Training error is the running top-1 error over windows of {window['window_batches']} batches "
         f"({window['window_batches'] * spec['batch_size']:,} images, {spec['points_per_epoch']} windows per epoch, "
         "running on across epoch boundaries), each point at its window's middle; the 25% crossing is linearly "
         "interpolated between points (from chance error at epoch 0). No weight decay, no augmentation, no LRN, "
         f"SGD momentum {spec['momentum']:g}, batch {spec['batch_size']}, PyTorch's default initialisation. Each "
         f"activation uses the fastest rate of a grid on seed {next(iter(fig1.values()))['grid_seed']}, as the paper "
         "chose each net's rate to train as fast as possible; a grid run stops once it is slower than the best so "
         f"far; a run stops one epoch after its crossing or at {spec['max_epochs']} epochs.", ""]
    if figures.get("figure1"):
        L += [f"![training error against epochs]({figures['figure1']})", ""]
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
    if not arms:
        return []
    L = ["## LRN and overlapping pooling", "",
         f"One recipe for every arm: {_ablation_recipe(next(iter(arms.values())))}; test error on the "
         f"{next(iter(next(iter(arms.values())).values()))['data']['test_images']:,} test images after the last epoch. Each arm differs from the baseline in one switch; a seed gives every arm the "
         "same initial weights (the parameter shapes are equal) and the same batches. The paper's nets trained far "
         "longer with cuda-convnet's recipe, so absolute errors here are higher than its 11-13%.", "",
         "| arm | seeds | test err mean (sd) | per seed | train err at end | images/s |", "|---|---|---|---|---|---|"]
    for arm in [a for a in ARM_LABELS if a in arms]:
        runs = arms[arm]
        m, sd = mean_sd(r["test_top1_err"] for r in runs.values() if not r["diverged"])
        per = ", ".join(f"{s}: {_pct(r['test_top1_err'])}" for s, r in sorted(runs.items()))
        tr, _ = mean_sd(r["final_train_err"] for r in runs.values())
        ips, _ = mean_sd(r["images_per_s"] for r in runs.values())
        L.append(f"| {ARM_LABELS[arm]} | {len(runs)} | {_pct(m)} ({_num(None if sd is None else 100 * sd)}) | {per} | "
                 f"{_pct(tr, 1)} | {_num(ips, ',.0f')} |")
    L.append("")
    if figures.get("curves"):
        L += [f"![learning curves of the three arms]({figures['curves']})", ""]
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
    ax.set_title("Four-layer CNN: ReLU (solid) vs tanh (dashed)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_deltas(analysis: dict, path: Path) -> bool:
    """Each claim's measured effect with its 95% interval beside the paper's figure: deltas (pp) on the
    left, the Figure-1 ratio on the right (log scale)."""
    rows = [r for r in analysis["claims"] if r["paper_value"] is not None and r["measured"]["mean"] is not None]
    if not rows:
        return False
    plt = _plt()
    deltas = [r for r in rows if r["unit"] == "pp"]
    ratios = [r for r in rows if r["unit"] == "x"]
    panels = [p for p in (deltas, ratios) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, group in zip(axes[0], panels):
        for y, r in enumerate(group):
            m = r["measured"]
            mean = m["mean_pp"] if r["unit"] == "pp" else m["mean"]
            ci = m["ci_pp"] if r["unit"] == "pp" else m["ci"]
            if ci is not None:
                ax.plot(ci, [y, y], color="C0", lw=2.5, solid_capstyle="butt")
            ax.plot(mean, y, "o", color="C0", label="measured, 95% CI" if y == 0 else None)
            ax.plot(r["paper_value"], y, "x", color="C3", ms=9, mew=2, label="paper" if y == 0 else None)
        ax.axvline(group[0]["null"], color="k", lw=0.8)
        ax.set_yticks(range(len(group)))
        ax.set_yticklabels([(("Figure 1, whole-epoch error:\ntanh / ReLU epochs" if "whole" in r["metric"] else
                              "Figure 1, quarter-epoch windows:\ntanh / ReLU epochs") if r["unit"] == "x" else
                             "LRN" if r["claim"].startswith("LRN") else "3/2 vs 2/2\npooling") for r in group], fontsize=8)
        ax.set_ylim(-0.6, len(group) - 0.4)
        if group[0]["unit"] == "x":
            from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

            ax.set_xscale("log")
            lo, hi = ax.get_xlim()
            ax.xaxis.set_major_locator(FixedLocator([t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= t <= hi]))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlabel("ratio (1 = no speed-up)", fontsize=8)
        else:
            ax.set_xlabel("test error, with - without (pp)", fontsize=8)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Measured effects vs the paper (4-layer CNN, CPU)", fontsize=10)
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
    fig.suptitle("LRN and pooling arms, one line per seed", fontsize=10)
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
    for key, plot in (("figure1", plot_figure1), ("deltas", plot_deltas), ("curves", plot_curves)):
        path = out / f"{key}.png"
        if plot(analysis, path):
            written.append(path)
            figures[key] = path.name
    md = write_text_atomic(out / "README.md", render_markdown(loaded, analysis, figures))
    return [md, *written]


README_BEGIN, README_END = "<!-- cifar10-cpu:begin -->", "<!-- cifar10-cpu:end -->"


def readme_block(out: Path) -> str:
    """The claim rows and their caveats (machine, precision, budget, dates, command) for the README."""
    loaded = load_study(out)
    analysis = analyse(loaded)
    inv = loaded["study"].get("invocations", [])
    m = inv[-1].get("machine", {}) if inv else {}
    spec = next(iter(loaded["runs"].values()))["spec"] if loaded["runs"] else {}
    arms = analysis["arms"]
    budget = _ablation_recipe(next(iter(arms.values()))) if arms else "n/a"
    lines = [f"The paper's CIFAR-10 claims on its four-layer CNN, measured on a CPU ({m.get('cpu_model')}, "
             f"{m.get('cpu_usable_cores')} cores, torch {m.get('torch')}; "
             f"{'bfloat16 autocast, LRN in float32' if spec.get('amp') == 'bf16' else 'float32'}; "
             f"{inv[0].get('started', '?')[:10] if inv else '?'}). LRN and pooling: {budget}, far shorter "
             "than the paper's training. 95% intervals, paired by seed; details, curves and every run's "
             f"record: [`{out.as_posix()}/`]({out.as_posix()}/README.md)."
             + (" The LRN row is for inputs scaled to unit variance, where the paper's constants barely normalise "
                "(measured; see the report)." if analysis.get("lrn_regime") else ""), "", *headline_rows(analysis)]
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
