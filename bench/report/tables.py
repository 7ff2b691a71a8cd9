"""Markdown tables of a run: kernels (time cold and warm, % of the binding roof, GB/s, speedups with
their 95 % intervals), memory, models.

A backend or case that was not measured shows as an empty cell ("gap"), never as an error.
"""
from __future__ import annotations


import pandas as pd

from infra import report_kit

from kernels.backends import BACKENDS

KERNEL_CASE = ["op", "shape_name", "dtype", "memory_format", "direction"]


fmt = report_kit.cell  # a cell: numbers formatted, missing values blank


def markdown(frame: pd.DataFrame, formats: dict | None = None) -> str:
    """A GitHub Markdown table of ``frame``; ``formats`` maps column -> spec."""
    return report_kit.frame_table(frame, formats)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _backend_sort(frame: pd.DataFrame, by: list[str], backend_col: str) -> pd.DataFrame:
    order = {b: i for i, b in enumerate(BACKENDS)}
    frame = frame.assign(_b=frame[backend_col].map(lambda b: order.get(b, len(order))))
    return frame.sort_values(by + ["_b"]).drop(columns="_b")


def _with_interval(frame: pd.DataFrame, field: str) -> pd.Series:
    """``ratio [low, high]`` where the run kept its rounds, else the ratio alone."""
    values, low, high = _col(frame, field), _col(frame, f"{field}_lo"), _col(frame, f"{field}_hi")

    def cell(v, lo, hi):
        if v is None or pd.isna(v):
            return ""
        text = f"{v:.2f}"
        return text + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None and not pd.isna(lo)
                       and not pd.isna(hi) else "")
    return pd.Series([cell(v, lo, hi) for v, lo, hi in zip(values, low, high)], index=frame.index, dtype=object)


def _pct_roof(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """% of the binding roof with the roof's kind; above 100 % it is flagged as a yardstick problem."""
    pct, bound = _col(frame, f"{prefix}pct_roof"), _col(frame, f"{prefix}roof")

    def cell(p, b):
        if p is None or pd.isna(p):
            return ""
        text = f"{p:.0f} ({'mem' if b == 'memory' else 'fma' if b == 'compute' else b})"
        return text + " **> 100: roof not a bound**" if p > 100 else text
    return pd.Series([cell(p, b) for p, b in zip(pct, bound)], index=frame.index, dtype=object)


def kernel_table(kernels: pd.DataFrame) -> str:
    if kernels.empty:
        return "_no kernel results_\n"
    k = _backend_sort(kernels, KERNEL_CASE, "backend")
    table = pd.DataFrame({
        "op": k["op"], "shape": k["shape_name"], "dtype": k["dtype"], "layout": k["memory_format"],
        "dir": k["direction"], "backend": k["backend"],
        "cold us": k["time_s"] * 1e6,
        "IQR us": (_col(k, "time_q3_s") - _col(k, "time_q1_s")) * 1e6,
        "warm us": _col(k, "warm_time_s") * 1e6,
        "% roof cold": _pct_roof(k, ""), "% roof warm": _pct_roof(k, "warm_"),
        "GB/s": _col(k, "gbps"),
        "x eager [95% CI]": _with_interval(k, "speedup_vs_eager"),
        "x compile [95% CI]": _with_interval(k, "speedup_vs_compile"),
        "x best-layout eager": _col(k, "speedup_vs_best_eager"),
        "rounds": _col(k, "rounds"),
        "max err out": _col(k, "check_out_max_abs_err"), "max err grad": _col(k, "check_grad_max_abs_err"),
    })
    return markdown(table, {"cold us": ".1f", "IQR us": ".1f", "warm us": ".1f", "GB/s": ".1f",
                            "x best-layout eager": ".2f", "rounds": ".0f", "max err out": ".2g",
                            "max err grad": ".2g"})


def kernel_pivot(kernels: pd.DataFrame, value: str = "pct_roof", spec: str = ".1f") -> str:
    """One row per case, one column per backend; a backend not measured leaves a gap."""
    if kernels.empty or value not in kernels:
        return "_no kernel results_\n"
    pivot = kernels.pivot_table(index=KERNEL_CASE, columns="backend", values=value, aggfunc="first")
    pivot = pivot.reindex(columns=[b for b in BACKENDS if b in pivot.columns]).reset_index()
    return markdown(pivot, {b: spec for b in BACKENDS})


def memory_table(kernels: pd.DataFrame, models: pd.DataFrame) -> str:
    parts = []
    k = kernels[kernels["direction"] == "fwdbwd"] if not kernels.empty else kernels
    if not k.empty:
        k = _backend_sort(k, KERNEL_CASE, "backend")
        parts.append("### Kernels, forward+backward\n\nSaved = bytes autograd keeps for the backward beyond "
                     "input and output; peak = allocated-memory delta during forward+backward (GPU: the caching "
                     "allocator's peak; CPU: PyTorch's CPU allocator, from torch.profiler).\n")
        parts.append(markdown(pd.DataFrame({
            "op": k["op"], "shape": k["shape_name"], "dtype": k["dtype"], "layout": k["memory_format"],
            "backend": k["backend"], "saved MiB": _col(k, "saved_bytes") / 2**20,
            "peak MiB": _col(k, "peak_mem_bytes") / 2**20,
        }), {"saved MiB": ".3g", "peak MiB": ".3g"}))
    m = models[models["mode"] == "train"] if not models.empty else models
    if not m.empty:
        parts.append("### Model training step\n\nPeak = allocated-memory delta over one step (parameters and "
                     "optimizer state excluded; GPU: the caching allocator's peak; CPU: PyTorch's CPU allocator, from torch.profiler).\n")
        parts.append(markdown(_model_frame(m)[["variant", "kernels", "layout", "batch", "precision", "compiled",
                                               "peak MiB"]], {"peak MiB": ".0f", "batch": ".0f"}))
    return "\n".join(parts) if parts else "_no memory results_\n"


def _mfu_cell(pct) -> str:
    """MFU as text; above 100 % the compute yardstick was beaten, which the cell says."""
    if pct is None or pd.isna(pct):
        return ""
    return f"{pct:.1f}" + (" **> 100: yardstick not a bound**" if pct > 100 else "")


def _model_frame(m: pd.DataFrame) -> pd.DataFrame:
    m = m.sort_values(["mode", "variant", "batch", "amp", "channels_last", "layout", "kernels", "compile_model"])
    return pd.DataFrame({
        "variant": m["variant"], "kernels": m["kernels"], "layout": m["layout"] + m["devices"].map(
            lambda d: " (2 devices)" if d == "two" else ""),
        "batch": m["batch"], "mode": m["mode"],
        "precision": m["amp"].map(lambda a: "bf16 autocast" if a == "bf16" else "fp32")
        + m["channels_last"].map(lambda c: ", channels_last" if c else ""),
        "compiled": m["compile_model"].map(lambda c: "whole model" if c else ""),
        "images/s": m["images_per_s"], "ms/step": m["time_s"] * 1e3,
        "IQR ms": (_col(m, "time_q3_s") - _col(m, "time_q1_s")) * 1e3,
        "TFLOP/s": _col(m, "tflops"), "MFU %": _col(m, "mfu_pct").map(_mfu_cell),
        "peak MiB": _col(m, "peak_mem_bytes") / 2**20,
        "x eager [95% CI]": _with_interval(m, "speedup_vs_eager"),
        "x best-layout eager [95% CI]": _with_interval(m, "speedup_vs_best_eager"),
        "x compile [95% CI]": _with_interval(m, "speedup_vs_compile"),
    })


def model_table(models: pd.DataFrame) -> str:
    if models.empty:
        return "_no model results_\n"
    return markdown(_model_frame(models), {
        "batch": ".0f", "images/s": ".1f", "ms/step": ".2f", "IQR ms": ".2f", "TFLOP/s": ".2f",
        "peak MiB": ".0f"})
