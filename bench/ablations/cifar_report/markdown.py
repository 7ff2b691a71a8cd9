"""The study's Markdown: ``render_markdown`` (the study folder's README.md) and its sections, and
``headline_rows`` with the ``fmt_*`` cells (the claim rows, also the project README's block).

Numbers are formatted with ``infra.report_kit``; a value that was not measured reads "n/a" or "not
measured yet", never a number.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.ablations.cifar_report.analysis import (CLAIM_KEYS, CLAIM_TEXT, DEPENDS_ON_LR, LRN_ABSENT_FRACTION,
                                                   NOT_NORMALISATION, SENSITIVITY_MARGIN_PP, SHARED_RATE, _ablation_recipe,
                                                   _expected_runs, _failed, _row, boundary_drop, per_epoch_crossing,
                                                   trial_trains)
from bench.ablations.cifar_report.records import (ARM_LABELS, FIG_SUFFIX, REGIME_LABELS, REGIME_TEXT, REGIMES,
                                                  UNIT_LRN_PROBE)
from bench.ablations.stats import mean_sd
from bench.report.claim_row import ClaimRow
from infra import report_kit
from infra.report_kit import num, pct

def fmt_measured(row: ClaimRow) -> str:
    if row.mean is None:
        return "no finished pair yet"
    if row.unit == "x":
        ci = "CI n/a (1 seed)" if row.ci is None else f"95% CI [{row.ci[0]:.2f}x, {row.ci[1]:.2f}x]"
        return f"**{row.mean:.2f}x**, {ci}"
    if row.ci is None:
        return f"**{row.mean:+.2f} pp**, CI n/a (1 pair)"
    return f"**{row.mean:+.2f} +/- {row.half_width:.2f} pp** (95% CI [{row.ci[0]:+.2f}, {row.ci[1]:+.2f}])"


def fmt_cell(row: ClaimRow | None) -> str:
    """A regime's measurement of one claim: mean, interval, seeds - or 'not measured yet'."""
    if row is None:
        return "not measured yet"
    text = f"{fmt_measured(row)}; {row.details['seed_count']}"
    failed = row.details.get("failed") or {}
    if failed:
        text += "; diverged or at chance, left out: " + ", ".join(
            f"{ARM_LABELS.get(a, a).split(':')[0]} seed(s) {', '.join(map(str, v))}" for a, v in failed.items())
    if row.details.get("not_reached"):
        text += "; never reached 25%, left out: " + ", ".join(
            f"{a} seed(s) {', '.join(map(str, v))}" for a, v in row.details["not_reached"].items())
    return text


def headline_rows(analysis: dict) -> list[str]:
    """The claim rows, both regimes side by side, as Markdown table lines (the README's first screen)."""
    header = ["claim", "paper"]
    for g in REGIMES:
        header += [f"{REGIME_LABELS[g]}: measured mean, 95% CI", "verdict"]
    rows = []
    for key in CLAIM_KEYS:
        claim, metric, paper = CLAIM_TEXT[key]
        cells = [f"{claim} ({metric})", paper]
        for g in REGIMES:
            r = _row(analysis, g, key)
            cells += [fmt_cell(r), r.verdict if r else "-"]
        rows.append(cells)
    return report_kit.table(header, rows)


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
    L = ["# The paper's CIFAR-10 experiments on a CPU: ReLU vs tanh, LRN, overlapping pooling, two towers, in two regimes",
         "",
         "Krizhevsky et al. (2012) make two of their claims on CIFAR-10 with a small four-layer CNN (Figure 1, "
         "section 3.3), and two on ImageNet (overlapping pooling, section 3.4; two towers against one with half the "
         "kernels, section 3.2). This report measures all four "
         "on that CNN (`alexnet/cifar_cnn.py`: conv 32@5x5 -> pool -> conv 32@5x5 -> pool -> conv 64@5x5 -> "
         f"pool -> fc 10) with {_data_text(runs)}, on a CPU, at a budget of minutes per run, in two regimes "
         "that differ in two switches of a run's settings, the net the same:", ""]
    for g in REGIMES:
        L.append(f"- **{REGIME_LABELS[g]}**: {REGIME_TEXT[g]}"
                 + (" (the first study)." if g == "unit" else
                    " - the paper's own setting, from its code (cuda-convnet's `layers-18pct`; records in `runs/paper/`)."))
    L += ["", "The paper points to cuda-convnet for this net, and cuda-convnet's files state the input scale and the "
          "initialisation; the paper regime follows them. The two regimes also differ in learning rate (each is "
          "chosen per regime).", "",
          "Learning rates: in the per-arm protocol (rows without a suffix) every arm gets its own rate from the same "
          "grid by the same rule - the lowest validation error after a short, fixed budget, on training images held "
          "out as a validation split (never the test set) - and each claim is measured with each arm at its own "
          "rate; the sensitivity table beside it gives the effect at every rate of the grid with both arms at that "
          "rate. The earlier study ran every arm at one shared rate; its rows stay, marked *earlier single-lr "
          "study*.", "",
          "Everything below is computed from the per-run records in `runs/` (and `probes/`).", ""]
    L += _provenance(study, runs, analysis)
    if figures.get("activation_profile"):
        L += [f"Why the tanh runs train at about half of ReLU's images/s: "
              f"[{figures['activation_profile']}]({figures['activation_profile']}) "
              "(`python -m bench.tools.cifar_activation_profile`; see the Figure-1 section).", ""]
    if figures.get("throughput"):
        L += [f"Each arm's training speed on a quiet machine, the arms timed side by side (not from these runs, "
              f"which shared the machine): [{figures['throughput']}]({figures['throughput']}) "
              "(`python -m bench.tools.cifar_throughput`).", ""]
    if figures.get("throughput_towers"):
        L += [f"The towers experiment's nets timed the same way, beside the full-width one-tower net: "
              f"[{figures['throughput_towers']}]({figures['throughput_towers']}) "
              "(`python -m bench.tools.cifar_throughput --arms towers`).", ""]
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
          "opposite one), *inconclusive* (both no effect and the paper's figure are inside). Three rules override it: "
          f"*{DEPENDS_ON_LR}* when the effect's direction flips inside the learning-rate grid (see the sensitivity "
          f"table: a rate counts when its 95% interval excludes no effect, or, from one seed, when the delta is at "
          f"least {SENSITIVITY_MARGIN_PP:g} pp, or the Figure-1 ratio at least 1.25x either way); *{NOT_NORMALISATION}* "
          "when the runs' own LRN probe shows alpha * sum a^2 below "
          f"{LRN_ABSENT_FRACTION:g} k everywhere it was measured, so that LRN acted as a constant factor and the row "
          "measures that factor (the interval's verdict is then given in the text); "
          f"*{SHARED_RATE}* for the rows of the earlier single-lr study, whose arms all trained at one rate: a "
          "rate shared by the arms cannot separate the switch from the rate (the sensitivity table shows the "
          "effects change with it), so only the per-arm rows give verdicts, and the text gives what the interval "
          "alone would read.", "",
          *headline_rows(analysis), ""]
    for g in REGIMES:
        recipes = list(dict.fromkeys(f"{r.claim.split(':')[0]}: {r.recipe}"
                                     for r in analysis["regimes"][g]["claims"]))
        if recipes:
            L.append(f"Recipes, {REGIME_LABELS[g]}: " + "; ".join(recipes) + ".")
            L.append("")
    if figures.get("deltas"):
        L += [f"![measured effects against the paper's]({figures['deltas']})", ""]
    L += _discussion(analysis)
    L += _sensitivity_section(analysis, figures)
    for g in REGIMES:
        L += _tuned_section(analysis["regimes"][g], figures)
    L += _lrn_terms_section(analysis)
    for g in REGIMES:
        L += _fig1_section(analysis["regimes"][g], figures)
    L += _throughput_gap(loaded.get("activation_profile"), {**analysis, "invocations": study.get("invocations", [])})
    for g in REGIMES:
        L += _trials_section(analysis["regimes"][g])
        L += _ablation_section(analysis["regimes"][g], figures)
    return "\n".join(L) + "\n"


DIRECTION = {1: "+", -1: "-", 0: "0"}


def _lr_cell(lr: float, chosen: dict, arms: tuple) -> str:
    mark = [a for a in arms if chosen.get(a) == lr]
    return f"{lr:g}" + (f" (chosen: {', '.join(mark)})" if mark else "")


def _sensitivity_section(analysis: dict, figures: dict) -> list[str]:
    """Each claim's effect at every rate of the grid, both arms at that rate, per regime."""
    L = ["## Sensitivity to the learning rate", "",
         "Each claim's effect with both arms at the same rate, for every rate of the grid: for LRN, pooling and "
         "the towers the validation error after the learning-rate trials' budget (constant rate, paired by seed "
         "over the trial seeds); for Figure 1 the tanh/ReLU ratio of epochs to 25% training error from its grid "
         "runs (one seed; a grid run that stopped before 25% gives a bound). 'direction' is the resolved sign of the "
         "effect at that rate (+: the first arm's error is higher / tanh slower; 0: not resolved).", ""]
    any_rows = False
    for g in REGIMES:
        for key, sens in analysis["regimes"][g]["sensitivity"].items():
            if not sens["rows"]:
                continue
            any_rows = True
            on, off = sens["arms"]
            head = f"**{CLAIM_TEXT[key][0]}, {REGIME_LABELS[g]}**" + (f" - *{DEPENDS_ON_LR}*" if sens["flips"] else
                                                                      " - no flip inside the grid")
            L += [head, ""]
            rows = []
            for r in sens["rows"]:
                if key == "fig1-epochs":
                    eff = "n/a (neither reached 25%)" if r["mean"] is None else f"{r['bound'] or ''}{r['mean']:.2f}x"
                    rows.append([_lr_cell(r["lr"], sens["chosen"], ("tanh", "relu")),
                                 num(r["relu"]) if r["relu"] is not None else f"not in {r['relu_run']}",
                                 num(r["tanh"]) if r["tanh"] is not None else f"not in {r['tanh_run']}", eff,
                                 DIRECTION[r["direction"]]])
                else:
                    ci = "" if r["ci"] is None else f" [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
                    eff = "n/a" if r["mean"] is None else f"{r['mean']:+.2f} pp{ci}"
                    grids = analysis["regimes"][g]["grids"]
                    errs = [mean_sd(x.get("val_top1_err") for x in grids[a][r["lr"]].values())[0] for a in (on, off)]
                    rows.append([_lr_cell(r["lr"], sens["chosen"], (on, off)), pct(errs[0], 1), pct(errs[1], 1),
                                 eff + (f" ({', '.join(r['failed'])} diverged or at chance)" if r["failed"] else ""),
                                 r["n"], DIRECTION[r["direction"]]])
            if key == "fig1-epochs":
                L += report_kit.table(["lr", "ReLU: epochs to 25%", "tanh: epochs to 25%", "tanh / ReLU", "direction"],
                                      rows)
            else:
                L += report_kit.table(["lr", f"{on}: val err", f"{off}: val err", f"{on} - {off}", "pairs",
                                       "direction"], rows)
            L.append("")
    if not any_rows:
        return L + ["Not measured yet (no learning-rate grid has finished).", ""]
    if figures.get("sensitivity"):
        L += [f"![each claim's effect at every rate of the grid]({figures['sensitivity']})", ""]
    return L


def _tuned_section(analysis: dict, figures: dict) -> list[str]:
    """The per-arm protocol: each arm's grid and chosen rate, then its claim runs at that rate."""
    grids, tuned = analysis["grids"], analysis["tuned"]
    if not grids and not tuned:
        return []
    L = [f"## Each arm at its own learning rate, {REGIME_LABELS[analysis['regime']]}", ""]
    if grids:
        any_grid = next(iter(next(iter(next(iter(grids.values())).values())).values()))
        spec = any_grid["spec"]
        L += [f"Learning-rate trials: every arm {spec['max_epochs']} epochs at a constant rate (seeds "
              f"{', '.join(str(s) for s in sorted({s for by_lr in grids.values() for runs in by_lr.values() for s in runs}))}),"
              f" {spec.get('val_images', 0):,} training images held out (a fixed seeded draw) and evaluated after the "
              "last epoch; the test set is not evaluated. Each arm's rate is the one with the lowest mean validation "
              "error (in bold).", ""]
        lrs = sorted({lr for by_lr in grids.values() for lr in by_lr}, reverse=True)
        rows = []
        for arm in [a for a in ARM_LABELS if a in grids]:
            cells = []
            for lr in lrs:
                runs = grids[arm].get(lr)
                if not runs:
                    cells.append("-")
                    continue
                m, _ = mean_sd(r.get("val_top1_err") for r in runs.values())
                cell = pct(m, 1) + (" (failed)" if any(_failed(r) for r in runs.values()) else "")
                cells.append(f"**{cell}**" if analysis["chosen_lr"].get(arm) == lr else cell)
            rows.append([ARM_LABELS[arm], *cells])
        L += report_kit.table(["arm: validation error after the trial", *[f"lr {lr:g}" for lr in lrs]], rows)
        L.append("")
    if tuned:
        spec = next(iter(next(iter(tuned.values())).values()))["spec"]
        drops = spec["lr_drop_epochs"]
        L += [f"Claim runs: {spec['max_epochs']} epochs, "
              + ("constant rate" if not drops else "rate / 10 from epoch " + " and ".join(str(e + 1) for e in drops))
              + f", SGD momentum {spec['momentum']:g}, weight decay {spec['weight_decay']:g}, random flips, batch "
              f"{spec['batch_size']}, {'bfloat16 autocast (LRN in float32)' if spec.get('amp') == 'bf16' else 'float32'}"
              "; test error on the test images after every epoch (the last one is the result). "
              "Time per epoch is the training steps' wall time on a shared 2-core machine.", ""]
        rows = []
        from alexnet.cifar_cnn import CifarCNN
        for arm, runs in _in_arm_order(tuned):
            s0 = next(iter(runs.values()))["spec"]
            params = sum(p.numel() for p in CifarCNN(widths=tuple(s0.get("widths", (32, 32, 64))),
                                                     layout=s0.get("layout", "one-gpu"), lrn=s0["lrn"]).parameters())
            m, sd = mean_sd(r["test_top1_err"] for r in runs.values() if not _failed(r))
            per = ", ".join(f"{s}: {pct(r['test_top1_err'])}" + (" (failed)" if _failed(r) else "")
                            for s, r in sorted(runs.items()))
            sec, sec_sd = mean_sd(r["train_seconds"] / r["epochs_run"] for r in runs.values() if r["epochs_run"])
            rows.append([ARM_LABELS[arm], f"{s0['lr']:g}", f"{params:,}", len(runs),
                         f"{pct(m)} ({num(None if sd is None else 100 * sd)})", per,
                         f"{num(sec, '.1f')} ({num(sec_sd, '.1f')})"])
        L += report_kit.table(["arm", "lr", "parameters", "seeds", "test err mean (sd)", "per seed",
                               "s per epoch, mean (sd)"], rows)
        L.append("")
    fig_key = "curves-tuned" + FIG_SUFFIX[analysis["regime"]]
    if figures.get(fig_key):
        L += [f"![learning curves, each arm at its own rate]({figures[fig_key]})", ""]
    return L


def _data_text(runs: dict) -> str:
    split = ("prepare_seconds", "pixel_std", "train_images", "val_images", "val_seed")  # a validation split differs
    kinds = {json.dumps({k: v for k, v in r.get("data", {}).items() if k not in split}, sort_keys=True)
             for r in runs.values()}
    if len(kinds) != 1:
        return "data that differ between runs (see each record's 'data')"
    d = max((r["data"] for r in runs.values()), key=lambda d: d.get("train_images", 0))
    vals = sorted({r["data"]["val_images"] for r in runs.values() if r["data"].get("val_images")})
    held = (f"; the per-arm runs hold {', '.join(f'{v:,}' for v in vals)} of the training images out as a validation "
            "split" if vals else "")
    return (f"`{Path(str(d.get('data'))).name}` ({d.get('train_images'):,} training and {d.get('test_images'):,} test "
            f"images, {d.get('num_classes')} classes, 32 px{held})")


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
    unended = sum(not i.get("finished") for i in inv)
    return [
        "| | |", "|---|---|",
        f"| command | {'; '.join(f'`{c}`' for c in commands)} |",
        f"| machine | {_machines(inv)}; {m.get('torch_threads')} torch threads, no GPU ({m.get('platform')}) |",
        f"| software | Python {m.get('python')}, torch {m.get('torch')} |",
        f"| code | {', '.join(dict.fromkeys(str(i.get('code')) for i in inv))} |",
        f"| dates (UTC) | {inv[0].get('started')} to "
        f"{max((i['finished'] for i in inv if i.get('finished')), default='(running)')} ({len(inv)} invocation(s)"
        + (f", {unended} without a recorded end: stopped before they finished, or still running" if unended else "")
        + ") |",
        f"| wall time | {wall / 60:.0f} min over the invocations"
        + (f" ({untimed} without a recorded duration)" if untimed else "")
        + f"; {train / 60:.0f} min of training and evaluation in the {len(runs)} finished runs (processes ran "
        "side by side) |",
        *(["| training time per regime | " + "; ".join(
            f"{REGIME_LABELS[g]}: {sum(r.get('wall_seconds', 0) for r in analysis['regimes'][g]['runs'].values()) / 60:.0f} "
            f"min in {len(analysis['regimes'][g]['runs'])} runs" for g in REGIMES) + " |"] if analysis else []),
        f"| throughput | {min(ips):,.0f}-{max(ips):,.0f} training images/s per run (median "
        f"{sorted(ips)[len(ips) // 2]:,.0f}), CPU |" if ips else "| throughput | n/a |",
        "",
        "Seconds are wall-clock on a shared 2-core machine and vary with its load; epochs are the primary measure.",
        ""]


def _discussion(analysis: dict) -> list[str]:
    """Plain statements of what the rows show, regime by regime; contradictions said as such."""
    L = ["## What this shows", ""]
    names = {"fig1-epochs": "Figure 1", "lrn": "LRN", "pool": "Overlapping pooling", "towers": "Two towers",
             "lrn-single-lr": "LRN, earlier single-lr study", "pool-single-lr": "Overlapping pooling, earlier single-lr study"}
    for key, name in names.items():
        rows = {g: _row(analysis, g, key) for g in REGIMES}
        parts = []
        for g, r in rows.items():
            if r is None or r.mean is None:
                parts.append(f"{REGIME_LABELS[g]}: not measured yet")
                continue
            if r.unit == "x":
                whole = _row(analysis, g, "fig1-whole")
                parts.append(f"{REGIME_LABELS[g]}: tanh needed {r.mean:.2f}x ReLU's epochs to 25% "
                             f"({r.verdict}" + (f"; {whole.mean:.2f}x by the whole-epoch error, "
                                                f"{whole.verdict}" if whole and whole.mean else "")
                             + ")")
            else:
                parts.append(f"{REGIME_LABELS[g]}: {r.mean:+.2f} pp ({r.verdict})")
                if r.details.get("mechanism_absent"):
                    parts[-1] += (f" - {r.details['mechanism_absent']}; as an interval it would read "
                                  f"'{r.details['verdict_as_measured']}'")
                elif r.verdict == SHARED_RATE:
                    parts[-1] += f" - as an interval it would read '{r.details['verdict_as_measured']}'"
            if r.details.get("failed"):
                parts[-1] += ", with runs that diverged or stayed at chance left out of the mean (see its table)"
        if all(r is None for r in rows.values()):
            continue
        text = f"- **{name}** (paper: {CLAIM_TEXT[key][2]}): " + "; ".join(parts) + "."
        u, q = rows["unit"], rows["paper"]
        if u and q and u.mean is not None and q.mean is not None and SHARED_RATE not in (u.verdict, q.verdict):
            if u.verdict == q.verdict:
                text += " The verdict is the same in the paper's own regime: it does not come from the regime."
            else:
                text += (f" The verdict changes with the regime ({u.verdict} -> {q.verdict}). The regimes "
                         "differ in input scale and initialisation (the paper regime's are cuda-convnet's, whose "
                         "files state both) and in learning rate (each chosen per regime), so the change cannot be "
                         "put on one of them.")
        if key == "pool-single-lr" or key == "lrn-single-lr":
            text += _single_lr_caveat(analysis, key)
        if key.startswith("lrn") and any(r and r.verdict == "disagrees" for r in rows.values()):
            text += (" Later work found no gain from LRN on other nets either: Simonyan & Zisserman (VGG, ICLR 2015, "
                     "sec. 4.1) report that LRN 'does not improve the performance' of their 11-layer net on ILSVRC.")
        if key == "towers":
            text += (" The paper's -1.7 pp is an ImageNet/AlexNet figure; here the towers are the four-layer net's "
                     "(joined at conv3 and the classifier), and they share one CPU, so their time per epoch measures "
                     "the arithmetic of the two nets, not two GPUs (the tables give the study runs' time per epoch, "
                     "measured beside other work).")
        if key == "pool":
            text += (" The paper's -0.4 pp is an ImageNet/AlexNet figure: this is another dataset and a far smaller "
                     "net, so it tests the mechanism, not the number.")
        if key == "fig1-epochs":
            text += (" The runs differ from the paper's also in the optimiser's settings: SGD momentum 0.9 here and "
                     "each net's own best rate.")
        L.append(text)
    L.append("")
    return L


def _single_lr_caveat(analysis: dict, key: str) -> str:
    """What the earlier study's shared rate did to its paper-regime rows, from its own records."""
    paper = analysis["regimes"]["paper"]
    base = paper["arms"].get("base", {})
    relu = paper["fig1"].get("relu", {})
    if not base or not relu or key != "lrn-single-lr":
        return ""
    spec = next(iter(base.values()))["spec"]
    drop = spec["lr_drop_epochs"][0] if spec["lr_drop_epochs"] else spec["max_epochs"]
    plateau = [p["train_top1_err"] for r in base.values() for p in r["curve"] if 2 <= p["epoch"] < drop]
    tests = [r["test_top1_err"] for r in relu.get("runs", {}).values() if r.get("test_top1_err") is not None]
    base_test = [r["test_top1_err"] for r in base.values()]
    if not plateau or not tests:
        return ""
    return (f" In the paper regime the shared rate was {spec['lr']:g}, the largest at which every arm trained after "
            f"one epoch: the rule pushes the most fragile arm to its edge. There the baseline (no LRN) sits at "
            f"{pct(min(plateau), 0)}-{pct(max(plateau), 0)} running training error from epoch 2 until the rate drops "
            f"at epoch {drop + 1} (`curves-paper.png`), and ends at {pct(min(base_test), 1)}-{pct(max(base_test), 1)} "
            f"test error, while the Figure-1 ReLU runs of the same regime at lr {relu['best_lr']:g} (no flips, no "
            f"weight decay, no rate drop) end at {pct(min(tests), 1)}-{pct(max(tests), 1)}. LRN's constant factor "
            f"({2 ** -0.75:.2f} per layer at the start, where the term is ~0) scales its arm's activations down, which "
            "may be what lets it train well there. At one shared rate the deltas cannot separate the switch from the "
            "rate; the per-arm rows and the sensitivity table do.")


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
    tuned_terms = analysis.get("tuned_lrn_terms") or {}
    sources = [(g, terms.get(g), "earlier single-lr study") for g in REGIMES]
    sources += [(g, tuned_terms[g], "at its own lr") for g in REGIMES if tuned_terms.get(g)]
    for g, t, which in sources:
        if t is None:
            L.append(f"| {REGIME_LABELS[g]} | not measured yet | | | | | | | | | |")
            continue
        run = (f"LRN arm, {which}, seed {t['seed']}" + (" (retrained)" if t["source"] == "retrained" else ""))
        for point in t["terms"]:
            for layer in point["layers"]:
                med = layer.get("p50")
                factor = None if med is None else (1 + med / layer["k"]) ** -layer["beta"]
                L.append(f"| {REGIME_LABELS[g]} | {run} | {layer['layer']} | {point['epoch']} | {_sci(med)} | "
                         f"{_sci(layer.get('p90'))} | {_sci(layer.get('p99'))} | {_sci(layer.get('p99.9'))} | "
                         f"{_sci(layer['max'])} | {layer['k']:g} | {num(factor, '.3f')} |")
        if t["source"] == "retrained":
            notes.append(f"The unit regime's committed LRN records predate this measurement, so its LRN arm was "
                         f"retrained once (seed {t['seed']}, the same settings, `probes/{UNIT_LRN_PROBE}.json`): its "
                         f"test error {pct(t['test_err'])} against the committed record's "
                         f"{pct(t['committed_test_err'])}"
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


def _sci(v) -> str:
    return num(v, ".2g")


def _throughput_gap(profile: dict | None, analysis: dict) -> list[str]:
    """Why the tanh runs trained at about half of ReLU's images/s, from ``activation-profile.json``."""
    L = ["## Seconds to 25%: why tanh trains slower per image here", ""]
    parts = []
    for g in REGIMES:
        fig1 = analysis["regimes"][g]["fig1"]
        ips = {act: [r["images_per_s"] for r in fig1.get(act, {}).get("runs", {}).values() if r.get("images_per_s")]
               for act in ("relu", "tanh")}
        if ips["relu"] and ips["tanh"]:
            parts.append(f"{REGIME_LABELS[g]}: ReLU {min(ips['relu']):,.0f}-{max(ips['relu']):,.0f}, tanh "
                         f"{min(ips['tanh']):,.0f}-{max(ips['tanh']):,.0f}")
    if parts:
        L += ["Training images/s of the Figure-1 runs at the chosen rates (" + "; ".join(parts) + "): the seconds "
              "row multiplies the epochs ratio by a speed ratio.", ""]
    if not profile:
        return L + ["The speed gap is not measured yet (`python -m bench.tools.cifar_activation_profile --out "
                    "reports/cifar10-cpu/activation-profile.md`).", ""]
    rates = profile["images_per_s"]
    r_bf16 = rates["tanh, bf16 autocast"] / rates["ReLU, bf16 autocast"]
    r_fp32 = rates["tanh, float32"] / rates["ReLU, float32"]
    ftz = rates["tanh, bf16 autocast, denormals flushed"] / rates["tanh, bf16 autocast"]
    bf16_cost = rates["ReLU, float32"] / rates["ReLU, bf16 autocast"]
    slow = any("slow_conv2d" in o["op"] for o in profile["profiles"]["ReLU, bf16 autocast"])

    def top(name: str, n: int = 4) -> str:
        return ", ".join(f"`{o['op']}` {o['ms_per_step']:.0f} ms" for o in profile["profiles"][name][:n])
    L += [f"Measured on {profile['machine']} ({profile['threads']} threads, torch {profile['torch']}, "
          f"{profile['measured']}; {'other work shared the cores, the arms took turns' if profile['shared'] else 'quiet'};"
          f" [activation-profile.md](activation-profile.md)): in float32 tanh trains at {r_fp32:.2f}x ReLU's images/s; "
          f"under bfloat16 autocast at {r_bf16:.2f}x, where ReLU runs {bf16_cost:.1f}x slower than in float32"
          + (" (its convolutions run as `aten::_slow_conv2d_*`, PyTorch's fallback where oneDNN has no bfloat16 "
             "kernel for the CPU)" if slow else "")
          + f"; flushing denormals to zero changes tanh's bfloat16 rate by {ftz:.2f}x. Most self time per step - "
          f"tanh, float32: {top('tanh, float32')}; ReLU, float32: {top('ReLU, float32')}.", ""]
    ratios = []
    for g in REGIMES:
        fig1 = analysis["regimes"][g]["fig1"]
        relu = [r["images_per_s"] for r in fig1.get("relu", {}).get("runs", {}).values() if r.get("images_per_s")]
        tanh = [r["images_per_s"] for r in fig1.get("tanh", {}).get("runs", {}).values() if r.get("images_per_s")]
        if relu and tanh:
            ratios.append(f"{min(tanh) / max(relu):.2f}-{max(tanh) / min(relu):.2f}x ({REGIME_LABELS[g]})")
    L += [f"The Figure-1 runs (on the machines of the provenance table) had tanh at {'; '.join(ratios)} of ReLU's "
          f"rate, the profile above {r_fp32:.2f}x (float32) and {r_bf16:.2f}x (bfloat16) on its own CPU: the speed ratio "
          "follows the CPU, the precision and what the convolutions cost there, not the activation's effect on "
          "learning, and the paper states its claim in epochs. The seconds to 25% are therefore no claim row; the "
          "per-run tables keep them."]
    return L + [""]


def _trials_section(analysis: dict) -> list[str]:
    trials = analysis["trials"]
    if not trials:
        return []
    chosen = next(iter(analysis["arms"].get("base", {}).values()), {}).get("spec", {}).get("lr")
    L = [f"## {REGIME_LABELS[analysis['regime']]}: the earlier single-lr study's learning rate", "",
         "The unit regime's rate (0.01) is not assumed to train here, so one rule picks the rate for every arm: the "
         "largest rate tried, from the top, at which a one-epoch trial of each arm (baseline, LRN, 2/2; seed 0; the "
         "same settings as the real run's first epoch) ends with a finite loss and a running training error at least "
         "10 pp below chance. The real runs all use that rate." + (f" Chosen: **{chosen:g}**." if chosen else ""), ""]
    L += report_kit.table(
        ["lr", "arm", "running train err after 1 epoch", "test err", "trains?"],
        ([f"{lr:g}", ARM_LABELS.get(arm, arm), pct(r["final_train_err"], 1), pct(r["test_top1_err"], 1),
          "yes" if trial_trains(r) else "diverged" if r["diverged"] else "no"]
         for lr in sorted(trials, reverse=True) for arm, r in trials[lr].items()))
    L.append("")
    return L


def _in_arm_order(by_arm: dict) -> list[tuple[str, dict]]:
    """(arm, its runs) for the arms present, in the report's arm order."""
    return [(arm, by_arm[arm]) for arm in ARM_LABELS if arm in by_arm]


def _not_measured(title: str) -> list[str]:
    """A section with nothing to show yet."""
    return [title, "", "Not measured yet.", ""]


def _fig1_section(analysis: dict, figures: dict) -> list[str]:
    fig1 = analysis["fig1"]
    title = f"## Figure 1: ReLU vs tanh, {REGIME_LABELS[analysis['regime']]}"
    if not fig1:
        return _not_measured(title)
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
         f"far; a run stops one epoch after {_stop_rule_text(fig1)} or at {spec['max_epochs']} epochs."
         + _older_stop_rule_text(fig1), ""]
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
    rows = []
    for act, info in sorted(fig1.items()):
        for lr in sorted(info["by_lr"]):
            for seed, r in sorted(info["by_lr"][lr].items()):
                chosen = " (chosen)" if lr == info["best_lr"] else ""
                rows.append([act, f"{lr:g}{chosen}", seed, _reached(r), num(per_epoch_crossing(r)),
                             num(r["seconds_to_threshold"], ".0f"), r["epochs_run"], pct(r["final_train_err"], 1),
                             pct(r["test_top1_err"], 1), num(r["images_per_s"], ",.0f")])
    L += report_kit.table(["activation", "lr", "seed", "epochs to 25%", "whole-epoch error: epochs to 25%",
                           "seconds to 25%", "epochs run", "train err at stop", "test err at stop", "images/s"], rows)
    L.append("")
    return L


def _fig1_runs(fig1: dict) -> list[dict]:
    return [r for info in fig1.values() for by_seed in info["by_lr"].values() for r in by_seed.values()]


def _stop_rule_text(fig1: dict) -> str:
    """Which crossing ends a run: runs with ``threshold_stop`` in their record wait for the whole-epoch error's
    crossing too; earlier ones stopped after the running error's alone."""
    if any(r.get("threshold_stop") for r in _fig1_runs(fig1)):
        return "the later of its running error's and its whole-epoch error's crossings"
    return "its running error's crossing"


def _older_stop_rule_text(fig1: dict) -> str:
    runs = _fig1_runs(fig1)
    older = sum(1 for r in runs if not r.get("threshold_stop"))
    if older in (0, len(runs)):
        return ""
    return (f" {older} of these {len(runs)} runs were made before that rule and stopped one epoch after the running "
            "error's crossing alone; where the whole-epoch error had not crossed by then, they have no whole-epoch "
            "figure.")


def _ablation_section(analysis: dict, figures: dict) -> list[str]:
    title = f"## LRN and overlapping pooling, earlier single-lr study, {REGIME_LABELS[analysis['regime']]}"
    arms = analysis["arms"]
    if not arms:
        return _not_measured(title)
    L = [title, "",
         f"One recipe for every arm: {_ablation_recipe(next(iter(arms.values())))}; test error on the "
         f"{next(iter(next(iter(arms.values())).values()))['data']['test_images']:,} test images after the last epoch. Each arm differs from the baseline in one switch; a seed gives every arm the "
         "same initial weights (the parameter shapes are equal) and the same batches. The paper's nets trained far "
         "longer with cuda-convnet's recipe, so absolute errors here are higher than its 11-13%.", ""]
    rows = []
    for arm, runs in _in_arm_order(arms):
        m, sd = mean_sd(r["test_top1_err"] for r in runs.values() if not _failed(r))
        per = ", ".join(f"{s}: {pct(r['test_top1_err'])}" + (" (diverged)" if r["diverged"] else
                                                               " (at chance)" if _failed(r) else "")
                        for s, r in sorted(runs.items()))
        tr, _ = mean_sd(r["final_train_err"] for r in runs.values())
        ips, _ = mean_sd(r["images_per_s"] for r in runs.values())
        rows.append([ARM_LABELS[arm], len(runs), f"{pct(m)} ({num(None if sd is None else 100 * sd)})", per,
                     pct(tr, 1), num(ips, ",.0f")])
    L += report_kit.table(["arm", "seeds", "test err mean (sd)", "per seed", "train err at end", "images/s"], rows)
    L.append("")
    fig_key = "curves" + FIG_SUFFIX[analysis["regime"]]
    if figures.get(fig_key):
        L += [f"![learning curves of the arms]({figures[fig_key]})", ""]
    return L
