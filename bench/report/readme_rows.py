"""The README's CPU headline, generated from one run: the ops at AlexNet's conv1 activation, backend
against backend, and the paper's AlexNet in images/s, with the run named (machine, versions, date,
command, wall time) - the block between ``<!-- cpu-headline:begin -->`` and ``<!-- cpu-headline:end -->``.

``python -m bench.report reports/NAME/cases.jsonl --update-readme README.md`` fills it from a run's
committed per-case log, so the README's numbers are always a committed run's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from alexnet import report_kit
from bench.report.results import ReportError, Run

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


def op_table(run: Run) -> list[str]:
    header = ["op, direction, layout", *(c for c, _ in OP_COLUMNS), "**cpp (ours)**", "cpp vs compile"]
    rows = []
    for op, direction, layouts in OP_ROWS:
        name = f"{POOL_TEXT.get(op, f'`{op}`')} {DIRECTION_TEXT[direction]}, " + " / ".join(
            "NCHW" if layout == "nchw" else layout for layout in layouts)
        cells = [_joined([_ms(_kernel_ms(run, op, direction, layout, b)) for layout in layouts])
                 for _, b in OP_COLUMNS]
        ours = [_kernel_ms(run, op, direction, layout, "cpp") for layout in layouts]
        base = [_kernel_ms(run, op, direction, layout, "compile") for layout in layouts]
        speedups = [report_kit.ratio(c / o, 1 if c / o >= 10 else 2) if o and c else "-" for o, c in zip(ours, base)]
        rows.append([name, *cells, f"**{_joined([_ms(v) for v in ours])}**", _joined(speedups)])
    return report_kit.table(header, rows)


MODEL_COLUMNS = (  # (header, kernels, variant, whole-model compile)
    ("eager kernels", "eager", "paper", False),
    ("compile'd kernels", "compile", "paper", False),
    ("whole-model compile", "eager", "paper", True),
    ("no LRN (eager)", "eager", "no-lrn", False),
    ("OpenVINO", "openvino", "paper", False),
    ("ONNX Runtime", "onnxruntime", "paper", False),
)
MODEL_ROWS = (("inference, float32", "infer", "none"), ("inference, bf16 autocast", "infer", "bf16"),
              ("training step, float32", "train", "none"), ("training step, bf16 autocast", "train", "bf16"))


def _images_per_s(models: pd.DataFrame, kernels: str, variant: str, compiled: bool, mode: str, amp: str):
    hit = models[(models.kernels == kernels) & (models.variant == variant) & (models.compile_model == compiled)
                 & (models["mode"] == mode) & (models.amp == amp) & (models.image_size == 227)]
    return None if hit.empty else float(hit.images_per_s.iloc[0])


def model_table(run: Run) -> list[str]:
    models = run.models
    batch = int(models.batch.iloc[0]) if not models.empty else "?"
    header = [f"the paper's AlexNet, 227 px, batch {batch}, images/s", *(c[0] for c in MODEL_COLUMNS),
              "**cpp kernels**"]
    rows = []
    for label, mode, amp in MODEL_ROWS:
        if models.empty:
            break
        cells = [_images_per_s(models, k, v, c, mode, amp) for _, k, v, c in MODEL_COLUMNS]
        ours, eager = _images_per_s(models, "cpp", "paper", False, mode, amp), cells[0]
        if ours is None and all(c is None for c in cells):
            continue
        ours_text = "-" if ours is None else f"**{ours:.1f}**" + (f" ({report_kit.ratio(ours / eager)} eager)"
                                                                  if eager else "")
        rows.append([label, *("-" if c is None else f"{c:.1f}" for c in cells), ours_text])
    return report_kit.table(header, rows)


def _duration(run: Run) -> str:
    wall = run.info.get("wall_s")
    if wall:
        minutes, seconds = divmod(round(wall), 60)
        return f"{minutes} min {seconds} s"
    return "wall time not recorded"


def block(run: Run, report_dir: str) -> str:
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
             + f"; {versions}; {run.date[:10]}; `{info.get('command', '?')}`, {_duration(run)}), "
             f"AlexNet's {SITE} activation at batch 16 ({DTYPE}), ms per call, median; speedups are ratios "
             f"within that one run. Full tables, plots and every target: [`{report_dir}/`]({report_dir}/README.md).")
    return "\n".join([intro, "", *op_table(run), "", *model_table(run)])


def update_readme(readme: Path, run: Run, report_dir: str) -> Path:
    return report_kit.update_section(readme, SECTION, block(run, report_dir))
