"""Render ``reports/cifar10-cpu/conv-local.md`` (+ learning-curve PNGs) from the conv-local run records alone.

Per schedule: each net's absolute test error per seed and the mean beside the paper's 13% / 11%
(single-view = centre crop, multi-view = 10 views), the paired LRN delta (11pct - 13pct, same seeds) with
its 95% t interval (``bench.ablations.stats.paired_delta``), the LRN probe (``alpha * sum a^2`` against
``k = 1``), throughput and wall time per epoch; a run without a record reads "not measured yet".
"""
from __future__ import annotations

import json
from pathlib import Path

from alexnet.conv_local import ARMS
from bench.ablations.stats import mean_sd, paired_delta
from infra import machine
from infra.atomic_io import write_text_atomic
from infra.report_kit import num, pct, pyplot, save_figure, signed_pp, table

# epochs per phase (train on 1-4, fold in 5, lr/10, lr/100) and evaluate-every, per schedule; the runner's too
SCHEDULES = {"full": ((350, 150, 10, 10), 5), "short": ((35, 15, 1, 1), 1)}
# --plan study: short seeds 0, 1 and 2 of both nets, then full seed 0 of both (bench.ablations.conv_local)
STUDY_PLAN = [("short", arm, seed) for seed in (0, 1, 2) for arm in ARMS] + [("full", arm, 0) for arm in ARMS]
STUDY_BUDGET_CPU_HOURS = 14  # what the study was given when it was set, on a 2-core machine

PAPER = {"13pct": 0.13, "11pct": 0.11}
# the 11pct net with its cmrnorm layers (cpp kernels) trains at >= this fraction of its speed without them
NORMALISED_SPEED_TARGET = 0.9
NOT_YET = "not measured yet"
SCHEDULE_TEXT = {
    "full": "350 + 150 + 10 + 10 epochs (batches 1-4; fold in batch 5; lr/10; lr/100), as the layer-params file states",
    "short": "35 + 15 + 1 + 1 epochs: one tenth of each phase of the full schedule, fixed before any run",
}


def load_records(records: Path) -> dict:
    """{schedule: {arm: {seed: record}}} from ``records/<schedule>/<arm>/seed<k>.json``."""
    out: dict = {}
    for path in sorted(Path(records).glob("*/*/seed*.json")):
        rec = json.loads(path.read_text())
        spec = rec["spec"]
        out.setdefault(spec["schedule"], {}).setdefault(spec["arm"], {})[spec["seed"]] = rec
    return out


def _seed_table(runs: dict) -> list[str]:
    rows = []
    for arm in ARMS:
        arm_runs = runs.get(arm, {})
        if not arm_runs:
            rows.append([arm, NOT_YET, "", "", "", "", "", pct(PAPER[arm], 0)])
            continue
        for seed, rec in sorted(arm_runs.items()):
            per_epoch = rec["wall_seconds"] / max(rec["epochs_run"], 1)
            rows.append([arm, seed, rec["epochs_run"], pct(rec["test_err"]), pct(rec["test_err_multiview"]),
                         pct(rec["final_train_err"]), f"{num(rec['images_per_s'], '.0f')} img/s, {num(per_epoch, '.1f')} s/epoch",
                         pct(PAPER[arm], 0)])
        for key, label in (("test_err", "single"), ("test_err_multiview", "multi")):
            m, sd = mean_sd(r[key] for r in arm_runs.values() if r.get(key) is not None)
            spread = "one seed" if sd is None else f"sd {num(100 * sd)} pp"
            cell = f"{pct(m)} ({spread})"
            rows.append([arm, f"mean ({label}-view, n={len(arm_runs)})", "",
                         cell if label == "single" else "", cell if label == "multi" else "", "", "",
                         pct(PAPER[arm], 0)])
    return table(["net", "seed", "epochs", "test error, single-view", "test error, multi-view",
                  "last-epoch training error", "throughput (training steps)", "paper"], rows) + [
        "", "Throughput and s/epoch are each run's own, over all its epochs and wall time (evaluation included): "
        "the study's runs take one thread each beside other work, so they sit below the quiet figures of the "
        "speed table above, which are the ones to compare."]


def _lrn_delta(runs: dict, key: str):
    """The paired LRN delta (11pct - 13pct, same seeds) of one error column."""
    return paired_delta({s: r[key] for s, r in runs.get("13pct", {}).items()},
                        {s: r[key] for s, r in runs.get("11pct", {}).items()})


def _delta_lines(runs: dict) -> list[str]:
    lines = []
    for key, label in (("test_err", "single-view"), ("test_err_multiview", "multi-view")):
        d = _lrn_delta(runs, key)
        if d.n == 0:
            lines.append(f"- {label}: {NOT_YET} (no seed has both nets)")
        elif d.ci is None:
            lines.append(f"- {label}: {signed_pp(d.mean)} (n=1, seed {d.seeds[0]}; no interval from one pair)")
        else:
            lines.append(f"- {label}: {signed_pp(d.mean)}, 95% interval [{signed_pp(d.ci[0])}, {signed_pp(d.ci[1])}] "
                         f"over seeds {d.seeds} (paper: -2 pp)")
    return lines


def _probe_lines(runs: dict) -> list[str]:
    rows = []
    for seed, rec in sorted(runs.get("11pct", {}).items()):
        for probe in rec.get("lrn_probe", []):
            for layer in probe["layers"]:
                rows.append([seed, probe["epoch"], layer["layer"], num(layer["p50"], ".3g"), num(layer["p90"], ".3g"),
                             num(layer["p99"], ".3g"), num(layer["max"], ".3g"), num(layer["k"], "g")])
    if not rows:
        return [NOT_YET]
    return table(["seed", "after epoch", "layer", "median alpha*sum", "p90", "p99", "max", "k"], rows)


def _curves(runs: dict, schedule: str, out_dir: Path) -> Path | None:
    if not any(runs.get(arm) for arm in ARMS):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = {"13pct": "tab:blue", "11pct": "tab:red"}
    for arm in ARMS:
        for seed, rec in sorted(runs.get(arm, {}).items()):
            rows = rec["epochs"]
            label = f"{arm} seed {seed}"
            axes[0].plot([r["epoch"] for r in rows], [100 * r["train_err"] for r in rows], color=colours[arm],
                         alpha=0.8, lw=1, label=label)
            tested = [r for r in rows if "test_err" in r]
            axes[1].plot([r["epoch"] for r in tested], [100 * r["test_err"] for r in tested], color=colours[arm],
                         alpha=0.8, lw=1, marker="." if len(tested) < 60 else None, label=label)
    for ax, title in zip(axes, ("training error (random crops, running)", "test error (centre crop)")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for arm, err in PAPER.items():
        axes[1].axhline(100 * err, color=colours[arm], ls="--", lw=0.8)
    axes[0].set_ylabel("top-1 error (%)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"conv-local nets, schedule '{schedule}' (dashed: the paper's 13% and 11%)")
    return save_figure(fig, out_dir / f"conv-local-{schedule}-curves.png")


def _load_sentence(speed: dict) -> str:
    """What the 1-minute load average said about the machine around the speed run."""
    before, after = speed["loadavg_before"][0], speed["loadavg_after"][0]
    cores = speed["machine"].get("cpu_usable_cores") or speed["machine"].get("cpu_logical_cores")
    said = f"load average {before:.1f} before, {after:.1f} after, on {cores} cores"
    if machine.shared_load(before):
        return (f"The machine was shared with other work ({said}): absolute figures are pessimistic; the variants "
                "were interleaved so their ratios are fairer than their absolute values.")
    return f"Nothing else ran beside it ({said}; the run's own threads raise the figure after)."


def _variant(r: dict) -> tuple:
    """A speed result's key: net, precision, backend, and ``cmrnorm`` (None: as the cfg has it; records
    written before the no-cmrnorm variant existed have no such field)."""
    return r["arm"], r["amp"], r["backend"], r.get("cmrnorm")


def _net_name(r: dict) -> str:
    return r["arm"] + (" without cmrnorm" if r.get("cmrnorm") is False else "")


def _speed_target_line(speed: dict) -> str:
    """The 11pct net's speed with its cmrnorm layers against the same net without them (cpp, float32), round
    by round: the rounds are interleaved, so round i of one pairs with round i of the other. Met when every
    round's ratio is at least the target, missed when none is, unresolved otherwise."""
    by = {_variant(r): r for r in speed["results"]}
    norm, plain = by.get(("11pct", "off", "cpp", None)), by.get(("11pct", "off", "cpp", False))
    what = (f"Target: the 11pct net trains at >= {NORMALISED_SPEED_TARGET:.1f}x the images/s of the same net without "
            "its two cmrnorm layers, both with the cpp kernels in float32")
    if norm is None or plain is None:
        return f"{what}: {NOT_YET}."
    ratios = sorted(b / a for a, b in zip(norm["round_seconds"], plain["round_seconds"]))  # same images per round
    median = norm["images_per_s"] / plain["images_per_s"]
    status = ("met" if ratios[0] >= NORMALISED_SPEED_TARGET else
              "missed" if ratios[-1] < NORMALISED_SPEED_TARGET else "unresolved (the rounds straddle it)")
    return (f"{what}: **{median:.2f}x** at the median rates (paired rounds {ratios[0]:.3f}x to {ratios[-1]:.3f}x), "
            f"{status}.")


def _speed_lines(records: Path) -> list[str]:
    """The speed section, from ``<records>/speed.json`` (``bench.ablations.conv_local_speed``)."""
    path = Path(records) / "speed.json"
    if not path.is_file():
        return [f"Training-step speed: {NOT_YET} (`python -m bench.ablations.conv_local_speed`)."]
    speed = json.loads(path.read_text())
    m = speed["machine"]
    lines = [f"Measured by `{speed['command']}` on {speed['date_utc']}: {m.get('cpu_model')}, "
             f"{m.get('torch_threads')} threads, torch {m.get('torch')}; batch {speed['batch']} of real 24x24 crops, "
             f"forward + backward + update, median of {speed['rounds']} interleaved rounds of {speed['steps']} steps. "
             + _load_sentence(speed), ""]
    base = next((r["images_per_s"] for r in speed["results"] if _variant(r) == ("13pct", "off", "cpp", None)), None)
    rows = []
    for r in speed["results"]:
        fit, fold = 40_000 / r["images_per_s"], 50_000 / r["images_per_s"]
        rows.append([_net_name(r), "bf16 autocast" if r["amp"] == "bf16" else "float32", r["backend"],
                     num(r["images_per_s"], ".0f"), num(r.get("images_per_cpu_s"), ".0f"),
                     num(None if base is None else r["images_per_s"] / base, ".2f"), f"{fit:.0f} / {fold:.0f}"])
    lines += table(["net", "precision", "pool/LRN backend", "images/s", "images per CPU-second", "vs 13pct float32 cpp",
                    "s per epoch (40k / 50k images, training steps only)"], rows)
    lines += ["", _speed_target_line(speed)]
    lines += ["", "Training images per run (epochs x 40,000 on batches 1-4, x 50,000 after the fold-in) and the hours "
              "they take at these rates (training steps only; evaluation adds a forward pass over 20,000 images "
              "at each evaluated epoch), at the median round and at the fastest round:", ""]
    est, cpu_hours = [], {}
    for r in speed["results"]:
        if r["amp"] != "off" or r["backend"] != "cpp" or r.get("cmrnorm") is False:  # the study's nets only
            continue
        best = speed["steps"] * speed["batch"] / min(r["round_seconds"])
        for name, (epochs, _) in SCHEDULES.items():
            images = epochs[0] * 40_000 + sum(epochs[1:]) * 50_000
            per_cpu_s = r.get("images_per_cpu_s")
            cpu_hours[(name, r["arm"])] = images / per_cpu_s / 3600 if per_cpu_s else None
            est.append([r["arm"], name, f"{images / 1e6:.2f} M", num(images / r["images_per_s"] / 3600, ".1f"),
                        num(images / best / 3600, ".1f"), num(cpu_hours[(name, r["arm"])], ".1f")])
    lines += table(["net", "schedule", "training images", "hours at the median rate", "hours at the fastest round",
                    "CPU-hours (images per CPU-second)"], est)
    planned = [cpu_hours.get((schedule, arm)) for schedule, arm, _ in STUDY_PLAN]
    if planned and None not in planned:
        full = sum(cpu_hours[("full", arm)] for arm in ARMS)
        lines += ["", f"The planned study (`--plan study`: short seeds 0-2 and full seed 0 of both nets) takes about "
                      f"{sum(planned):.0f} CPU-hours of training steps at these rates, the full pair alone about "
                      f"{full:.0f}, against the {STUDY_BUDGET_CPU_HOURS} CPU-hours it was given: the full schedule does "
                      "not fit that budget on this CPU, and it runs past it rather than being cut, so that each net's "
                      "absolute error is measured on the published schedule."]
    for arm, ops in speed["top_ops"].items():
        lines += ["", f"Top ops of a {arm} training step (float32, cpp; self CPU time per step):", ""]
        lines += table(["op", "ms per step", "share", "calls per step"],
                       [[o["op"], num(o["self_ms_per_step"], ".1f"), pct(o["share"], 0), num(o["calls_per_step"], "g")]
                        for o in ops])
    return lines


README_SECTION = "conv-local"  # the README block readme_rows fills (<!-- conv-local:begin --> ... end)


def _delta_cell(runs: dict, key: str) -> str:
    d = _lrn_delta(runs, key)
    if d.n == 0:
        return NOT_YET
    if d.ci is None:
        return f"{signed_pp(d.mean)} (one pair)"
    return f"**{signed_pp(d.mean)}** (95% CI [{signed_pp(d.ci[0])}, {signed_pp(d.ci[1])}]; {d.n} pairs)"


def readme_rows(records: Path, report_link: str) -> str:
    """The README's summary of the study, from the records alone: per schedule, each net's mean test
    error (single-view, multi-view) beside the paper's, and the paired LRN delta."""
    data = load_records(records)
    rows = []
    for schedule in ("full", "short"):
        runs = data.get(schedule, {})
        for arm in ARMS:
            arm_runs = runs.get(arm, {})
            cells = [NOT_YET, ""]
            if arm_runs:
                cells = []
                for key in ("test_err", "test_err_multiview"):
                    m, _ = mean_sd(r[key] for r in arm_runs.values() if r.get(key) is not None)
                    cells.append(f"**{pct(m)}**")
            rows.append([f"`{schedule}`", arm, len(arm_runs), *cells, pct(PAPER[arm], 0)])
        rows.append([f"`{schedule}`", "11pct - 13pct (paired by seed)", min(len(runs.get(a, {})) for a in ARMS),
                     _delta_cell(runs, "test_err"), _delta_cell(runs, "test_err_multiview"),
                     signed_pp(PAPER["11pct"] - PAPER["13pct"], 0)])
    epochs = {k: " + ".join(str(e) for e in v[0]) for k, v in SCHEDULES.items()}
    intro = (f"cuda-convnet's conv-local nets on CIFAR-10 (the paper's 13% -> 11%), test error, mean over seeds; schedules "
             f"`full` ({epochs['full']} epochs, as published) and `short` ({epochs['short']}, one tenth of each phase). "
             f"Per seed, curves, where LRN acts and the training speed: [{report_link}]({report_link}).")
    return "\n".join([intro, "", *table(["schedule", "net", "seeds", "test error, single-view",
                                          "test error, multi-view (10 views)", "paper"], rows)])


def render_report(records: Path, report: Path) -> Path:
    """Write ``report`` (and its PNGs beside it) from the records under ``records``; returns the path."""
    data = load_records(records)
    report = Path(report)
    lines = ["# LRN on CIFAR-10 as the paper measured it: cuda-convnet's conv-local nets", "",
             "Generated by `python -m bench.ablations.conv_local --report-only` from the run records in "
             f"`{records}` (one JSON per run: settings, per-epoch errors, machine, versions). Nets, recipe and "
             "update rule: `alexnet/conv_local.py`, `alexnet/convnet_sgd.py`, `bench/ablations/conv_local_train.py` "
             "(transcribed from cuda-convnet, commit e4ac0c1f of github.com/dnouri/cuda-convnet). The paper "
             "(section 3.3): 13% test error without normalization, 11% with it.", ""]
    machines = sorted({f"{r['machine'].get('cpu_model')}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}, "
                       f"torch {r['machine'].get('torch')}"
                       for sched in data.values() for arm in sched.values() for r in arm.values()})
    lines += ["Machine(s) of the runs: " + ("; ".join(machines) if machines else NOT_YET) + ".", ""]
    lines += ["## Training speed", "", *_speed_lines(records), ""]
    for schedule in ("full", "short"):
        runs = data.get(schedule, {})
        lines += [f"## Schedule `{schedule}`: {SCHEDULE_TEXT[schedule]}", "", *_seed_table(runs), "",
                  "Paired LRN delta (11pct - 13pct test error, same seeds):", "", *_delta_lines(runs), ""]
        png = _curves(runs, schedule, report.parent)
        lines += [f"![learning curves, {schedule}]({png.name})" if png else f"Learning curves: {NOT_YET}.", ""]
        lines += ["Where LRN acts (11pct; `alpha * sum a^2` over the 9-channel window at the normalization's input, "
                  "256 training images, centre crop; the divisor is `(k + alpha*sum)^0.75` with k = 1):", "",
                  *_probe_lines(runs), ""]
    write_text_atomic(report, "\n".join(lines))
    return report
