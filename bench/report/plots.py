"""Matplotlib PNGs of a run, made from saved results only (re-plotting never re-runs anything).

* ``bandwidth.png``: achieved GB/s per kernels backend and case, with the measured copy bandwidth
  (the roofline for these memory-bound ops) as a line.
* ``speedup.png``: speedup over eager and over compile per backend and case.
* ``memory.png``: forward+backward peak memory (GPU) or autograd-saved bytes (CPU) per backend.
* ``model_throughput.png``: AlexNet images/s per kernels backend and layout.
* ``batch_scaling.png``: images/s against batch size.
Every title says when the run was CPU-only.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kernels.backends import BACKENDS  # noqa: E402


def _title(text: str, cpu: bool) -> str:
    return text + (" [CPU run: code-path check, not GPU performance]" if cpu else "")


def _save(fig, path: Path) -> Path:
    """Lay out, write the PNG and free the figure (every plot ends this way)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _case_label(frame: pd.DataFrame) -> pd.Series:
    return (frame["shape_name"] + "\n" + frame["dtype"].str.replace("bfloat", "bf").str.replace("float", "f")
            + " " + frame["memory_format"].str.replace("channels_last", "cl"))


def _grouped_bars(ax, frame: pd.DataFrame, value: str, label_col: str = "case", series_col: str = "backend"):
    """Bars of ``value`` per label, one colour per series; a missing combination is a gap."""
    labels = list(dict.fromkeys(frame[label_col]))
    series = [s for s in BACKENDS if s in set(frame[series_col])] + sorted(
        set(frame[series_col]) - set(BACKENDS))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(labels))
    names = list(BACKENDS) + [s for s in series if s not in BACKENDS]
    palette = {name: f"C{i % 10}" for i, name in enumerate(names)}  # a backend keeps its colour in every plot
    for i, name in enumerate(series):
        sub = frame[frame[series_col] == name].set_index(label_col)[value]
        heights = [float(sub.get(lbl, np.nan)) if lbl in sub.index else np.nan for lbl in labels]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name, color=palette.get(name))
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=6)
    ax.legend(fontsize=8)


def _fig_width(n: int) -> float:
    return min(max(8.0, 1.2 * n), 80.0)


def _panels(kernels: pd.DataFrame) -> list[tuple[str, str]]:
    """(op, direction) pairs present, one subplot each, so wide GPU matrices stay readable."""
    ops = [o for o in ("relu_lrn", "max_pool", "relu_lrn_pool", "unfused") if o in set(kernels["op"])]
    return [(o, d) for o in ops for d in ("fwd", "fwdbwd")
            if ((kernels["op"] == o) & (kernels["direction"] == d)).any()]


def _panel_figure(kernels: pd.DataFrame, panels):
    widest = max(kernels[(kernels["op"] == o) & (kernels["direction"] == d)]["case"].nunique() for o, d in panels)
    return plt.subplots(len(panels), 1, figsize=(_fig_width(widest), 3.6 * len(panels)), squeeze=False)


def bandwidth_plot(kernels: pd.DataFrame, copy_gbps: float | None, cpu: bool, path: Path) -> Path | None:
    if kernels.empty or "gbps" not in kernels:
        return None
    k = kernels.assign(case=_case_label(kernels))
    panels = _panels(k)
    fig, axes = _panel_figure(k, panels)
    for ax, (op, direction) in zip(axes[:, 0], panels):
        _grouped_bars(ax, k[(k["op"] == op) & (k["direction"] == direction)], "gbps")
        if copy_gbps:
            ax.axhline(copy_gbps, color="black", linestyle="--", linewidth=1)
            ax.text(0.0, copy_gbps, f" measured copy {copy_gbps:.0f} GB/s", va="bottom", fontsize=8)
        ax.set_ylabel("GB/s (minimal bytes / time)")
        ax.set_title(_title(f"Achieved bandwidth: {op}, {direction}", cpu), fontsize=10)
    return _save(fig, path)


def speedup_plot(kernels: pd.DataFrame, cpu: bool, path: Path) -> Path | None:
    cols = [c for c in ("speedup_vs_eager", "speedup_vs_compile") if c in kernels and kernels[c].notna().any()]
    if kernels.empty or not cols:
        return None
    k = kernels.assign(case=_case_label(kernels))
    panels = [(op, d, col) for op, d in _panels(k) for col in cols]
    fig, axes = _panel_figure(k, [(op, d) for op, d, _ in panels])
    for ax, (op, direction, col) in zip(axes[:, 0], panels):
        sub = k[(k["op"] == op) & (k["direction"] == direction)].dropna(subset=[col])
        if sub.empty:
            ax.set_axis_off()
            continue
        _grouped_bars(ax, sub, col)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylabel(col.replace("_", " ") + " (log)")
        ax.set_title(_title(f"{op}, {direction}: {col.replace('_', ' ')} (same run)", cpu), fontsize=10)
    return _save(fig, path)


def memory_plot(kernels: pd.DataFrame, cpu: bool, path: Path) -> Path | None:
    if kernels.empty:
        return None
    k = kernels[kernels["direction"] == "fwdbwd"]
    value = "peak_mem_bytes" if "peak_mem_bytes" in k and k["peak_mem_bytes"].notna().any() else "saved_bytes"
    if k.empty or value not in k or not k[value].notna().any():
        return None
    k = k.assign(case=k["op"] + "\n" + _case_label(k), mib=k[value] / 2**20).dropna(subset=["mib"])
    fig, ax = plt.subplots(figsize=(_fig_width(k["case"].nunique()), 4.5))
    _grouped_bars(ax, k, "mib")
    what = "peak allocated delta" if value == "peak_mem_bytes" else "bytes saved for backward"
    ax.set_ylabel(f"MiB ({what})")
    ax.set_title(_title(f"Forward+backward memory: {what}", cpu), fontsize=10)
    return _save(fig, path)


def _model_series(m: pd.DataFrame) -> pd.Series:
    return m["kernels"] + m["compile_model"].map(lambda c: "+compile(model)" if c else "")


def model_throughput_plot(models: pd.DataFrame, cpu: bool, path: Path) -> Path | None:
    if models.empty:
        return None
    m = models.assign(
        series=_model_series(models),
        config=models["mode"] + " b" + models["batch"].astype(int).astype(str) + "\n"
        + models["variant"] + " " + models["layout"] + models["devices"].map(lambda d: " 2dev" if d == "two" else "")
        + "\n" + models["amp"].map(lambda a: "bf16" if a == "bf16" else "fp32")
        + models["channels_last"].map(lambda c: " cl" if c else ""),
    )
    m = m.drop_duplicates(subset=["config", "series"])
    fig, ax = plt.subplots(figsize=(_fig_width(m["config"].nunique()), 5))
    _grouped_bars(ax, m, "images_per_s", label_col="config", series_col="series")
    ax.set_ylabel("images/s")
    ax.set_title(_title("AlexNet images/s per kernels backend and layout", cpu), fontsize=10)
    return _save(fig, path)


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
