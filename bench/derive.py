"""Figures derived by pairing results of the same session: speedups over eager and over compile, with
95 % intervals, and over the faster of eager's two memory layouts.

Used twice: when pytest-benchmark writes its JSON (so every saved result carries its speedups in
``extra_info``) and by the report (so older or hand-merged files get them too). Pairs are only
formed within one run; a missing baseline leaves the speedup ``None``.

* ``speedup_vs_eager`` / ``speedup_vs_compile``: the baseline's median time over this case's, the same
  case otherwise (layout included); ``*_lo`` / ``*_hi``: the 95 % bootstrap interval of that ratio
  (``bench.timing.ratio_interval``) when both results kept their rounds (``times_s``).
* ``speedup_vs_best_eager``: against eager in whichever memory layout (NCHW or channels_last) is faster
  for the same op, shape, dtype and direction (a model: the same variant, batch, mode and precision),
  ``best_eager_layout`` naming it: a speedup that is only a layout change does not count.
* CPU kernel cases timed warm as well get ``warm_speedup_vs_*`` from their ``warm_times_s``.
"""
from __future__ import annotations

from bench.timing import ratio_interval

KERNEL_KEY = ("op", "shape_name", "dtype", "memory_format", "direction")
MODEL_KEY = ("variant", "layout", "batch", "mode", "amp", "channels_last", "devices")
LAYOUT_FIELD = {"kernel": "memory_format", "model": "channels_last"}


def _key(info: dict, fields: tuple) -> tuple:
    return tuple(str(info.get(f)) for f in fields)


def _case_key(info: dict) -> tuple | None:
    if info.get("kind") == "kernel":
        return ("kernel",) + _key(info, KERNEL_KEY)
    if info.get("kind") == "model":
        return ("model",) + _key(info, MODEL_KEY)
    return None


def _layout_free_key(info: dict) -> tuple | None:
    kind = info.get("kind")
    fields = KERNEL_KEY if kind == "kernel" else MODEL_KEY if kind == "model" else None
    if fields is None:
        return None
    return (kind,) + _key(info, tuple(f for f in fields if f != LAYOUT_FIELD[kind]))


def _baseline_of(info: dict) -> str | None:
    """Which baseline role a result plays: 'eager', 'compile' or None."""
    if info.get("kind") == "kernel":
        return info.get("backend") if info.get("backend") in ("eager", "compile") else None
    if info.get("kind") == "model" and info.get("kernels") == "eager":
        return "compile" if info.get("compile_model") else "eager"
    return None


def _ratio(info: dict, base: dict | None, prefix: str, name: str) -> None:
    field = f"{prefix}speedup_vs_{name}"
    ours, theirs = info.get(f"{prefix}time_s"), (base or {}).get(f"{prefix}time_s")
    if not ours or not theirs:
        info[field] = None
        return
    info[field] = theirs / ours
    low, high = ratio_interval(base.get(f"{prefix}times_s") or [], info.get(f"{prefix}times_s") or [])
    info[f"{field}_lo"], info[f"{field}_hi"] = (low, high) if low == low else (None, None)


def add_speedups(infos: list[dict]) -> None:
    """Set the speedup fields (module docstring) in each kernel or model ``extra_info`` dict."""
    baselines: dict[str, dict] = {"eager": {}, "compile": {}}
    best_eager: dict[tuple, dict] = {}
    for info in infos:
        key, role = _case_key(info), _baseline_of(info)
        if key is None or role is None or not info.get("time_s"):
            continue
        baselines[role][key] = info
        if role == "eager":
            free = _layout_free_key(info)
            if free not in best_eager or info["time_s"] < best_eager[free]["time_s"]:
                best_eager[free] = info
    for info in infos:
        key = _case_key(info)
        if key is None:
            continue
        for prefix in ("", "warm_") if info.get("warm_time_s") else ("",):
            for name in ("eager", "compile"):
                _ratio(info, baselines[name].get(key), prefix, name)
        best = best_eager.get(_layout_free_key(info))
        _ratio(info, best, "", "best_eager")
        field = LAYOUT_FIELD[info["kind"]]
        info["best_eager_layout"] = None if best is None else (
            best.get(field) if info["kind"] == "kernel" else ("channels_last" if best.get(field) else "nchw"))
