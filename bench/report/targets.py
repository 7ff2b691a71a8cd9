"""The project's performance targets, checked against one saved run (ratios within that run).

``evaluate(run)`` returns one row per target and case: the measured ratio, the requirement, and
``met`` / ``not met`` / ``not measured`` (a case or baseline absent from the run, e.g. on a CPU run
where AlexNet's real shapes and GPU memory statistics do not exist). ``summary`` folds them into
one row per target.
"""
from __future__ import annotations

import pandas as pd

TARGET_SHAPES = ("conv1", "conv2")
OWN_BACKENDS = ("triton", "cpp")


def _row(target, case, value, required, ok):
    status = "not measured" if value is None or ok is None else ("met" if ok else "not met")
    return {"target": target, "case": case, "measured": value, "required": required, "status": status}


def _get(frame: pd.DataFrame, **where) -> pd.Series | None:
    if frame.empty:
        return None
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        if key not in frame:
            return None
        mask &= frame[key].astype(str) == str(value)
    hits = frame[mask]
    return None if hits.empty else hits.iloc[0]


def _val(row, key):
    if row is None or key not in row.index:
        return None
    value = row[key]
    return None if pd.isna(value) else float(value)


def kernel_targets(k: pd.DataFrame) -> list[dict]:
    rows = []
    for dtype in ("float32", "bfloat16"):
        for shape in TARGET_SHAPES:
            for fmt in ("nchw", "channels_last"):
                case = f"{shape} {dtype} {fmt}"
                where = dict(op="relu_lrn", shape_name=shape, dtype=dtype, memory_format=fmt)
                r = _get(k, backend="triton", direction="fwd", **where)
                pct = _val(r, "pct_copy_bw")
                rows.append(_row("relu_lrn fwd >= 85% of copy bandwidth", case, pct, ">= 85 %",
                                 None if pct is None else pct >= 85))
                t = _val(_get(k, backend="triton", direction="fwdbwd", **where), "time_s")
                c = _val(_get(k, backend="compile", direction="fwdbwd", **where), "time_s")
                ratio = c / t if t and c else None
                rows.append(_row("relu_lrn fwd+bwd >= 3x compile", case, ratio, ">= 3.0x",
                                 None if ratio is None else ratio >= 3))
    for dtype in ("float32", "bfloat16"):
        for shape in ("conv1", "conv2", "conv5"):
            for fmt in ("nchw", "channels_last"):
                case = f"{shape} {dtype} {fmt}"
                for direction, need in (("fwd", 1.8), ("fwdbwd", 1.5)):
                    where = dict(op="max_pool", shape_name=shape, dtype=dtype, memory_format=fmt, direction=direction)
                    t = _val(_get(k, backend="triton", **where), "time_s")
                    e = _val(_get(k, backend="eager", **where), "time_s")
                    ratio = e / t if t and e else None
                    rows.append(_row(f"max_pool {direction} >= {need}x ATen", case, ratio, f">= {need}x",
                                     None if ratio is None else ratio >= need))
                where = dict(op="max_pool", shape_name=shape, dtype=dtype, memory_format=fmt, direction="fwdbwd")
                ts = _val(_get(k, backend="triton", **where), "saved_bytes")
                es = _val(_get(k, backend="eager", **where), "saved_bytes")
                ratio = ts / es if ts is not None and es else None
                rows.append(_row("max_pool saves less than ATen (int64 indices)", case, ratio, "< 1.0x ATen's bytes",
                                 None if ratio is None else ratio < 1))
    for dtype in ("float32", "bfloat16"):
        for shape in TARGET_SHAPES:
            for fmt in ("nchw", "channels_last"):
                case = f"{shape} {dtype} {fmt}"
                where = dict(shape_name=shape, dtype=dtype, memory_format=fmt, direction="fwdbwd")
                fused = _get(k, op="relu_lrn_pool", backend="triton", **where)
                unfused = [u for b in OWN_BACKENDS if (u := _get(k, op="unfused", backend=b, **where)) is not None]
                best = min(unfused, key=lambda u: u["time_s"]) if unfused else None
                ft, bt = _val(fused, "time_s"), _val(best, "time_s")
                ratio = bt / ft if ft and bt else None
                rows.append(_row("relu_lrn_pool fwd+bwd >= 1.3x best unfused own pair", case, ratio, ">= 1.3x",
                                 None if ratio is None else ratio >= 1.3))
                fm, bm = _val(fused, "peak_mem_bytes"), _val(best, "peak_mem_bytes")
                ratio = fm / bm if fm is not None and bm else None
                rows.append(_row("relu_lrn_pool lower peak memory than unfused", case, ratio, "< 1.0x",
                                 None if ratio is None else ratio < 1))
    pairs = []
    if not k.empty:
        keys = ["op", "shape_name", "dtype", "memory_format", "direction"]
        triton = k[k["backend"] == "triton"].set_index(keys)["time_s"]
        cpp = k[k["backend"] == "cpp"].set_index(keys)["time_s"]
        pairs = [(key, float(cpp[key] / triton[key])) for key in triton.index.intersection(cpp.index)]
    for key, ratio in pairs:
        rows.append(_row("cpp within 1.5x of triton", " ".join(map(str, key)), ratio, "<= 1.5x", ratio <= 1.5))
    if not pairs:
        rows.append(_row("cpp within 1.5x of triton", "all kernel cases", None, "<= 1.5x", None))
    return rows


def model_targets(m: pd.DataFrame) -> list[dict]:
    case = "train b256 bf16 channels_last two-gpu"
    where = dict(layout="two-gpu", batch=256, mode="train", amp="bf16", channels_last=True, devices="one")
    triton = _get(m, variant="paper", kernels="triton", compile_model=False, **where)
    compiled = _get(m, variant="paper", kernels="eager", compile_model=True, **where)
    eager = _get(m, variant="paper", kernels="eager", compile_model=False, **where)
    no_lrn = _get(m, variant="no-lrn", kernels="triton", compile_model=False, **where)
    t, c, n = _val(triton, "time_s"), _val(compiled, "time_s"), _val(no_lrn, "time_s")
    rows = [
        _row("model --kernels triton >= 1.3x whole-model compile", case, c / t if t and c else None, ">= 1.3x",
             None if not (t and c) else c / t >= 1.3),
        _row("model --kernels triton within 10% of no-LRN net", case, t / n if t and n else None, "<= 1.10x",
             None if not (t and n) else t / n <= 1.10),
    ]
    tm, em = _val(triton, "peak_mem_bytes"), _val(eager, "peak_mem_bytes")
    rows.append(_row("model peak memory <= 0.7x eager", case, tm / em if tm is not None and em else None,
                     "<= 0.7x", None if tm is None or not em else tm / em <= 0.7))
    return rows


def _gpu_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Targets concern GPU runs at AlexNet's real shapes: CPU results never count as measured."""
    if frame.empty or "cpu" not in frame:
        return frame
    return frame[~frame["cpu"].astype(bool)]


def _cpu_only(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "cpu" not in frame:
        return frame.iloc[0:0]
    return frame[frame["cpu"].astype(bool)]


def _speedup(k: pd.DataFrame, base: str, ours: str = "cpp", **where) -> float | None:
    """Time of ``base`` / time of ``ours`` on the same case (> 1: ours is faster)."""
    t = _val(_get(k, backend=ours, **where), "time_s")
    b = _val(_get(k, backend=base, **where), "time_s")
    return b / t if t and b else None


# The CPU targets: the cpp backend's vectorized C++ against torch.compile (Inductor's C++), the eager
# reference and the peers, at conv1 (batch 16, float32), and the paper's AlexNet at 227 px, batch 16.
CPU_KERNEL_TARGETS = (
    # (target, op, direction, baseline, required ratio, layouts)
    ("relu_lrn_pool fwd >= 4x compile (CPU)", "relu_lrn_pool", "fwd", "compile", 4.0, ("nchw", "channels_last")),
    ("relu_lrn_pool fwd >= 2x OpenVINO (CPU)", "relu_lrn_pool", "fwd", "openvino", 2.0, ("nchw",)),
    ("relu_lrn fwd >= 4x compile (CPU)", "relu_lrn", "fwd", "compile", 4.0, ("nchw", "channels_last")),
    ("relu_lrn_pool fwd+bwd >= 3x compile (CPU)", "relu_lrn_pool", "fwdbwd", "compile", 3.0, ("nchw", "channels_last")),
    ("max_pool fwd no slower than compile (CPU)", "max_pool", "fwd", "compile", 1.0, ("nchw", "channels_last")),
    ("max_pool fwd+bwd no slower than compile (CPU)", "max_pool", "fwdbwd", "compile", 1.0, ("nchw", "channels_last")),
)
CPU_MODEL_TARGETS = (
    # (target, mode, baseline kernels, required ratio)
    ("AlexNet inference, cpp kernels >= 1.8x eager kernels (CPU)", "infer", "eager", 1.8),
    ("AlexNet inference, cpp kernels >= 1.05x compile'd kernels (CPU)", "infer", "compile", 1.05),
    ("AlexNet training step, cpp kernels >= 1.5x eager kernels (CPU)", "train", "eager", 1.5),
    ("AlexNet training step, cpp kernels >= 1.05x compile'd kernels (CPU)", "train", "compile", 1.05),
)


def cpu_targets(k: pd.DataFrame, m: pd.DataFrame) -> list[dict]:
    rows = []
    for target, op, direction, base, need, layouts in CPU_KERNEL_TARGETS:
        for fmt in layouts:
            ratio = _speedup(k, base, op=op, shape_name="conv1", dtype="float32", memory_format=fmt,
                             direction=direction)
            rows.append(_row(target, f"conv1 float32 {fmt}", ratio, f">= {need}x",
                             None if ratio is None else ratio >= need))
    for target, mode, base, need in CPU_MODEL_TARGETS:
        where = dict(variant="paper", layout="two-gpu", mode=mode, amp="none", compile_model=False, devices="one")
        if not m.empty and "image_size" in m:
            m = m[m["image_size"].astype(int) == 227]
        ours = _val(_get(m, kernels="cpp", **where), "time_s")
        other = _val(_get(m, kernels=base, **where), "time_s")
        ratio = other / ours if ours and other else None
        rows.append(_row(target, f"{mode} 227 px float32", ratio, f">= {need}x", None if ratio is None else ratio >= need))
    return rows


def evaluate(kernels: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    cpu_k, cpu_m = _cpu_only(kernels), _cpu_only(models)
    cpu_only_run = (len(cpu_k) == len(kernels)) and (len(cpu_m) == len(models)) and not (cpu_k.empty and cpu_m.empty)
    rows = [] if cpu_only_run else kernel_targets(_gpu_only(kernels)) + model_targets(_gpu_only(models))
    if not cpu_k.empty or not cpu_m.empty:
        rows += cpu_targets(cpu_k, cpu_m)
    return pd.DataFrame(rows)


def summary(detail: pd.DataFrame) -> pd.DataFrame:
    """One row per target: overall status (met only if every measured case is met), worst case."""
    rows = []
    for target, group in detail.groupby("target", sort=False):
        measured = group[group["status"] != "not measured"]
        if measured.empty:
            status = "not measured"
        elif (measured["status"] == "met").all():
            status = "met" if len(measured) == len(group) else "met where measured"
        else:
            status = "not met"
        worst = ""
        if not measured.empty:
            higher_is_better = group["required"].iloc[0].startswith(">=")
            pick = measured.loc[measured["measured"].idxmin() if higher_is_better else measured["measured"].idxmax()]
            worst = f"{pick['measured']:.3g} ({pick['case']})"
        rows.append({"target": target, "required": group["required"].iloc[0], "status": status,
                     "cases met": f"{(measured['status'] == 'met').sum()}/{len(measured)} measured of {len(group)}",
                     "worst case": worst})
    return pd.DataFrame(rows)
