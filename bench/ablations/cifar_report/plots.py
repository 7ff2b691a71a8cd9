"""The study's figures (matplotlib, ``infra.report_kit``'s style): ``plot_figure1`` (the paper's Figure 1:
training error against epochs, ReLU vs tanh), ``plot_deltas`` (each claim's measured effect with its 95%
interval beside the paper's figure), ``plot_curves`` (the arms' learning curves) and ``plot_sensitivity``
(each claim's effect at every rate of the learning-rate grid). Each returns False, writing nothing, when
there is nothing to plot.
"""
from __future__ import annotations

from pathlib import Path

from bench.ablations.cifar_report.analysis import CLAIM_KEYS, CLAIM_TEXT, _row
from bench.ablations.cifar_report.records import ARM_LABELS, REGIME_LABELS, REGIMES
from bench.report.claim_row import Panel, PlotLine, plot_claims
from infra import report_kit

RATIO_TICKS = (0.25, 0.5, 1, 2, 3, 4, 6, 8, 16, 32)  # the Figure-1 ratio axis of plot_deltas (log)

def plot_figure1(analysis: dict, path: Path) -> bool:
    """Training error against epochs, ReLU solid, tanh dashed, one line per seed (the paper's Figure 1)."""
    fig1 = analysis["fig1"]
    if not any(info["runs"] for info in fig1.values()):
        return False
    plt = report_kit.pyplot()
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
    report_kit.save_figure(fig, path)
    return True


DELTA_LABELS = {"lrn": "LRN,\nper-arm lr", "pool": "3/2 vs 2/2 pooling,\nper-arm lr",
                "towers": "two towers vs one\nhalf-width, per-arm lr", "lrn-single-lr": "LRN,\nearlier single lr",
                "pool-single-lr": "3/2 vs 2/2 pooling,\nearlier single lr"}
RATIO_LABELS = {"fig1-epochs": "Figure 1, quarter-epoch windows:\ntanh / ReLU epochs",
                "fig1-whole": "Figure 1, whole-epoch error:\ntanh / ReLU epochs"}


def plot_deltas(analysis: dict, path: Path) -> bool:
    """Each claim's measured effect with its 95% interval beside the paper's figure, one marker per regime:
    deltas (pp) on the left, the Figure-1 ratios on the right (log scale)."""
    measured = {(k, g): r for k in CLAIM_KEYS for g in REGIMES
                if (r := _row(analysis, g, k)) is not None and r.mean is not None}

    def lines(labels: dict) -> list[PlotLine]:
        """One line per claim measured in some regime, the paper's figure from its rows."""
        rows = {k: [measured.get((k, g)) for g in REGIMES] for k in labels}
        return [PlotLine(labels[k], next(r for r in rs if r).paper_value, rs) for k, rs in rows.items() if any(rs)]
    panels = [Panel(lines(DELTA_LABELS), "test error, feature on - off (pp)"),
              Panel(lines(RATIO_LABELS), "ratio (1 = no speed-up)", null=1.0, log_ticks=RATIO_TICKS)]
    series = [(REGIME_LABELS[g], color) for g, color in zip(REGIMES, ("C0", "C2"))]
    return plot_claims(path, [p for p in panels if p.lines], series,
                       "Measured effects vs the paper, both regimes (4-layer CNN, CPU)")


def plot_curves(analysis: dict, path: Path, source: str = "arms") -> bool:
    """Training error (running) and test error against epochs for each arm, one thin line per seed; ``source``
    "arms" (the earlier single-lr study) or "tuned" (the per-arm protocol's claim runs, each arm's own lr)."""
    arms = analysis[source]
    if not arms:
        return False
    plt = report_kit.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for i, arm in enumerate(a for a in ARM_LABELS if a in arms):
        for j, (seed, r) in enumerate(sorted(arms[arm].items())):
            label = f"{ARM_LABELS[arm]}, lr {r['spec']['lr']:g}" if j == 0 else None
            axes[0].plot([p["epoch"] for p in r["curve"]], [p["train_top1_err"] for p in r["curve"]], color=f"C{i}",
                         lw=0.9, alpha=0.8, label=label)
            axes[1].plot([p["epoch"] for p in r["test_curve"]], [p["test_top1_err"] for p in r["test_curve"]],
                         "o-", color=f"C{i}", lw=0.9, ms=2.5, alpha=0.8, label=label)
    for ax, what in zip(axes, ("training error (running)", "test error")):
        ax.set_xlabel("epochs")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.legend(fontsize=6, loc="upper right")
    what = "earlier single-lr study" if source == "arms" else "each arm at its own lr"
    fig.suptitle(f"The arms, {what}, {REGIME_LABELS[analysis['regime']]}, one line per seed", fontsize=10)
    report_kit.save_figure(fig, path)
    return True


def plot_sensitivity(analysis: dict, path: Path) -> bool:
    """Each claim's effect at every rate of the grid (both arms at that rate), one panel per claim, one line
    per regime: validation-error deltas after the trial budget (pp), Figure 1's tanh/ReLU ratio (log)."""
    keys = [k for k in ("lrn", "pool", "towers", "fig1-epochs")
            if any(analysis["regimes"][g]["sensitivity"].get(k, {}).get("rows") for g in REGIMES)]
    if not keys:
        return False
    plt = report_kit.pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ratio = key == "fig1-epochs"
        for g, color in zip(REGIMES, ("C0", "C2")):
            sens = analysis["regimes"][g]["sensitivity"].get(key)
            if not sens:
                continue
            pts = [r for r in sens["rows"] if r["mean"] is not None]
            ax.plot([r["lr"] for r in pts], [r["mean"] for r in pts], "o-", color=color, lw=1.2, ms=4,
                    label=REGIME_LABELS[g] + (" (depends on lr)" if sens["flips"] else ""))
            for r in pts:
                if r.get("ci"):
                    ax.plot([r["lr"]] * 2, r["ci"], color=color, lw=2.5, alpha=0.6)
                if r.get("bound"):
                    ax.annotate("^" if r["bound"] == ">=" else "v", (r["lr"], r["mean"]), color=color, fontsize=8,
                                ha="center", va="bottom" if r["bound"] == ">=" else "top")
        ax.axhline(1.0 if ratio else 0.0, color="k", lw=0.8)
        ax.set_xscale("log")
        lrs = sorted({r["lr"] for g in REGIMES for r in analysis["regimes"][g]["sensitivity"].get(key, {}).get("rows", [])})
        ax.set_xticks(lrs)
        ax.set_xticklabels([f"{v:g}" for v in lrs], rotation=45, fontsize=7)
        ax.minorticks_off()
        if ratio:
            ax.set_yscale("log")
            values = [r["mean"] for g in REGIMES for r in analysis["regimes"][g]["sensitivity"].get(key, {}).get("rows", [])
                      if r["mean"] is not None] + [1.0]
            ax.set_ylim(min(values) / 1.4, max(values) * 1.4)  # room for the bound markers
            report_kit.log_ticks(ax, "y", ticks=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 16), suffix="x")
            ax.set_ylabel("tanh / ReLU epochs to 25% (^ v: bounds)", fontsize=8)
        else:
            difference = CLAIM_TEXT[key][1].split(", ", 1)[-1].replace(" (pp)", "")  # e.g. "with - without"
            ax.set_ylabel(f"validation error (pp),\n{difference}", fontsize=8)
        ax.set_xlabel("learning rate (both arms)", fontsize=8)
        ax.set_title(CLAIM_TEXT[key][0].split(" (")[0], fontsize=8)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Each claim's effect at every rate of the grid", fontsize=10)
    report_kit.save_figure(fig, path)
    return True
