"""Matplotlib PNGs of a run, made from saved results only (re-plotting never re-runs anything).

One compact figure per question, none taller than 1.5x its width (``MAX_ASPECT``), one row per case:

* ``bandwidth.png``: heatmap of % of each case's binding roof (CPU, cold caches) or of the measured copy
  bandwidth (GPU), cases x backends, a panel per direction; the scale ends at 100 % and cells above it
  are red.
* ``speedup.png``: dot plot of each backend's speedup over torch.compile (log scale, 1x line, every
  point inside the frame).
* ``memory_saved.png`` / ``memory_peak.png``: heatmaps of the bytes saved for the backward and of the
  peak memory of forward+backward, per case and backend (one quantity per file).
* ``model_throughput.png`` / ``model_inference.png``: AlexNet training steps and inference, images/s
  and peak memory side by side.
* ``batch_scaling.png``: images/s against batch size.
Cases are AlexNet's sites (conv1, conv2, conv5; the batch sweep stays in the tables). Every title says
when the run was CPU-only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from infra import report_kit
from kernels.backends import BACKENDS as _OWN_BACKENDS
from kernels.catalog import OPS

plt = report_kit.pyplot()

BACKENDS = tuple(_OWN_BACKENDS) + ("openvino", "onnxruntime")  # the CPU peers, where a run has them


def _title(text: str, cpu: bool) -> str:
    return text + (" [CPU]" if cpu else "")


def _save(fig, path: Path, tight: bool = True) -> Path:
    return report_kit.save_figure(fig, path, tight=tight)


SITES = ("conv1", "conv2", "conv5")  # AlexNet's activations (batch 128 on a GPU, 16 on a CPU); sweeps stay in tables
ROW_INCHES = 0.24  # one case per row: readable at 100% zoom with 7-8 pt labels
MAX_ASPECT = 1.5  # no figure taller than 1.5x its width


def _figsize(width: float, rows: int, extra: float = 1.6) -> tuple[float, float]:
    height = max(rows * ROW_INCHES + extra, 2.6)
    return max(width, height / MAX_ASPECT), height


def _log_ticks(ax) -> None:
    """Plain-number speed-up ticks (0.5x, 1x, 2x, ...) on a log x axis: at most five labels, always 1x."""
    report_kit.log_ticks(ax, suffix="x", max_labels=5)


def _short(dtype: str) -> str:
    return dtype.replace("bfloat", "bf").replace("float", "f")


def _row_label(frame: pd.DataFrame) -> pd.Series:
    return (frame["op"] + " " + frame["shape_name"] + " " + frame["dtype"].map(_short) + " "
            + frame["memory_format"].str.replace("channels_last", "cl"))


def _site_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Cases at AlexNet's sites (or the CPU shapes), ordered op, site, dtype, layout."""
    at_sites = frame[frame["shape_name"].isin(SITES)]
    ops = {o: i for i, o in enumerate(OPS)}
    return at_sites.assign(_o=at_sites["op"].map(ops)).sort_values(
        ["_o", "shape_name", "dtype", "memory_format"]).drop(columns="_o")


def _backends(frame: pd.DataFrame) -> list[str]:
    return [b for b in BACKENDS if b in set(frame["backend"])]


def _palette() -> dict:
    return {name: f"C{i}" for i, name in enumerate(BACKENDS)}  # a backend keeps its colour in every plot


def bandwidth_plot(kernels: pd.DataFrame, copy_gbps: float | None, cpu: bool, path: Path) -> Path | None:
    """Heatmap: % of each case's binding roof (a CPU run: cold caches, ``pct_roof``; a GPU run: % of the
    measured copy bandwidth), one row per case, one column per backend; a panel per direction. The colour
    scale ends at 100 %: a cell above it is drawn red with its number, a yardstick problem, not a result.
    Empty cell: not measured."""
    value = "pct_roof" if "pct_roof" in kernels and kernels["pct_roof"].notna().any() else "pct_copy_bw"
    if kernels.empty or value not in kernels:
        return None
    k = _site_order(kernels)
    if k.empty:
        return None
    k = k.assign(row=_row_label(k))
    directions = [d for d in ("fwd", "fwdbwd") if (k["direction"] == d).any()]
    backends = _backends(k)
    rows = list(dict.fromkeys(k["row"]))
    fig, axes = plt.subplots(1, len(directions), figsize=_figsize(3.2 + 2.6 * len(directions) + 0.5 * len(backends)
                                                                  * len(directions), len(rows)), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(over="red")
    image = None
    for ax, direction in zip(axes[0], directions):
        grid = (k[k["direction"] == direction].pivot_table(index="row", columns="backend", values=value,
                                                            aggfunc="first").reindex(index=rows, columns=backends))
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap=cmap, vmin=0, vmax=100)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 55 or v > 100 else "black", fontweight="bold" if v > 100 else None)
        ax.set_xticks(range(len(backends)), backends, fontsize=8, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [""] * len(rows), fontsize=7)
        ax.set_title("forward" if direction == "fwd" else "forward + backward", fontsize=9)
    if value == "pct_roof":
        label = "% of the binding roof (cold caches)"
        title = "% of each case's binding roof: a copy of its bytes or its FMA count, cold caches; red: > 100 %"
    else:
        label = "% of measured copy bandwidth"
        title = "% of measured copy bandwidth" + (f" (copy: {copy_gbps:.0f} GB/s)" if copy_gbps else "")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.6, label=label, extend="max")
    fig.suptitle(_title(title, cpu), fontsize=10)
    return _save(fig, path, tight=False)


def speedup_plot(kernels: pd.DataFrame, cpu: bool, path: Path) -> Path | None:
    """Dot plot: each backend's speedup over torch.compile (over eager when compile did not run), one row per
    case, a panel per direction, log scale with the 1x line."""
    col = next((c for c in ("speedup_vs_compile", "speedup_vs_eager") if c in kernels and kernels[c].notna().any()),
               None)
    if kernels.empty or col is None:
        return None
    k = _site_order(kernels).dropna(subset=[col])
    if k.empty:
        return None
    k = k.assign(row=_row_label(k))
    base = "torch.compile" if col == "speedup_vs_compile" else "eager"
    directions = [d for d in ("fwd", "fwdbwd") if (k["direction"] == d).any()]
    rows = list(dict.fromkeys(k["row"]))
    fig, axes = plt.subplots(1, len(directions), figsize=_figsize(3.0 + 3.6 * len(directions), len(rows)),
                             squeeze=False, sharey=True, layout="constrained")
    palette = _palette()
    for ax, direction in zip(axes[0], directions):
        sub = k[k["direction"] == direction]
        for backend in _backends(sub):
            b = sub[sub["backend"] == backend]
            ax.plot(b[col], [rows.index(r) for r in b["row"]], "o", color=palette[backend], label=backend, ms=5)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        low, high = float(min(sub[col].min(), 1.0)), float(max(sub[col].max(), 1.0))
        ax.set_xlim(low / 1.35, high * 1.35)  # every point inside the frame, the 1x line included
        _log_ticks(ax)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(f"speedup over {base} (log; >1 faster)", fontsize=8)
        ax.set_title("forward" if direction == "fwd" else "forward + backward", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=len(labels))
    fig.suptitle(_title(f"Speedup over {base}, same run", cpu), fontsize=10)
    return _save(fig, path, tight=False)


MEMORY_QUANTITIES = {  # value -> (what, file name)
    "peak_mem_bytes": ("peak allocated above the start during forward+backward", "memory_peak.png"),
    "saved_bytes": ("bytes autograd saves for the backward", "memory_saved.png"),
}


def memory_plot(kernels: pd.DataFrame, cpu: bool, path: Path, value: str = "saved_bytes") -> Path | None:
    """Heatmap of one forward+backward memory quantity (``MEMORY_QUANTITIES``: each has its own file, so a
    name always means the same quantity), one row per case, one column per backend."""
    if kernels.empty or value not in kernels:
        return None
    k = _site_order(kernels[kernels["direction"] == "fwdbwd"])
    if k.empty or not k[value].notna().any():
        return None
    k = k.assign(row=_row_label(k), mib=k[value] / 2**20)
    rows, backends = list(dict.fromkeys(k["row"])), _backends(k)
    grid = k.pivot_table(index="row", columns="backend", values="mib", aggfunc="first").reindex(index=rows,
                                                                                                columns=backends)
    fig, ax = plt.subplots(figsize=_figsize(3.2 + 0.8 * len(backends) + 1.5, len(rows)), layout="constrained")
    data = grid.to_numpy(dtype=float)
    image = ax.imshow(data, aspect="auto", cmap="magma_r")
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                    color="white" if v > np.nanmax(data) * 0.55 else "black")
    ax.set_xticks(range(len(backends)), backends, fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    what = MEMORY_QUANTITIES[value][0]
    fig.colorbar(image, ax=ax, shrink=0.7, label="MiB")
    ax.set_title(_title(f"Forward+backward memory: {what}", cpu), fontsize=10)
    return _save(fig, path, tight=False)


def _model_series(m: pd.DataFrame) -> pd.Series:
    return m["kernels"] + m["compile_model"].map(lambda c: "+compile(model)" if c else "")


MODE_TEXT = {"train": "training step", "infer": "inference"}


def model_throughput_plot(models: pd.DataFrame, cpu: bool, path: Path, mode: str = "train") -> Path | None:
    """AlexNet in one mode (``train`` or ``infer``): images/s (left) and peak memory (right) side by side,
    one row per configuration and kernels backend (whole-model compile marked), fastest first."""
    m = models[models["mode"] == mode] if not models.empty else models
    if m.empty:
        return None
    m = m.assign(label=m["variant"] + " " + m["kernels"] + m["compile_model"].map(lambda c: "+compile" if c else "")
                 + " b" + m["batch"].astype(int).astype(str) + " " + m["amp"].map(lambda a: "bf16" if a == "bf16" else "fp32")
                 + m["channels_last"].map(lambda c: " cl" if c else "") + " " + m["layout"]
                 + m["devices"].map(lambda d: " 2dev" if d == "two" else ""))
    m = m.drop_duplicates("label").sort_values("images_per_s")
    palette = _palette()
    colors = [palette.get(k, "C9") for k in m["kernels"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=_figsize(12.0, len(m), extra=2.2), sharey=True,
                                      layout="constrained")
    y = np.arange(len(m))
    left.barh(y, m["images_per_s"], color=colors, hatch=None)
    for yi, (v, compiled) in enumerate(zip(m["images_per_s"], m["compile_model"])):
        left.text(v, yi, f" {v:,.0f}" + (" (compiled)" if compiled else ""), va="center", fontsize=7)
    left.set_xlim(0, float(m["images_per_s"].max()) * 1.3)  # room for the value labels
    left.set_yticks(y, m["label"], fontsize=7)
    left.set_xlabel(f"images/s ({MODE_TEXT[mode]})", fontsize=8)
    mem = m["peak_mem_bytes"] / 2**30 if "peak_mem_bytes" in m else pd.Series([np.nan] * len(m))
    if mem.notna().any():
        right.barh(y, mem.fillna(0), color=colors)
        right.set_xlabel("peak memory of a call (GiB above the start; CPU: PyTorch's allocator)", fontsize=8)
    else:
        right.text(0.5, 0.5, "no memory statistics in this run", ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
    from matplotlib.patches import Patch

    shown = [k for k in BACKENDS if k in set(m["kernels"])]
    fig.legend([Patch(color=palette[k]) for k in shown], [f"{k} kernels" for k in shown], fontsize=7,
               loc="outside lower center", ncol=len(shown))
    fig.suptitle(_title(f"AlexNet {MODE_TEXT[mode]}: throughput and memory", cpu), fontsize=10)
    return _save(fig, path, tight=False)


def batch_scaling_plot(models: pd.DataFrame, cpu: bool, path: Path) -> Path | None:
    if models.empty:
        return None
    m = models[(models["variant"] == "paper") & (models["devices"] == "one")]
    m = m.assign(series=_model_series(m) + " " + m["mode"] + " " + m["layout"] + " "
                 + m["amp"].map(lambda a: "bf16" if a == "bf16" else "fp32")
                 + m["channels_last"].map(lambda c: " cl" if c else ""))
    series = [s for s, g in m.groupby("series") if g["batch"].nunique() >= 2]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in series:
        g = m[m["series"] == name].sort_values("batch").drop_duplicates("batch")
        ax.plot(g["batch"], g["images_per_s"], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s")
    ax.legend(fontsize=7)
    ax.set_title(_title("AlexNet images/s against batch size", cpu), fontsize=10)
    return _save(fig, path)
