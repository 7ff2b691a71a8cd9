"""Figures derived by pairing results of the same session: speedups over eager and over compile.

Used twice: when pytest-benchmark writes its JSON (so every saved result carries its speedups in
``extra_info``) and by the report (so older or hand-merged files get them too). Pairs are only
formed within one run; a missing baseline leaves the speedup ``None``.
"""
from __future__ import annotations

KERNEL_KEY = ("op", "shape_name", "dtype", "memory_format", "direction")
MODEL_KEY = ("variant", "layout", "batch", "mode", "amp", "channels_last", "devices")


def _key(info: dict, fields: tuple) -> tuple:
    return tuple(str(info.get(f)) for f in fields)


def add_speedups(infos: list[dict]) -> None:
    """Set ``speedup_vs_eager`` / ``speedup_vs_compile`` in each kernel or model ``extra_info`` dict.

    Kernels: against the ``eager`` and ``compile`` backends on the same op, shape, dtype, layout,
    direction. Models: against the eager-kernels model and the whole-model ``torch.compile`` of it.
    """
    eager, compiled = {}, {}
    for info in infos:
        time_s = info.get("time_s")
        if not time_s:
            continue
        if info.get("kind") == "kernel":
            key = ("kernel",) + _key(info, KERNEL_KEY)
            if info.get("backend") == "eager":
                eager[key] = time_s
            elif info.get("backend") == "compile":
                compiled[key] = time_s
        elif info.get("kind") == "model" and info.get("kernels") == "eager":
            key = ("model",) + _key(info, MODEL_KEY)
            (compiled if info.get("compile_model") else eager)[key] = time_s
    for info in infos:
        time_s = info.get("time_s")
        if info.get("kind") == "kernel":
            key = ("kernel",) + _key(info, KERNEL_KEY)
        elif info.get("kind") == "model":
            key = ("model",) + _key(info, MODEL_KEY)
        else:
            continue
        info["speedup_vs_eager"] = eager[key] / time_s if time_s and key in eager else None
        info["speedup_vs_compile"] = compiled[key] / time_s if time_s and key in compiled else None
