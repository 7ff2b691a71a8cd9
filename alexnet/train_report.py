"""The report of one training run: its learning curves (``plot_curves``) and a short Markdown summary
(``render_report``) of its summary.json."""
from __future__ import annotations

import json
from pathlib import Path

from infra import report_kit


def plot_curves(history: list[dict], path: Path) -> Path | None:
    """Loss (left) and top-1 error (right) per epoch, training and validation; None without epochs."""
    if not history:
        return None
    plt = report_kit.pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for ax, key, what in ((loss_ax, "loss", "loss"), (err_ax, "top1_err", "top-1 error")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="training (running)")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    report_kit.save_figure(fig, path, tight=False)  # laid out by its "constrained" engine
    return path


def render_report(summary: dict, curves: str | None = None) -> str:
    """A short human-readable summary of one run (Markdown), with its learning curves when plotted."""
    cfg, hist = summary["config"], summary["history"]
    last = hist[-1] if hist else {}
    pct = report_kit.pct
    lines = [f"# AlexNet training run: {summary['out_dir']}", "",
             f"Command: `{summary['command']}`", ""]
    if summary["diverged"]:
        lines += [f"**Diverged** (non-finite loss) at {summary['diverged_at']}; the last checkpoint is from before.", ""]
    lines += report_kit.table(
        ["epochs", "steps", "final train loss", "final val loss", "val top-1 err", "val top-5 err", "best val top-1 err",
         "images/s (last epoch)"],
        [[len(hist), summary["steps"], f"{last.get('train_loss', float('nan')):.4f}",
          f"{last.get('val_loss', float('nan')):.4f}", pct(last.get("val_top1_err")), pct(last.get("val_top5_err")),
          pct(summary["best_val_top1_err"]), f"{last.get('images_per_s', float('nan')):.1f}"]])
    lines.append("")
    if curves:
        lines += [f"![learning curves: loss and top-1 error per epoch]({curves})", ""]
    if hist:
        rows = []
        for h in hist:
            mem = "not measured" if h["peak_mem_bytes"] is None else ", ".join(
                f"{d}: {b / 2**30:.2f} GiB" for d, b in h["peak_mem_bytes"].items())
            rows.append([h["epoch"], f"{h['train_loss']:.4f}", pct(h["train_top1_err"]), f"{h['val_loss']:.4f}",
                         pct(h["val_top1_err"]), f"{h['lr']:.3g}", f"{h['grad_norm']:.3g}", f"{h['images_per_s']:.1f}",
                         mem])
        lines += report_kit.table(["epoch", "train loss", "train top-1 err", "val loss", "val top-1 err", "lr",
                                   "grad norm", "images/s", "peak memory"], rows)
        lines.append("")
    keys = ("kernels", "layout", "width", "devices", "data", "image_size", "crop_size", "batch_size", "lr", "epochs",
            "max_steps", "amp", "init", "seed", "num_parameters", "train_images", "val_images")
    lines += ["## Config", "", *[f"- {k}: `{cfg.get(k)}`" for k in keys], f"- model: `{json.dumps(cfg['model'])}`", "",
              "## Machine", "", *[f"- {k}: {v}" for k, v in summary["machine"].items()], ""]
    return "\n".join(lines)

