"""Report of a saved benchmark run: ``python -m bench.report [JSON ...] [--merge NAME] [--across EARLIER ...]
[--compare A B] [--out reports/]``.

For each saved pytest-benchmark file (default: the newest under ``.benchmarks/``) writes
``<out>/<run name>/``: ``README.md`` (run header, targets summary, paper vs measured, plots),
``kernels.md``, ``model.md``, ``memory.md``, ``targets.md`` and the PNGs of ``bench.report.plots``;
``--merge NAME`` reports several files of one session (saved in parts) as one run; ``--across EARLIER ...``
adds to ``targets.md`` (and the README block) the targets judged across that run and earlier ones.
``--compare A B`` writes ``<out>/compare_<A>_vs_<B>.md`` (changes with a regression flag) and
prints it. ``pytest bench/ --benchmark-save=NAME`` calls this automatically at the end of the run.
A malformed or partial file is an error naming that file; a missing backend leaves a gap.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from bench.report import across, compare, paper_claims, plots, readme_rows, step_profile, tables, targets
from bench.report.results import ReportError, Run, load_run, merge_runs, run_header
from infra import report_kit
from infra.atomic_io import write_text_atomic
from infra.errors import check_output_folder, run_cli

__all__ = ["ReportError", "write_report", "write_comparison", "main"]


def _page(title: str, run: Run, body: str) -> str:
    return f"# {title}\n\n{run_header(run)}\n\n{body}"


def _has_peak_memory(run: Run) -> bool:
    return any("peak_mem_bytes" in f and f["peak_mem_bytes"].notna().any() for f in (run.kernels, run.models))


def _cpu_note(run: Run) -> str:
    if not run.cpu_only:
        return ""
    memory = ("peak memory is what PyTorch's CPU allocator holds above the starting level (torch.profiler's "
              "memory events; a library's own scratch, such as oneDNN's, is not seen)" if _has_peak_memory(run)
              else "this run recorded no peak memory (older runs measured it on a GPU only)")
    return ("> **CPU run.** The backends that run natively on a CPU (eager, torchscript, compile, cpp and, where "
            "installed, the OpenVINO and ONNX Runtime peers) are timed at AlexNet's activations at batch 16 and the "
            "paper's AlexNet at 227 px; Triton runs only through its interpreter here and is checked against eager, "
            f"not timed. These are CPU figures, not GPU ones; {memory}.\n\n")


def _status(run: Run) -> str:
    """What the run did not measure: cases that failed their check against eager (or errored), and, for a
    run stopped before its end, the planned cases that never finished."""
    lines = []
    measured = len(run.kernels) + len(run.models)
    if run.missing:
        lines += [f"> **Incomplete run:** {measured} of {run.planned} planned cases measured; {len(run.missing)} "
                  "never finished (the run was stopped). Missing:", ">"]
        lines += [f"> - `{m.split('::')[-1]}`" for m in run.missing[:40]]
        if len(run.missing) > 40:
            lines.append(f"> - ... and {len(run.missing) - 40} more")
        lines.append("")
    if run.failed:
        lines += [f"**{len(run.failed)} case(s) failed and were not timed** (a result that differs from eager "
                  "beyond the tests' tolerance, or an error):", ""]
        lines += report_kit.table(["case", "why"], ([f"`{f['nodeid'].split('::')[-1]}`", str(f["message"])[:400]]
                                                   for f in run.failed))
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _flush_text(info: dict) -> str:
    """The cold state's flush as the run recorded it: the buffer's size and its multiple of the cache."""
    flush, llc = info.get("cpu_flush_bytes"), info.get("cpu_llc_bytes")
    if not flush:
        return "a buffer larger than the last-level cache"
    if not llc:
        return f"a buffer of {flush / 2**20:.0f} MiB"
    return f"a buffer of {flush / 2**20:.0f} MiB, {flush / llc:g} times its {llc / 2**20:.0f} MiB"


def _model_ceilings(models: pd.DataFrame, out: Path | None = None) -> str:
    """What bounds the model targets, from this run alone, in each layout: the same net without LRN (eager
    kernels) is how fast the paper's net could be were its LRN free; the cpp kernels' ratio is set beside it,
    both against the best-layout eager kernels (the targets' baseline). Where the report folder holds a
    profile page of the same mode and layout (``bench.tools.profile_step``, its own run), the cpp kernels'
    ratio is also scaled by that page's bound for this suite's ops costing nothing."""
    if models.empty or not {"variant", "kernels", "mode", "amp", "time_s", "batch", "channels_last"} <= set(models.columns):
        return ""
    plain = models[(models["amp"] != "bf16") & ~models["compile_model"].astype(bool)]
    lines = []
    for mode, what in (("infer", "inference"), ("train", "training step")):
        def pick(variant, kernels, cl):
            rows = plain[(plain["mode"] == mode) & (plain["variant"] == variant) & (plain["kernels"] == kernels)
                         & (plain["channels_last"].astype(bool) == cl)]
            return rows.sort_values("batch").iloc[-1] if len(rows) else None
        arms = {cl: (pick("paper", "eager", cl), pick("no-lrn", "eager", cl), pick("paper", "cpp", cl))
                for cl in (False, True)}
        arms = {cl: a for cl, a in arms.items() if all(r is not None for r in a)}
        if not arms or len({int(r["batch"]) for a in arms.values() for r in a}) != 1:
            continue
        best_cl, best = min(((cl, a[0]) for cl, a in arms.items()), key=lambda t: t[1]["time_s"])
        fastest_cpp = min(arms, key=lambda cl: arms[cl][2]["time_s"])
        lines.append(f"- {what}, batch {int(best['batch'])}: the best-layout eager kernels take "
                     f"{best['time_s'] * 1e3:.1f} ms ({LAYOUT_NAMES[best_cl]}); the target reads the cpp kernels in "
                     f"{LAYOUT_NAMES[fastest_cpp]}, their faster layout.\n")
        for cl, (eager, no_lrn, cpp) in arms.items():
            lines.append(f"  - {LAYOUT_NAMES[cl]}: eager kernels {eager['time_s'] * 1e3:.1f} ms; the same net without "
                         f"LRN {no_lrn['time_s'] * 1e3:.1f} ms, {best['time_s'] / no_lrn['time_s']:.2f}x the best-layout "
                         f"eager kernels: a free LRN with ATen's pooling; the cpp kernels (LRN and pooling) "
                         f"{cpp['time_s'] * 1e3:.1f} ms, {best['time_s'] / cpp['time_s']:.2f}x.")
            page = PROFILE_PAGES[(mode, cl)]
            bound = _profile_bound(out / page, cl) if out is not None else None
            if bound is not None:
                now = best["time_s"] / cpp["time_s"]
                lines.append(f" With this suite's ops free (their share of the cpp {what} in [its profile]({page}), "
                             f"at most {bound:.2f}x), the cpp kernels would be at most {now * bound:.2f}x: the most "
                             "any kernel of this suite could bring in this layout on this machine.")
            lines.append("\n")
    if not lines:
        return ""
    return ("## What bounds the model targets\n\nThe convolutions and GEMMs are the same in every arm; "
            "from this run (fp32, kernels not compiled), each layout against the eager kernels in their faster "
            "layout:\n\n" + "".join(lines) + "\n")


LAYOUT_NAMES = {False: "NCHW", True: "channels_last"}
PROFILE_PAGES = {  # as bench.tools.profile_step is told to name them: (mode, channels_last) -> page
    ("train", False): "profile.md", ("infer", False): "profile-infer.md",
    ("train", True): "profile-cl.md", ("infer", True): "profile-infer-cl.md"}


def _profile_bound(page: Path, channels_last: bool) -> float | None:
    """How many times faster the step would be were this suite's ops free, from the record beside the page
    (``bench.report.step_profile``), or None; a record of another layout, precision, net or backend than the
    ceiling's (the cpp kernels in float32) is not used."""
    summary = step_profile.load(page) if page.is_file() else None
    if summary is None or summary.layout != step_profile.layout_name(channels_last):
        return None
    if summary.amp != "off" or not summary.lrn or summary.kernels != "cpp":  # not the net the ceiling scales
        return None
    return summary.free_bound


def _profile_summary(out: Path) -> str:
    """Links to the step profiles committed beside the report (training, inference), each with the summary
    line of its record."""
    parts = []
    for (mode, cl), name in PROFILE_PAGES.items():
        page = out / name
        what = "training step" if mode == "train" else "inference forward"
        if page.is_file():
            summary = step_profile.load(page)
            parts.append(f"Where the {what}'s time goes{' in channels_last' if cl else ''}: [profile]({page.name}) (its own run)."
                         + (f" {summary.summary_line()}" if summary is not None else "") + "\n\n")
    return "".join(parts)


def _across_section(run: Run, earlier: list[Run]) -> str:
    """targets.md's judgement across this run and earlier runs (``bench.report.across``), or nothing."""
    if not earlier:
        return ""
    runs = [run, *earlier]
    detail = across.evaluate_across(runs)
    sources = {r.info.get("source") for r in runs}
    caution = ("" if len(sources) == 1 and None not in sources and not any("+changes" in str(s) for s in sources)
               else " The runs do not all name one unmodified revision: read a difference between them as possibly "
                    "the code's, not only the machine's.")
    return ("\n## Across runs\n\n"
            + f"This run and {len(earlier)} earlier one(s) ({', '.join(f'`{r.path.name}`' for r in earlier)}), each "
              "judged on its own interval. Across runs a case reads met (or not met) only when every run that "
              "measured it says so, else *varies between runs*: one run's interval is a bootstrap over its own "
              "rounds and does not hold the variation between processes." + caution + "\n\n"
            + tables.markdown(across.summary_across(detail)) + "\n"
            + tables.markdown(detail))


def _copy_roof_text(kernels) -> str:
    """Which copy the run's memory roofs are: the faster of two where its records name them, else ATen's."""
    if "memory_roof_copy" not in getattr(kernels, "columns", ()) or not kernels["memory_roof_copy"].notna().any():
        return " (ATen's copy_)"
    counts = kernels["memory_roof_copy"].value_counts()
    return (", the faster of ATen's copy_ and a copy with streaming stores, which reads no destination line "
            "first (timed cold, and warm above the last-level cache; the cold roof was the streaming copy in "
            f"{int(counts.get('streaming copy', 0))} of {int(counts.sum())} cases)")


def write_run_report(run: Run, out_root: Path, earlier: list[Run] = ()) -> list[Path]:
    """Write the Markdown pages and PNGs of one run into ``out_root/<run label>/``; ``earlier``: runs to judge
    the targets across beside it (targets.md's last section)."""
    out = out_root / run.label
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    copy_gbps = (run.info.get("copy_bytes_per_s") or 0) / 1e9 or None

    def put(name: str, text: str) -> None:
        written.append(write_text_atomic(out / name, text))

    note = _cpu_note(run) + _status(run)
    put("kernels.md", _page("Kernel benchmarks", run, note
        + "Median of timed repetitions. Cache state: GPU, L2 flushed before every repetition (CUDA-event "
          "time); CPU, *cold* = the last-level cache flushed before every repetition (" + _flush_text(run.info)
        + ", read and written, untimed) and *warm* = repetitions back to back. % roof = the binding roof's time / "
          "the case's time, in the same cache state: the memory roof is a copy of the case's minimal bytes"
        + _copy_roof_text(run.kernels)
        + " (mem), the compute roof its counted vector operations at the measured FMA rate (fma); above 100 % "
          "the roof is not a bound and the figure is a measurement problem, not a result. GB/s = minimal bytes "
          "(read input + write output; forward+backward adds read dy, re-read input, write dx) / median time. "
          "x ...: ratios of medians within this run with their 95 % bootstrap interval; x best-layout eager: "
          "against eager in whichever layout is faster for that op. "
          "Speedups pair results of this run. Every case was checked against eager before it was timed "
          "(max err = largest absolute difference from eager in float32 on the same input; within the tests' "
          "per-dtype tolerance, else the case failed and is listed above).\n\n"
        + tables.kernel_table(run.kernels)
        + "\n## % of the binding roof (cold caches on a CPU), by backend (empty = not measured)\n\n"
        + tables.kernel_pivot(run.kernels, "pct_roof" if "pct_roof" in run.kernels else "pct_copy_bw")))
    put("model.md", _page("AlexNet benchmarks", run, note
        + "Steps run back to back: warm caches on a CPU (GPU: L2 flushed before each). "
          "images/s = batch / median step time. TFLOP/s from counted multiply-adds (conv + FC; training = "
          "forward + weight grads + input grads). MFU = TFLOP/s / the highest compute rate this run measured in "
          "the same precision: on a GPU the dense GEMM (fp32 rows: TF32 when cuDNN uses TF32), on a CPU the larger "
          "of a float32 matmul and the FMA loop (no bf16 figure on a CPU); above 100 it is flagged, the yardstick "
          "not a bound. x eager / x compile: against the "
          "eager-kernels model and its whole-model torch.compile at the same config; x best-layout eager: against the "
          "eager-kernels model in whichever layout (NCHW or channels_last) is faster; [95% CI]: bootstrap over the "
          "rounds of this run.\n\n"
        + tables.model_table(run.models)))
    put("memory.md", _page("Memory", run, note + tables.memory_table(run.kernels, run.models)))

    detail = targets.evaluate(run.kernels, run.models)
    summary = targets.summary(detail)
    put("targets.md", _page("Performance targets", run, note
        + "Ratios within this run. 'not measured': the case or its baseline is absent from this run.\n\n"
        + "## Summary\n\n" + tables.markdown(summary)
        + "\n## Per case\n\n" + tables.markdown(detail, {"measured": ".3g"})
        + _across_section(run, list(earlier))))

    pngs = [
        plots.bandwidth_plot(run.kernels, copy_gbps, run.cpu_only, out / "bandwidth.png"),
        plots.speedup_plot(run.kernels, run.cpu_only, out / "speedup.png"),
        *(plots.memory_plot(run.kernels, run.cpu_only, out / name, value)
          for value, (_, name) in plots.MEMORY_QUANTITIES.items()),
        plots.model_throughput_plot(run.models, run.cpu_only, out / "model_throughput.png", "train"),
        plots.model_throughput_plot(run.models, run.cpu_only, out / "model_inference.png", "infer"),
        plots.batch_scaling_plot(run.models, run.cpu_only, out / "batch_scaling.png"),
    ]
    pngs = [p for p in pngs if p is not None]
    written += pngs
    body = (note
            + "Pages: [kernels](kernels.md), [model](model.md), [memory](memory.md), [targets](targets.md)\n\n"
            + "## Targets\n\n" + tables.markdown(summary)
            + "\n" + "".join(f"![{p.stem}]({p.name})\n\n" for p in pngs)
            + _model_ceilings(run.models, out) + _profile_summary(out)
            + "## Paper vs measured (systems claims)\n\n"
            + paper_claims.claims_markdown(run.models))
    put("README.md", _page(f"Benchmark report: {run.label}", run, body))
    return written


def write_report(paths: list[Path], out_root: Path, merge: str | None = None,
                 across_paths: list[Path] = ()) -> list[Path]:
    """Load every file first (so a bad one fails before anything is written), then write reports:
    one per file, or one for all of them named ``merge``; ``across_paths``: earlier runs of the one run's
    suite to judge its targets across."""
    return write_runs([load_run(p) for p in paths], Path(out_root), merge,
                      [load_run(p) for p in across_paths])


def write_runs(runs: list[Run], out_root: Path, merge: str | None = None, earlier: list[Run] = ()) -> list[Path]:
    """``write_report`` for runs already loaded (``load_run``)."""
    if merge:
        runs = [merge_runs(runs, merge)]
    if earlier and len(runs) != 1:
        raise ReportError("--across takes one run to report (one results file, or --merge)")
    written: list[Path] = []
    for run in runs:
        written += write_run_report(run, Path(out_root), list(earlier))
    return written


def write_comparison(a_path: Path, b_path: Path, out_root: Path, threshold: float) -> tuple[Path, str, int]:
    a, b = load_run(a_path), load_run(b_path)
    table = compare.compare_runs(a, b, threshold)
    regressions = int((table["status"] == "REGRESSION").sum()) if not table.empty else 0
    text = (f"# Comparison: `{a.label}` (A) vs `{b.label}` (B)\n\n## A\n\n{run_header(a)}\n\n## B\n\n{run_header(b)}\n\n"
            f"Regression: B's median more than {100 * threshold:.0f}% slower than A's with non-overlapping "
            f"interquartile ranges. {regressions} regression(s).\n\n"
            + tables.markdown(table, {"A us": ".1f", "B us": ".1f", "change %": "+.1f"}))
    Path(out_root).mkdir(parents=True, exist_ok=True)
    path = Path(out_root) / f"compare_{a.label}_vs_{b.label}.md"
    write_text_atomic(path, text)
    return path, text, regressions


def newest_saved_run(root: Path = Path(".benchmarks")) -> Path:
    files = [p for p in root.rglob("[0-9][0-9][0-9][0-9]_*.json") if p.is_file()] if root.is_dir() else []
    if not files:
        raise ReportError(f"no saved runs under {root}/ (run `pytest bench/ --benchmark-save=NAME` first)")
    return max(files, key=lambda p: p.stat().st_mtime)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="*", type=Path,
                        help="saved pytest-benchmark files (default: the newest under .benchmarks/)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="compare two saved runs: table of changes with a regression flag")
    parser.add_argument("--threshold", type=float, default=compare.DEFAULT_THRESHOLD,
                        help="relative slowdown that counts as a regression when outside the noise (default 0.05)")
    parser.add_argument("--merge", metavar="NAME",
                        help="report all given files as one run called NAME (e.g. kernels and model saved separately)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default reports/)")
    parser.add_argument("--update-readme", type=Path, metavar="README",
                        help="with one CPU run: also fill README's cpu-headline block from it (its ops at conv1 "
                             "and AlexNet's images/s), e.g. reports/NAME/cases.jsonl --update-readme README.md")
    parser.add_argument("--across", nargs="+", type=Path, default=[], metavar="EARLIER",
                        help="earlier runs of the same suite (saved JSON or per-case logs, e.g. "
                             "reports/NAME/earlier/*.jsonl) to judge the targets across, beside the one run reported")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        check_output_folder(args.out)
        if args.compare:
            path, text, regressions = write_comparison(*args.compare, args.out, args.threshold)
            print(text)
            print(f"wrote {path}")
            if not args.json:
                return
        paths = args.json or [newest_saved_run()]
        if args.update_readme is not None and (len(paths) != 1 or args.merge):
            raise ReportError("--update-readme takes exactly one run (one results file, no --merge)")
        runs = [load_run(p) for p in paths]  # every file loaded once, before anything is written
        earlier = [load_run(p) for p in args.across]
        for path in write_runs(runs, args.out, merge=args.merge, earlier=earlier):
            print(f"wrote {path}")
        if args.update_readme is not None:
            run = runs[0]
            folder = Path(os.path.relpath(args.out / run.label, args.update_readme.resolve().parent)).as_posix()
            readme_rows.update_readme(args.update_readme, run, folder, earlier)
            print(f"updated {args.update_readme}")
    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
