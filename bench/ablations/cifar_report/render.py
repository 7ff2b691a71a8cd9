"""Writing the study's report folder (``write_report``: ``<out>/README.md`` and its PNGs) and the command
line, ``python -m bench.ablations.cifar_report [OUT] [--update-readme README.md]`` (``cli``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.ablations.cifar_report.analysis import analyse
from bench.ablations.cifar_report.markdown import render_markdown
from infra.atomic_io import write_text_atomic
from infra.errors import run_cli
from functools import partial

from bench.ablations.cifar_report.plots import plot_curves, plot_deltas, plot_figure1, plot_sensitivity
from bench.ablations.cifar_report.readme import update_readme
from bench.ablations.cifar_report.records import DEFAULT_OUT, FIG_SUFFIX, REGIMES, load_study

def write_report(out: str | Path) -> list[Path]:
    """Write ``<out>/README.md`` and its plots from ``<out>/runs``; return the paths written."""
    out = Path(out)
    loaded = load_study(out)
    analysis = analyse(loaded)
    written, figures = [], {}
    plots = [("deltas", plot_deltas, analysis), ("sensitivity", plot_sensitivity, analysis)]
    for g in REGIMES:
        plots += [("figure1" + FIG_SUFFIX[g], plot_figure1, analysis["regimes"][g]),
                  ("curves" + FIG_SUFFIX[g], plot_curves, analysis["regimes"][g]),
                  ("curves-tuned" + FIG_SUFFIX[g], partial(plot_curves, source="tuned"), analysis["regimes"][g])]
    for key, plot, part in plots:
        path = out / f"{key}.png"
        if plot(part, path):
            written.append(path)
            figures[key] = path.name
    if (out / "throughput.md").is_file():  # written by bench.tools.cifar_throughput, linked when present
        figures["throughput"] = "throughput.md"
    if (out / "throughput-towers.md").is_file():  # bench.tools.cifar_throughput --arms towers
        figures["throughput_towers"] = "throughput-towers.md"
    if (out / "activation-profile.md").is_file():  # written by bench.tools.cifar_activation_profile
        figures["activation_profile"] = "activation-profile.md"
    md = write_text_atomic(out / "README.md", render_markdown(loaded, analysis, figures))
    return [md, *written]


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
