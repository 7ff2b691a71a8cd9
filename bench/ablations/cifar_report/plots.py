"""The study's figures (matplotlib, ``alexnet.report_kit``'s style): ``plot_figure1`` (the paper's Figure 1:
training error against epochs, ReLU vs tanh), ``plot_deltas`` (each claim's measured effect with its 95%
interval beside the paper's figure) and ``plot_curves`` (the LRN and pooling arms' learning curves). Each
returns False, writing nothing, when there is nothing to plot.
"""
from __future__ import annotations

from pathlib import Path

from alexnet import report_kit
from bench.ablations.cifar_report.analysis import CLAIM_KEYS, _row
from bench.ablations.cifar_report.records import ARM_LABELS, REGIME_LABELS, REGIMES

RATIO_TICKS = (0.25, 0.5, 1, 2, 4, 8, 16, 32)  # the Figure-1 ratio axis of plot_deltas (log scale)

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


def plot_deltas(analysis: dict, path: Path) -> bool:
    """Each claim's measured effect with its 95% interval beside the paper's figure, one marker per regime:
    deltas (pp) on the left, the Figure-1 ratios on the right (log scale)."""
    keys = [k for k in CLAIM_KEYS if k != "fig1-seconds"]
    measured = {(k, g): r for k in keys for g in REGIMES
                if (r := _row(analysis, g, k)) is not None and r["measured"]["mean"] is not None}
    if not measured:
        return False
    plt = report_kit.pyplot()
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
            ax.set_xscale("log")
            report_kit.log_ticks(ax, "x", ticks=RATIO_TICKS)
            ax.set_xlabel("ratio (1 = no speed-up)", fontsize=8)
        else:
            ax.set_xlabel("test error, with - without (pp)", fontsize=8)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Measured effects vs the paper, both regimes (4-layer CNN, CPU)", fontsize=10)
    report_kit.save_figure(fig, path)
    return True


def plot_curves(analysis: dict, path: Path) -> bool:
    """Training error (running) and test error against epochs for each arm, one thin line per seed."""
    arms = analysis["arms"]
    if not arms:
        return False
    plt = report_kit.pyplot()
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
    report_kit.save_figure(fig, path)
    return True
