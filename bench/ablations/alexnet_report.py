"""Report of the AlexNet ablation study (``python -m bench.ablations``): claim table and delta bar chart.

``claims(results)`` turns the study's per-run numbers into one row per paper claim, metric and recipe:
the paper's delta next to the measured one, ``feature on - feature off`` in percentage points of error
(negative = the feature helps), the mean of per-seed paired differences with a t-based 95% CI
(``bench.ablations.stats.paired_delta``), flagged when the interval includes zero. Seeds where either side
diverged or sat at chance are left out of the pairing and counted in the "stability" column instead,
so 'harder to train' is never turned into a number. ``write_report(results, report_dir)`` writes
``ablations_<study>.md`` and ``ablations_<study>_deltas.png``.

``python -m bench.ablations.alexnet_report runs/ablations/<study>/results.json [--report-dir reports]`` re-renders.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from bench.ablations.stats import mean_sd, paired_delta
from bench.report.claim_row import ClaimRow, Panel, PlotLine, fmt_paper, markdown_table, plot_claims
from infra import report_kit
from infra.atomic_io import write_text_atomic
from infra.errors import UsageError, check_output_folder, run_cli

# claim name, AlexNet variant with the feature switched off, paper deltas (on - off, percentage points;
# a string where the paper gives only a bound or words), where the paper says it.
ALEXNET_CLAIMS = [
    ("LRN", "no-lrn", {"top-1": -1.4, "top-5": -1.2}, "sec. 3.3"),
    ("Overlapping pooling 3/2 vs 2/2", "pool-2x2", {"top-1": -0.4, "top-5": -0.3}, "sec. 3.4"),
    ("Two GPUs vs one-GPU half-width control", "one-gpu-half", {"top-1": -1.7, "top-5": -1.2}, "sec. 3.2"),
    ("PCA colour lighting", "no-pca", {"top-1": "< -1 (\"over 1%\")"}, "sec. 4.1"),
    ("Dropout", "no-dropout", {"top-1": "not given", "train-val gap": "\"substantial overfitting\" without"},
     "sec. 4.2"),
]
METRIC_KEYS = {"top-1": "val_top1_err", "top-5": "val_top5_err", "train-val gap": "gap_top1"}
PAPER_SCALE = ("ImageNet ILSVRC-2010/2012: 1000 classes, 1.2 M training images at 256 px (227 px crops), "
               "~90 epochs, batch 128, two GTX 580 GPUs, 5-6 days")


def _good(run: dict | None) -> bool:
    return run is not None and run.get("status") == "ok"


def _stability(runs: dict[str, dict]) -> str:
    bad = {s: r.get("status") for s, r in runs.items() if r.get("status") != "ok"}
    if not bad:
        return f"{len(runs)}/{len(runs)} ok"
    parts = [f"{sum(1 for v in bad.values() if v == kind)} {kind}" for kind in ("diverged", "exploded", "at-chance")
             if any(v == kind for v in bad.values())]
    return f"{len(runs) - len(bad)}/{len(runs)} ok, " + ", ".join(parts)


def _setting(runs: list[dict], seeds: int) -> str:
    cfg = next((r.get("config") for r in runs if r.get("config")), None) or {}
    bits = [str(cfg.get("data"))]
    if cfg.get("num_classes"):
        bits[0] += f" ({cfg['num_classes']} classes, {cfg.get('train_images')} train / {cfg.get('val_images')} val)"
    if cfg.get("crop_size"):
        bits.append(f"{cfg['crop_size']} px")
    bits.append(f"{cfg.get('epochs')} epochs" + (f" (max {cfg['max_steps']} steps)" if cfg.get("max_steps") else ""))
    bits.append(f"{seeds} seeds")
    return ", ".join(bits)


def _row(claim, metric, recipe, paper, on: dict, off: dict, key: str, setting: str, where: str, unit="pp") -> ClaimRow:
    """on/off: seed -> run summary; the delta is on - off (in pp) over seeds where both sides trained."""
    vals_on = {s: r.get(key) for s, r in on.items() if _good(r)}
    vals_off = {s: r.get(key) for s, r in off.items() if _good(r)}
    d = paired_delta(vals_off, vals_on)
    return ClaimRow(claim=claim, metric=metric, recipe=recipe, paper=str(paper),
                    paper_value=paper if isinstance(paper, (int, float)) else None,
                    mean=None if d.mean is None else 100 * d.mean,
                    ci=None if d.ci is None else (100 * d.ci[0], 100 * d.ci[1]), n=d.n, seeds=tuple(d.seeds), unit=unit,
                    stability=f"on: {_stability(on)}; off: {_stability(off)}", setting=setting, where=where)


def claims(results: dict) -> list[ClaimRow]:
    """One row per (claim, metric, recipe) found in ``results``."""
    rows = []
    n_seeds = len(results.get("seeds", []))
    for recipe, variants in (results.get("alexnet") or {}).items():
        base = variants.get("baseline", {})
        for claim, variant, paper, where in ALEXNET_CLAIMS:
            if variant not in variants:
                continue
            off = variants[variant]
            setting = _setting([*base.values(), *off.values()], n_seeds)
            for metric, paper_delta in paper.items():
                rows.append(_row(claim, metric, recipe, paper_delta, base, off, METRIC_KEYS[metric], setting, where))
        crops = (results.get("crops") or {}).get(recipe)
        if crops:
            on = {s: {"status": c["status"], **c["ten_crop"]} for s, c in crops.items() if "ten_crop" in c}
            off = {s: {"status": c["status"], **c["centre"]} for s, c in crops.items() if "centre" in c}
            for metric, key in (("top-1", "val_top1_err"), ("top-5", "val_top5_err")):
                rows.append(_row("10-crop vs centre-crop test", metric, recipe, "not given (used for all results)",
                                 on, off, key, _setting(list(base.values()), n_seeds), "sec. 4.1"))
    return rows


# ----------------------------------------------------------------------------------------------------
# rendering


def fmt_measured(row: ClaimRow) -> str:
    if row.mean is None:
        return "no trained pair (see stability)"
    if row.ci is None:
        return f"{row.mean:+.2f} pp, CI n/a (1 pair)"
    return f"{row.mean:+.2f} +/- {row.half_width:.2f} pp"


def fmt_zero(row: ClaimRow) -> str:
    if row.ci is None:
        return "n/a"
    return "**yes: not resolved**" if row.includes_null else "no"


CLAIM_COLUMNS = [
    ("claim", lambda r: f"{r.claim} ({r.where})"), ("metric", lambda r: r.metric), ("recipe", lambda r: r.recipe),
    ("paper delta", fmt_paper), ("measured delta +/- 95% CI", fmt_measured), ("pairs", lambda r: r.n),
    ("CI includes 0", fmt_zero), ("verdict", lambda r: r.verdict), ("stability", lambda r: r.stability),
    ("dataset, epochs, seeds", lambda r: r.setting)]


def _pct(v) -> str:
    return report_kit.pct(None if isinstance(v, float) and math.isinf(v) else v)  # an infinite error: not measured


def _loss(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"  # a non-finite loss is shown as it is ('nan'), not as missing


def _num(v, f="{:.2f}") -> str:
    return "never" if v is None else f.format(v)


def render_markdown(results: dict, rows: list[ClaimRow], figures: dict[str, str]) -> str:
    L = [f"# Ablation study `{results['study']}`: error-rate deltas against the paper", "",
         f"Command: `{results.get('command', '')}`  ",
         f"Machine: {results.get('machine')}; study wall time {results.get('seconds', 0):.0f} s; "
         f"seeds {results.get('seeds')}; runs in `{results.get('study_dir')}`.", "",
         "## Scale: the paper vs this study", "",
         f"- Paper: {PAPER_SCALE}.",
         "- This study: see the 'dataset, epochs, seeds' column. Deltas measured at this scale are evidence about "
         "the mechanisms, not a reproduction of the ImageNet numbers; a budget of a few epochs favours whatever "
         "trains fastest early.", "",
         "## Claims", "",
         "Delta = error with the feature - error without it (negative: the feature helps), in percentage points, "
         "final epoch, validation split. Measured: mean of per-seed paired differences +/- half-width of the "
         "t-based 95% confidence interval. 'CI includes 0' = the study does not resolve the sign. Seeds where "
         "either side diverged, exploded or sat at chance (see the status definitions below) are excluded from the pairing and "
         "counted under stability.", ""]
    L += markdown_table(rows, CLAIM_COLUMNS)
    L.append("")
    if figures.get("deltas"):
        L += [f"![measured vs paper deltas]({figures['deltas']})", ""]

    if results.get("alexnet"):
        L += ["## AlexNet runs", "",
              "Status: ok | diverged (non-finite loss; stopped) | exploded (final training loss > 10 ln C) | "
              "at-chance (final val top-1 error >= 1 - 1.5/C: collapsed, or not learning yet at this budget). "
              "Only ok runs enter the deltas.", ""]
        run_rows = []
        for recipe, variants in results["alexnet"].items():
            for variant, runs in variants.items():
                for seed, r in runs.items():
                    status = r["status"] + (f" at {r['diverged_at']}" if r.get("diverged_at") else "")
                    run_rows.append([recipe, variant, seed, status, _pct(r["val_top1_err"]), _pct(r["val_top5_err"]),
                                  _pct(r["train_top1_err"]), report_kit.signed_pp(r.get("gap_top1")),
                                  _loss(r.get("train_loss")), r["epochs_run"], _num(r.get("seconds"), "{:.0f}")])
        L += report_kit.table(["recipe", "variant", "seed", "status", "val top-1 err", "val top-5 err", "train top-1 err",
                               "train-val gap", "train loss", "epochs", "seconds"], run_rows)
        L.append("")
        for recipe, variants in results["alexnet"].items():
            L.append(f"Variant means, recipe {recipe} (ok seeds only): " + "; ".join(
                f"{v} {_mean_pct([r['val_top1_err'] for r in runs.values() if _good(r)])}"
                for v, runs in variants.items()))
            L.append("")
    if results.get("lr_grid"):
        g = results["lr_grid"]
        L += [f"LR grid on the baseline (seed {g['seed']}): " + ", ".join(
            f"lr {lr}: {r['status']} {_pct(r['val_top1_err'])}" for lr, r in g["runs"].items())
            + f" -> recipe lr-best uses lr {g['best_lr']}.", ""]
    if results.get("crops"):
        L += ["## Centre crop vs 10 crops (same baseline checkpoints)", "",
              "| recipe | seed | centre top-1 | 10-crop top-1 | centre top-5 | 10-crop top-5 |", "|---|---|---|---|---|---|"]
        for recipe, seeds in results["crops"].items():
            for seed, c in seeds.items():
                if "centre" not in c:
                    L.append(f"| {recipe} | {seed} | {c['status']} | | | |")
                    continue
                L.append(f"| {recipe} | {seed} | {_pct(c['centre']['val_top1_err'])} | {_pct(c['ten_crop']['val_top1_err'])} | "
                         f"{_pct(c['centre']['val_top5_err'])} | {_pct(c['ten_crop']['val_top5_err'])} |")
        L.append("")
    return "\n".join(L) + "\n"


def _mean_pct(vals) -> str:
    m, sd = mean_sd(vals)
    if m is None:
        return "n/a"
    return report_kit.pct(m) + ("" if sd is None else f" (sd {100 * sd:.2f})")


def plot_deltas(rows: list[ClaimRow], path: Path) -> bool:
    """Each (claim, metric): the paper's delta beside each recipe's measured delta with its 95% CI."""
    pp = [r for r in rows if r.unit == "pp"]
    groups = list(dict.fromkeys((r.claim, r.metric) for r in pp))
    recipes = list(dict.fromkeys(r.recipe for r in pp))
    by_key = {(r.claim, r.metric, r.recipe): r for r in pp}
    lines = [_plot_line(claim, metric, [by_key.get((claim, metric, recipe)) for recipe in recipes])
             for claim, metric in groups]
    panels = [Panel(lines, "error with feature - without (pp)")] if lines else []
    series = [(f"measured ({recipe})", f"C{i}") for i, recipe in enumerate(recipes)]
    return plot_claims(path, panels, series, "Ablation deltas: paper vs measured (95% CI, paired by seed)")


def _plot_line(claim: str, metric: str, rows: list[ClaimRow | None]) -> PlotLine:
    """The paper's figure of a claim; "over 1%" is drawn at its bound."""
    paper = next(r for r in rows if r is not None)
    bound = paper.paper_value is None and paper.paper.startswith("< -1")
    return PlotLine(f"{claim}\n{metric}", -1.0 if bound else paper.paper_value, rows, bound=bound)


def write_report(results: dict, report_dir: Path) -> list[Path]:
    """Write the Markdown report and its plots; return the paths written."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = "ablations_" + re.sub(r"[^A-Za-z0-9._-]+", "_", results["study"])
    rows = [r if isinstance(r, ClaimRow) else ClaimRow.from_dict(r) for r in results.get("claims") or ()] \
        or claims(results)
    written, figures = [], {}
    deltas = report_dir / f"{stem}_deltas.png"
    if plot_deltas(rows, deltas):
        written.append(deltas)
        figures["deltas"] = deltas.name
    md = report_dir / f"{stem}.md"
    write_text_atomic(md, render_markdown(results, rows, figures))
    return [md, *written]


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ablations.alexnet_report", description="Re-render an ablation report.")
    p.add_argument("results", help="runs/ablations/<study>/results.json")
    p.add_argument("--report-dir", default="reports")
    a = p.parse_args(argv)

    def body():
        path = Path(a.results)
        check_output_folder(a.report_dir, "--report-dir")
        try:
            results = json.loads(path.read_text())
            results["claims"] = claims(results)
        except FileNotFoundError:
            raise UsageError(f"{path} does not exist; pass the results.json of a finished study") from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path} is not a results.json of bench.ablations ({type(exc).__name__}: {exc})") from None
        for written in write_report(results, Path(a.report_dir)):
            print(f"wrote {written}")
    return run_cli(p.prog, body)


if __name__ == "__main__":
    sys.exit(cli())
