"""Markdown tables of a run: kernels (time, GB/s, % of copy bandwidth, speedups), memory, models.

A backend or case that was not measured shows as an empty cell ("gap"), never as an error.
"""
from __future__ import annotations


import pandas as pd

from alexnet import report_kit

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


def kernel_table(kernels: pd.DataFrame) -> str:
    if kernels.empty:
        return "_no kernel results_\n"
    k = _backend_sort(kernels, KERNEL_CASE, "backend")
    table = pd.DataFrame({
        "op": k["op"], "shape": k["shape_name"], "dtype": k["dtype"], "layout": k["memory_format"],
        "dir": k["direction"], "backend": k["backend"],
        "median us": k["time_s"] * 1e6,
        "IQR us": (_col(k, "time_q3_s") - _col(k, "time_q1_s")) * 1e6,
        "GB/s": _col(k, "gbps"), "% copy BW": _col(k, "pct_copy_bw"),
        "x eager": _col(k, "speedup_vs_eager"), "x compile": _col(k, "speedup_vs_compile"),
        "rounds": _col(k, "rounds"),
        "max err out": _col(k, "check_out_max_abs_err"), "max err grad": _col(k, "check_grad_max_abs_err"),
    })
    return markdown(table, {"median us": ".1f", "IQR us": ".1f", "GB/s": ".1f", "% copy BW": ".1f",
                            "x eager": ".2f", "x compile": ".2f", "rounds": ".0f", "max err out": ".2g",
                            "max err grad": ".2g"})


def kernel_pivot(kernels: pd.DataFrame, value: str = "pct_copy_bw", spec: str = ".1f") -> str:
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
        "TFLOP/s": _col(m, "tflops"), "MFU %": _col(m, "mfu_pct"),
        "peak MiB": _col(m, "peak_mem_bytes") / 2**20,
        "x eager": _col(m, "speedup_vs_eager"), "x compile": _col(m, "speedup_vs_compile"),
    })


def model_table(models: pd.DataFrame) -> str:
    if models.empty:
        return "_no model results_\n"
    return markdown(_model_frame(models), {
        "batch": ".0f", "images/s": ".1f", "ms/step": ".2f", "IQR ms": ".2f", "TFLOP/s": ".2f",
        "MFU %": ".1f", "peak MiB": ".0f", "x eager": ".2f", "x compile": ".2f"})
