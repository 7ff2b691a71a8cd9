"""Sweep the Triton kernels' launch shapes at AlexNet's activations: which one is fastest, and how far
from copy bandwidth is it?

For every Triton kernel (each custom op's forward and backward) at the conv1 and
conv2 sites (batch 128), float32 and bfloat16, NCHW and channels_last, it times the launch shape the
host code picks today (``default``) and a grid of alternatives - positions per program, channel chunks
(programs per SM), warps - with ``triton.testing.do_bench`` (median, L2 cleared between repetitions).
Every alternative's output is checked against the default's, so a tiling bug at the real shapes is an
error, not a fast wrong number. Figures: microseconds, GB/s of the bytes the kernel must move, and
that as a share of a device-to-device copy measured in the same run.

    python -m bench.tools.tune_tiling --out reports/tiling-h100     # GPU: about 4 minutes on an H100
    python -m bench.tools.tune_tiling --smoke --out /tmp/tiling     # CPU: tiny shapes through the interpreter

The smoke run exercises every code path (and the output checks) on tiny shapes; its times are
interpreter times and say nothing about a GPU. The result of a GPU run belongs in ``kernels.backends.triton.tiling``
(and the kernels' ``*_walk`` / ``_block`` choices), with the run's report committed beside it.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from bench.env_info import run_description
from bench.shapes import GPU_SHAPES
from bench.report.tables import markdown
from bench.timing import copy_bandwidth
from infra.atomic_io import write_text_atomic
from infra.errors import check_output_folder, run_cli
from kernels.backends.triton import max_pool_kernel as mp
from kernels.backends.triton import relu_lrn_kernel as lrn
from kernels.experimental import triton_relu_lrn_cvec as cvec
from kernels.backends.triton import relu_lrn_pool_kernel as fused
from kernels.catalog import CUSTOM_OPS
from kernels.op_shapes import output_format
from kernels.backends.triton.tiling import ChannelWalk, channel_walk, walk_of
from kernels.paper import PAPER_LRN, PAPER_POOL

LRN = dict(PAPER_LRN)
POOL = dict(PAPER_POOL)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
PASSES = ("forward", "backward")
# 11 channels: a chunk of 5 leaves a partial last chunk; 25 positions: a block of 16 leaves a masked tail.
# Kept small because the interpreter's chunked walks cost a good fraction of a second per program.
SMOKE_SHAPE = (1, 11, 5, 5)


@dataclass
class Candidate:
    """One launch shape of one kernel: a label, and the call that runs the kernel with it."""

    label: str
    run: Callable[[], torch.Tensor]
    programs: int | None = None


def _walk_candidates(positions: int, channels: int, device: torch.device, blocks: tuple, smoke: bool,
                     call: Callable[[ChannelWalk | None], torch.Tensor]) -> list[Candidate]:
    if smoke:  # interpreter: a chunked and a whole-channel walk, small blocks
        walks = [walk_of(positions, channels, 16, LRN["size"]), walk_of(positions, channels, 64, channels)]
    else:
        walks = [channel_walk(positions, channels, device, gpu_block=block, interpreter_block=1,
                              programs_per_sm=pps, num_warps=warps, chunk_multiple=LRN["size"])
                 for block in blocks for pps in (4, 8, 16) for warps in (2, 4, 8) if block >= 32 * warps]
    unique = {(w.block, w.chunk, w.num_warps): w for w in walks}.values()
    return [Candidate("default", lambda: call(None))] + [
        Candidate(f"block={w.block} chunk={w.chunk} warps={w.num_warps}", lambda w=w: call(w), w.programs)
        for w in unique]


def _pool_candidates(smoke: bool, call: Callable[[int | None, int], torch.Tensor]) -> list[Candidate]:
    grid = [(64, 4), (256, 4)] if smoke else [(b, w) for b in (256, 512, 1024) for w in (4, 8)]
    return [Candidate("default", lambda: call(None, 4))] + [
        Candidate(f"block={b} warps={w}", lambda b=b, w=w: call(b, w)) for b, w in grid]


def kernel_cases(x: torch.Tensor, smoke: bool) -> dict[tuple[str, str], tuple[list[Candidate], int]]:
    """(op, direction) -> (candidates, bytes the kernel must move) for the input ``x``, for every op of
    ``kernels.catalog.CUSTOM_OPS`` (an op without candidates here is an error, not a gap)."""
    cases = _launch_candidates(x, smoke)
    missing = [(op, d) for op in CUSTOM_OPS for d in PASSES if (op, d) not in cases]
    if missing:
        raise LookupError(f"no launch-shape candidates for {missing}: add them to "
                          f"bench.tools.tune_tiling._launch_candidates")
    return cases


def _launch_candidates(x: torch.Tensor, smoke: bool) -> dict[tuple[str, str], tuple[list[Candidate], int]]:
    n, c, h, w = x.shape
    device, size = x.device, x.element_size()
    gen = torch.Generator(device=device).manual_seed(1)
    y_pool, offsets = mp.max_pool_forward(x, **POOL)
    fmt = output_format(x)
    g_full = torch.randn(x.shape, generator=gen, device=device, dtype=x.dtype).contiguous(memory_format=fmt)
    g_pool = torch.randn(y_pool.shape, generator=gen, device=device, dtype=x.dtype).contiguous(memory_format=fmt)
    _, fused_offsets = fused.relu_lrn_pool_forward(x, **LRN, **POOL)
    full, pooled = x.numel() * size, y_pool.numel() * size
    positions, pooled_positions = n * h * w, n * y_pool.shape[2] * y_pool.shape[3]
    lrn_blocks, fused_blocks = (128, 256, 512), (16, 32, 64)
    forward = _walk_candidates(positions, c, device, lrn_blocks, smoke, lambda wk: lrn.relu_lrn_forward(x, **LRN, walk=wk))
    if cvec.supports(x, LRN["size"]) is None:  # channels_last: the experimental channel-vector kernel too
        grid = [(16, 4)] if smoke else [(b, wp) for b in (64, 128, 256) for wp in (2, 4, 8) if b >= 32 * wp]
        forward += [Candidate(f"channel-vectors block={b} warps={wp}",
                              lambda b=b, wp=wp: cvec.relu_lrn_forward_cvec(x, **LRN, block=b, num_warps=wp))
                    for b, wp in grid]
    return {
        ("relu_lrn", "forward"): (forward, 2 * full),
        ("relu_lrn", "backward"): (_walk_candidates(
            positions, c, device, lrn_blocks, smoke, lambda wk: lrn.relu_lrn_backward(x, g_full, **LRN, walk=wk)),
            3 * full),
        ("relu_lrn_pool", "forward"): (_walk_candidates(
            pooled_positions, c, device, fused_blocks, smoke,
            lambda wk: fused.relu_lrn_pool_forward(x, **LRN, **POOL, walk=wk)[0]), full + pooled + pooled // size),
        ("relu_lrn_pool", "backward"): (_walk_candidates(
            positions, c, device, (64, 128, 256), smoke,
            lambda wk: fused.relu_lrn_pool_backward(x, g_pool, fused_offsets, **LRN, **POOL, walk=wk)),
            2 * full + pooled + pooled // size),
        ("max_pool", "forward"): (_pool_candidates(
            smoke, lambda b, wp: mp.max_pool_forward(x, **POOL, block=b, num_warps=wp)[0]),
            full + pooled + pooled // size),
        ("max_pool", "backward"): (_pool_candidates(
            smoke, lambda b, wp: mp.max_pool_backward(g_pool, offsets, (h, w), **POOL,
                                                      block=b, num_warps=wp)), full + pooled + pooled // size),
    }


def time_call(fn: Callable[[], torch.Tensor], on_gpu: bool) -> float:
    """Median seconds per call: do_bench on a GPU (L2 cleared between calls), one call on a CPU."""
    if on_gpu:
        import triton.testing

        return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median") / 1e3
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sweep(sites: list[str], dtypes: list[str], layouts: list[str], smoke: bool, device: torch.device,
          log=print) -> pd.DataFrame:
    on_gpu = device.type == "cuda"
    copy_bps = copy_bandwidth(device)
    rows = []
    for site in sites:
        shape = SMOKE_SHAPE if smoke else GPU_SHAPES[site]
        for dtype_name in dtypes:
            for layout in layouts:
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(shape, generator=gen).to(device=device, dtype=DTYPES[dtype_name])
                x = x.contiguous(memory_format=LAYOUTS[layout])
                for (op, direction), (candidates, nbytes) in kernel_cases(x, smoke).items():
                    reference = candidates[0].run()
                    for cand in candidates:
                        out = cand.run()
                        same = torch.allclose(out.float(), reference.float(), rtol=1e-5, atol=1e-6, equal_nan=True)
                        seconds = time_call(cand.run, on_gpu)
                        rows.append({"op": op, "pass": direction, "site": site, "dtype": dtype_name, "layout": layout,
                                     "config": cand.label, "programs": cand.programs, "us": seconds * 1e6,
                                     "GB/s": nbytes / seconds / 1e9, "pct_copy": 100 * nbytes / seconds / copy_bps,
                                     "matches_default": bool(same)})
                    best = min((r for r in rows[-len(candidates):]), key=lambda r: r["us"])
                    log(f"{op:>13} {direction:<8} {site} {dtype_name:<8} {layout:<13} default "
                        f"{rows[-len(candidates)]['us']:9.1f} us; best {best['us']:9.1f} us ({best['config']}, "
                        f"{best['pct_copy']:.0f}% of copy)")
    table = pd.DataFrame(rows)
    table.attrs["copy_GBps"] = copy_bps / 1e9
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per kernel and case: the default's time and the best config's, and their share of copy speed."""
    keys = ["op", "pass", "site", "dtype", "layout"]
    out = []
    for key, group in table.groupby(keys, sort=False):
        default = group[group["config"] == "default"].iloc[0]
        best = group.loc[group["us"].idxmin()]
        out.append(dict(zip(keys, key), default_us=default["us"], default_pct_copy=default["pct_copy"],
                        best_us=best["us"], best_pct_copy=best["pct_copy"], best_config=best["config"],
                        speedup=default["us"] / best["us"]))
    return pd.DataFrame(out)


def write_report(table: pd.DataFrame, out: Path, description: dict, smoke: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "tiling.csv", index=False)
    where = description.get("gpu_name") or f"CPU ({description.get('cpu_threads')} threads, Triton interpreter)"
    lines = [
        "# Triton launch shapes at AlexNet's activations: default vs the best of a sweep",
        "",
        f"- Command: `{description['command']}`",
        f"- Date: {datetime.date.today().isoformat()}; device: {where}; driver {description.get('driver')}",
        f"- Versions: torch {description['torch']}, triton {description['triton']}, CUDA {description['cuda']}",
        f"- Copy bandwidth measured in this run: {table.attrs['copy_GBps']:.0f} GB/s (read + write counted)",
        ("- Time: median of `triton.testing.do_bench` (L2 cleared between calls)." if description.get("gpu_name")
         else "- Time: one call, wall clock.")
        + " `pct_copy`: the bytes the kernel must move over its time, as a share of that copy bandwidth.",
    ]
    if smoke:
        lines.append("- SMOKE RUN on tiny shapes through the interpreter: checks the code path only; the times "
                     "say nothing about a GPU.")
    mismatched = table[~table["matches_default"]]
    lines += ["", f"Every alternative's output matched the default's: {'yes' if mismatched.empty else 'NO'}.", ""]
    if not mismatched.empty:
        lines += ["## Outputs that differ from the default (a bug)", "", markdown(mismatched), ""]
    lines += ["## Summary", "", markdown(summary(table), {"default_us": ".1f", "best_us": ".1f",
                                                          "default_pct_copy": ".0f", "best_pct_copy": ".0f",
                                                          "speedup": ".2f"}), ""]
    path = out / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.tune_tiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="conv1,conv2", help="AlexNet sites, of conv1, conv2")
    parser.add_argument("--dtypes", default="float32,bfloat16", help=f"of {list(DTYPES)}")
    parser.add_argument("--layouts", default="nchw,channels_last", help=f"of {list(LAYOUTS)}")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (required without a GPU)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        parser.error("no CUDA GPU here: the sweep needs one (use --smoke to check the code path on a CPU)")
    sites, dtypes, layouts = args.sites.split(","), args.dtypes.split(","), args.layouts.split(",")
    for name, values, allowed in (("site", sites, ("conv1", "conv2")), ("dtype", dtypes, DTYPES),
                                  ("layout", layouts, LAYOUTS)):
        if unknown := [v for v in values if v not in allowed]:
            parser.error(f"unknown {name} {unknown}; choose from {list(allowed)}")
    command = "python -m bench.tools.tune_tiling " + " ".join(argv if argv is not None else sys.argv[1:])
    outcome = {}

    def body():
        check_output_folder(args.out)
        table = sweep(sites, dtypes, layouts, args.smoke, device)
        print(f"report: {write_report(table, args.out, run_description(device, command), args.smoke)}")
        outcome["all_match"] = bool(table["matches_default"].all())
    status = run_cli(parser.prog, body)
    return status if status else (0 if outcome["all_match"] else 1)


if __name__ == "__main__":
    sys.exit(main())
