"""The project README's block of the study: ``readme_block`` (the claim rows of both regimes with their
caveats) and ``update_readme``, which fills the README's ``<!-- cifar10-cpu:begin -->`` ...
``<!-- cifar10-cpu:end -->`` section with it (``infra.report_kit.update_section``).
"""
from __future__ import annotations

from pathlib import Path

from bench.ablations.cifar_report.analysis import _ablation_recipe, analyse
from bench.ablations.cifar_report.markdown import _machines, headline_rows
from bench.ablations.cifar_report.records import REGIME_LABELS, REGIMES, load_study
from infra import report_kit

README_SECTION = "cifar10-cpu"
README_BEGIN, README_END = report_kit.section_markers(README_SECTION)  # <!-- cifar10-cpu:begin/end -->


def _date_span(invocations: list[dict]) -> str:
    """The days the study's invocations ran, first to last (UTC dates)."""
    days = sorted({str(i[key])[:10] for i in invocations for key in ("started", "finished") if i.get(key)})
    if not days:
        return "?"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def readme_block(out: Path) -> str:
    """The claim rows of both regimes and their caveats (machine, precision, budget, dates, command) for the README."""
    loaded = load_study(out)
    analysis = analyse(loaded)
    inv = loaded["study"].get("invocations", [])
    m = inv[-1].get("machine", {}) if inv else {}
    budgets = []
    for g in REGIMES:
        part = analysis["regimes"][g]
        tuned, arms = part["tuned"], part["arms"]
        if tuned:
            budgets.append(f"{REGIME_LABELS[g]}: each arm at its own rate, {_schedule(tuned)}")
        if arms:
            budgets.append(f"{REGIME_LABELS[g]}, earlier single-lr study: {_ablation_recipe(next(iter(arms.values())))}")
        if not tuned and not arms:
            budgets.append(f"{REGIME_LABELS[g]}: not measured yet")
    lines = [f"The paper's CIFAR-10 claims on its four-layer CNN, measured on a CPU ({_machines(inv)}, "
             f"torch {m.get('torch')}; "
             f"{_precisions(loaded['runs'])}; "
             f"{_date_span(inv)}), in two regimes: inputs scaled to unit variance "
             "with PyTorch's initialisation, and the paper's own (cuda-convnet: mean-subtracted 0-255 pixels, "
             "Gaussian init std 1e-4 conv1, 1e-2 elsewhere). Per-arm rows: each arm's own learning rate, the lowest "
             "validation error (training images held out) of one grid after a short budget; rows marked *earlier "
             "single-lr study* ran every arm at one shared rate. LRN, pooling, towers: " + "; ".join(budgets)
             + ", far shorter than the paper's training. 95% intervals, paired by seed; details, the effect at every "
             "rate of the grid, where LRN actually normalises, and every run's record: "
             f"[`{out.as_posix()}/`]({out.as_posix()}/README.md).",
             "", *headline_rows(analysis)]
    return "\n".join(lines)


def _precisions(runs: dict) -> str:
    """The precision of the runs, per protocol where they differ (a study may move to a CPU without bfloat16)."""
    names = {"bf16": "bfloat16 autocast, LRN in float32", "off": "float32"}
    by = {}
    for name, rec in runs.items():
        which = "per-arm runs" if ("/tuned/" in f"/{name}" or "/lr-grid/" in f"/{name}") else "earlier runs"
        by.setdefault(names.get(rec["spec"].get("amp", "off"), "float32"), set()).add(which)
    if len(by) <= 1:
        return next(iter(by), "float32")
    return ", ".join(f"{p} ({' and '.join(sorted(w))})" for p, w in by.items())


def _schedule(tuned: dict) -> str:
    spec = next(iter(next(iter(tuned.values())).values()))["spec"]
    drops = spec["lr_drop_epochs"]
    return (f"{spec['max_epochs']} epochs" + (", rate / 10 from epoch " + " and ".join(str(e + 1) for e in drops)
                                                if drops else ", constant rate"))


def update_readme(readme: Path, out: Path) -> None:
    """Fill ``readme``'s cifar10-cpu section with ``readme_block(out)``; the rest of the file stays as it is. A
    file without exactly one such section raises ``report_kit.SectionError`` (a ``UsageError``) naming it."""
    report_kit.update_section(readme, README_SECTION, readme_block(Path(out)))
