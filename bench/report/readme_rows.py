"""The README's CPU headline, generated from one run: the ops at AlexNet's conv1 activation, backend
against backend, and the paper's AlexNet in images/s, with the run named (machine, versions, date,
command, wall time) - the block between ``<!-- cpu-headline:begin -->`` and ``<!-- cpu-headline:end -->``.

``python -m bench.report reports/NAME/cases.jsonl --update-readme README.md`` fills it from a run's
committed per-case log, so the README's numbers are always a committed run's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report import across, targets
from bench.report.results import ReportError, Run
from infra import report_kit

SECTION = "cpu-headline"
SITE, DTYPE = "conv1", "float32"
PEERS = ("openvino", "onnxruntime")
OP_ROWS = (  # (op, direction, layouts): one README row each, layouts side by side
    ("relu_lrn_pool", "fwd", ("nchw",)),
    ("relu_lrn_pool", "fwd", ("channels_last",)),
    ("relu_lrn", "fwd", ("nchw", "channels_last")),
    ("relu_lrn_pool", "fwdbwd", ("nchw", "channels_last")),
    ("max_pool", "fwd", ("nchw", "channels_last")),
    ("max_pool", "fwdbwd", ("nchw", "channels_last")),
)
OP_COLUMNS = (("eager", "eager"), ("torch.compile", "compile"), ("OpenVINO", "openvino"),
              ("ONNX Runtime", "onnxruntime"))
DIRECTION_TEXT = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}
POOL_TEXT = {"max_pool": "`max_pool` 3/2"}


def _kernel_ms(run: Run, op: str, direction: str, layout: str, backend: str) -> float | None:
    k = run.kernels
    if k.empty:
        return None
    hit = k[(k.op == op) & (k.direction == direction) & (k.memory_format == layout) & (k.backend == backend)
            & (k.shape_name == SITE) & (k.dtype == DTYPE)]
    return None if hit.empty else 1e3 * float(hit.time_s.iloc[0])


def _joined(values: list[str]) -> str:
    return "-" if all(v == "-" for v in values) else " / ".join(values)


def _ms(value: float | None) -> str:
    return "-" if value is None else format(value, ".3g")


def _kernel_row(run: Run, op: str, direction: str, layout: str, backend: str):
    k = run.kernels
    if k.empty:
        return None
    hit = k[(k.op == op) & (k.direction == direction) & (k.memory_format == layout) & (k.backend == backend)
            & (k.shape_name == SITE) & (k.dtype == DTYPE)]
    return None if hit.empty else hit.iloc[0]


def _speedup_text(row, field: str) -> str:
    if row is None or field not in row.index or pd.isna(row[field]):
        return "-"
    value = float(row[field])
    text = report_kit.ratio(value, 1 if value >= 10 else 2)
    low, high = row.get(f"{field}_lo"), row.get(f"{field}_hi")
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        text += f" [{low:.3g}, {high:.3g}]"
    return text


def _ours_text(row) -> str:
    if row is None:
        return "-"
    text = _ms(1e3 * float(row.time_s))
    pct = row.get("pct_roof")
    if pct is not None and not pd.isna(pct):
        text += f" ({pct:.0f}%)"
    return text


def op_table(run: Run) -> list[str]:
    header = ["op, direction, layout", *(c for c, _ in OP_COLUMNS), "**cpp (ours)** (% of roof)",
              "cpp vs compile [95% CI]"]
    rows = []
    for op, direction, layouts in OP_ROWS:
        name = f"{POOL_TEXT.get(op, f'`{op}`')} {DIRECTION_TEXT[direction]}, " + " / ".join(
            "NCHW" if layout == "nchw" else layout for layout in layouts)
        cells = [_joined([_ms(_kernel_ms(run, op, direction, layout, b)) for layout in layouts])
                 for _, b in OP_COLUMNS]
        ours = [_kernel_row(run, op, direction, layout, "cpp") for layout in layouts]
        rows.append([name, *cells, f"**{_joined([_ours_text(r) for r in ours])}**",
                     _joined([_speedup_text(r, "speedup_vs_compile") for r in ours])])
    return report_kit.table(header, rows)


def faster_than_ours(run: Run) -> list[str]:
    """Every case of the headline where another backend or a peer beats the cpp kernels, with both figures."""
    lines = []
    k = run.kernels
    if not k.empty:
        site = k[(k.shape_name == SITE) & (k.dtype == DTYPE)]
        for (op, direction, layout), group in site.groupby(["op", "direction", "memory_format"]):
            ours = group[group.backend == "cpp"]
            if ours.empty:
                continue
            t = float(ours.time_s.iloc[0])
            for _, other in group[(group.backend != "cpp") & (group.time_s < t)].iterrows():
                lines.append(f"`{op}` {DIRECTION_TEXT.get(direction, direction)} {layout}: {other.backend} "
                             f"{1e3 * other.time_s:.3g} ms vs cpp {1e3 * t:.3g} ms")
    m = run.models
    if not m.empty and "image_size" in m:
        m = m[(m.image_size == 227) & ~m.compile_model.astype(bool)]
        for (mode, amp), group in m.groupby(["mode", "amp"]):
            ours = group[(group.kernels == "cpp") & (group.variant == "paper")]
            if ours.empty:
                continue
            best = ours.loc[ours.images_per_s.idxmax()]
            rivals = group[(group.kernels != "cpp") & (group.variant == "paper") & (group.images_per_s > best.images_per_s)]
            for _, other in rivals.iterrows():
                layout = "channels_last" if other.channels_last else "NCHW"
                lines.append(f"AlexNet {'inference' if mode == 'infer' else 'training step'} "
                             f"({'bf16 autocast' if amp == 'bf16' else 'float32'}): {other.kernels} ({layout}) "
                             f"{other.images_per_s:.1f} images/s vs cpp kernels {best.images_per_s:.1f}")
    return lines


MODEL_COLUMNS = (  # (header, kernels, variant, whole-model compile); eager and no-LRN: their faster layout
    ("eager kernels, faster layout", "eager", "paper", False),
    ("compile'd kernels", "compile", "paper", False),
    ("whole-model compile", "eager", "paper", True),
    ("no LRN (eager), faster layout", "eager", "no-lrn", False),
    ("OpenVINO", "openvino", "paper", False),
    ("ONNX Runtime", "onnxruntime", "paper", False),
)
MODEL_ROWS = (("inference, float32", "infer", "none"), ("inference, bf16 autocast", "infer", "bf16"),
              ("training step, float32", "train", "none"), ("training step, bf16 autocast", "train", "bf16"))


def _images_per_s(models: pd.DataFrame, kernels: str, variant: str, compiled: bool, mode: str, amp: str):
    """images/s of the faster layout (NCHW or channels_last) of that configuration, and which it was."""
    hit = models[(models.kernels == kernels) & (models.variant == variant) & (models.compile_model == compiled)
                 & (models["mode"] == mode) & (models.amp == amp) & (models.image_size == 227)]
    if hit.empty:
        return None, None
    best = hit.loc[hit.images_per_s.idxmax()]
    return float(best.images_per_s), ("cl" if best.channels_last else "NCHW")


def model_table(run: Run) -> list[str]:
    models = run.models
    batch = int(models.batch.iloc[0]) if not models.empty else "?"
    header = [f"the paper's AlexNet, 227 px, batch {batch}, images/s", *(c[0] for c in MODEL_COLUMNS),
              "**cpp kernels**, faster layout"]
    rows = []
    for label, mode, amp in MODEL_ROWS:
        if models.empty:
            break
        cells = [_images_per_s(models, k, v, c, mode, amp) for _, k, v, c in MODEL_COLUMNS]
        (ours, our_layout), eager = _images_per_s(models, "cpp", "paper", False, mode, amp), cells[0][0]
        if ours is None and all(c[0] is None for c in cells):
            continue
        ours_text = "-" if ours is None else f"**{ours:.1f}** {our_layout}" + (
            f" ({report_kit.ratio(ours / eager)} eager)" if eager else "")
        rows.append([label, *("-" if v is None else f"{v:.1f}" + (f" {lay}" if c[1] in ("eager",) and
                                                                   not c[3] else "")
                              for (v, lay), c in zip(cells, MODEL_COLUMNS)), ours_text])
    return report_kit.table(header, rows)


def _duration(run: Run) -> str:
    wall = run.info.get("wall_s")
    if wall:
        minutes, seconds = divmod(round(wall), 60)
        return f"{minutes} min {seconds} s"
    return "wall time not recorded"


def target_lines(run: Run, report_dir: str, earlier: list[Run] = ()) -> list[str]:
    """How the run stands against its targets (``bench.report.targets``): the count per status, then each
    target not met or unresolved with its worst case and what is required; with earlier runs, the count
    across them too (``bench.report.across``)."""
    summary = targets.summary(targets.evaluate(run.kernels, run.models))
    if summary.empty:
        return []
    tail = []
    if earlier:
        joint = across.summary_across(across.evaluate_across([run, *earlier]))
        counts = joint["across runs"].value_counts()
        tail = ["", f"**Across {len(earlier) + 1} runs** (this one and {', '.join(across.run_name(r) for r in earlier)}; "
                    f"[targets]({report_dir}/targets.md#across-runs)): "
                + ", ".join(f"{int(counts[s])} {s}" for s in ("met", "met where measured", "not met", across.VARIES,
                                                              "unresolved", "not measured") if s in counts)
                + f" of {len(joint)}: met or not met only where every run says so."]
        tail += [f"- {'not met in every run' if r['across runs'] == 'not met' else r['across runs']}: {r['target']}: "
                 f"{r['cases not met in every run (range)']}"
                 for _, r in joint[joint["across runs"].isin(["not met", across.VARIES, "unresolved"])].iterrows()]
    counts = summary["status"].value_counts()
    head = (f"**Targets in this run** ([targets]({report_dir}/targets.md)): "
            + ", ".join(f"{int(counts[s])} {s}" for s in ("met", "met where measured", "not met", "unresolved",
                                                          "not measured") if s in counts)
            + f" of {len(summary)}.")
    open_rows = summary[summary["status"].isin(["not met", "unresolved"])]
    return ["", head, *[f"- {r['status']}: {r['target']}: worst {r['worst case']}, required {r['required']}"
                        for _, r in open_rows.iterrows()], *tail]


def block(run: Run, report_dir: str, earlier: list[Run] = ()) -> str:
    """The README block: the run named, then the two tables; ``report_dir`` is the run's report folder."""
    if not run.cpu_only:
        raise ReportError(f"{run.path}: a GPU run; the cpu-headline block takes a CPU run")
    if run.kernels.empty:
        raise ReportError(f"{run.path}: no kernel benchmarks to take the headline rows from")
    info = run.info
    bandwidth = info.get("copy_bytes_per_s")
    versions = ", ".join(f"{name} {info[key].split('-')[0]}" for name, key in
                         (("torch", "torch"), ("OpenVINO", "openvino"), ("ONNX Runtime", "onnxruntime")) if info.get(key))
    intro = (f"On a CPU ({info.get('cpu_model', 'unknown CPU')}, {info.get('cpu_threads', '?')} threads, "
             f"{info.get('cpu_isa', '?')} kernels"
             + (f", {bandwidth / 1e9:.1f} GB/s measured copy bandwidth" if bandwidth else "")
             + (f", {info['cpu_allocator']}" if info.get("cpu_allocator") else "")
             + f"; {versions}; {run.date[:10]}; `{info.get('command', '?')}`, {_duration(run)}), "
             f"AlexNet's {SITE} activation at batch 16 ({DTYPE}), ms per call, median, **cold caches** (the "
             "last-level cache flushed before every call; warm figures in the report); % of roof: the binding "
             "roof (a copy of the op's own bytes, cold) over the time; speedups are ratios within that one run "
             "with their 95% bootstrap interval. AlexNet steps run back to back (warm), each configuration in "
             f"its faster layout. Full tables, plots and every target: [`{report_dir}/`]({report_dir}/README.md).")
    rivals = faster_than_ours(run)
    beaten = (["", "**Faster than the cpp kernels in this run:** " + "; ".join(rivals) + "."] if rivals
              else ["", "No backend or peer in this run is faster than the cpp kernels on these rows."])
    return "\n".join([intro, "", *op_table(run), "", *model_table(run), *beaten, *target_lines(run, report_dir, earlier)])


def update_readme(readme: Path, run: Run, report_dir: str, earlier: list[Run] = ()) -> Path:
    return report_kit.update_section(readme, SECTION, block(run, report_dir, earlier))
