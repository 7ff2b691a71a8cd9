"""'Paper vs measured': the 2012 paper's systems statements next to what this run measured.

Each claim compares two AlexNet variants that differ in one switch, on the same kernels backend,
batch, precision and layout, from the same run (training-step time ratio). The paper's statements
are quoted with their section; where the paper makes no speed claim (LRN, overlapping pooling are
accuracy features) the row says so and the measured number is that feature's cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.claim_row import ClaimRow, markdown_table
from infra import report_kit

MATCH = ["kernels", "layout", "batch", "mode", "amp", "channels_last", "compile_model"]


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str  # the paper's statement, with its section
    variant: str  # the variant with the feature changed
    baseline: str  # the paper's configuration
    measure: str  # what the ratio means
    baseline_devices: str = "one"
    variant_devices: str = "one"


CLAIMS = (
    Claim("ReLU vs tanh",
          "Sec. 3.1: ReLU nets 'train several times faster than their equivalents with tanh units'; "
          "Fig. 1: a 4-layer CIFAR-10 CNN reaches 25% training error six times faster (in epochs).",
          "tanh", "paper", "step time tanh / ReLU (per-step cost; the paper's claim is about epochs to converge)"),
    Claim("LRN cost",
          "Sec. 3.3: LRN reduces top-1/top-5 error by 1.4%/1.2%; no statement about its cost.",
          "no-lrn", "paper", "step time with LRN / without LRN"),
    Claim("Overlapping pooling cost",
          "Sec. 3.4: 3/2 pooling reduces top-1/top-5 error by 0.4%/0.3% vs 2/2; no statement about its cost.",
          "pool-2x2", "paper", "step time 3x3/2 / 2x2/2"),
    Claim("Two towers vs one tower (one device)",
          "Sec. 3.2: 'The two-GPU net takes slightly less time to train than the one-GPU net' "
          "(one-GPU net: half the kernels in each conv layer, conv5/FC full size).",
          "one-gpu-half", "paper", "step time one-tower-half / two-tower, both on one device"),
    Claim("Two towers on two devices vs one tower",
          "Sec. 3.2: as above, the paper's setting (two GTX 580, towers on separate GPUs).",
          "one-gpu-half", "paper", "step time one-tower-half (1 device) / two-tower (2 devices)",
          baseline_devices="two", variant_devices="one"),
)


def _matches(models: pd.DataFrame, claim: Claim) -> list[dict]:
    """All (baseline, variant) result pairs for a claim, matched on everything but the switch."""
    if models.empty:
        return []
    m = models[models["mode"] == "train"]
    base = m[(m["variant"] == claim.baseline) & (m["devices"] == claim.baseline_devices)]
    var = m[(m["variant"] == claim.variant) & (m["devices"] == claim.variant_devices)]
    rows = []
    for _, b in base.iterrows():
        for _, v in var.iterrows():
            same = all(str(b[c]) == str(v[c]) for c in MATCH if c != "layout")
            # the baseline is the paper's two-tower net; only the one-tower control changes the layout
            layout_ok = b["layout"] == "two-gpu" and (claim.variant == "one-gpu-half" or v["layout"] == "two-gpu")
            if same and layout_ok:
                rows.append({"baseline": b, "variant": v})
    return rows


def claim_rows(models: pd.DataFrame) -> list[ClaimRow]:
    """One row per claim and matched configuration; 'not measured' where no pair exists."""
    rows = []
    for claim in CLAIMS:
        pairs = _matches(models, claim)
        if not pairs:
            rows.append(_row(claim, "", None, "not measured"))
        for pair in pairs:
            b, v = pair["baseline"], pair["variant"]
            if claim.baseline == "paper" and claim.variant in ("no-lrn", "pool-2x2"):
                ratio = b["time_s"] / v["time_s"]  # cost of the paper's feature
            else:
                ratio = v["time_s"] / b["time_s"]
            config = (f"kernels {b['kernels']}, batch {int(b['batch'])}, "
                      f"{'bf16' if b['amp'] == 'bf16' else 'fp32'}{', channels_last' if b['channels_last'] else ''}"
                      f"{', compiled' if b['compile_model'] else ''}"
                      f"{', CPU run' if bool(b.get('cpu', False)) else ''}")
            rows.append(_row(claim, config, ratio, _verdict(claim, ratio)))
    return rows


def _row(claim: Claim, config: str, ratio: float | None, result: str) -> ClaimRow:
    """A step-time ratio from one run: no interval, no effect at 1, the result said in words."""
    return ClaimRow(claim=claim.name, paper=claim.paper, metric=claim.measure, unit="x", mean=ratio,
                    n=0 if ratio is None else 1, null=1.0, setting=config, verdict_override=result)


COLUMNS = [("claim", lambda r: r.claim), ("paper", lambda r: r.paper), ("measured", lambda r: r.metric),
           ("config", lambda r: r.setting), ("ratio", lambda r: report_kit.cell(r.mean, ".3f")),
           ("result", lambda r: r.verdict)]


def claims_markdown(models: pd.DataFrame) -> str:
    """The claims as a Markdown table."""
    return "\n".join(markdown_table(claim_rows(models), COLUMNS)) + "\n"


def _verdict(claim: Claim, ratio: float) -> str:
    if claim.variant == "one-gpu-half":
        # paper: the two-tower net is (slightly) faster, i.e. one-tower/two-tower > 1
        return "agrees (two-tower faster)" if ratio > 1 else "disagrees (one-tower faster)"
    if claim.variant == "tanh":
        return f"tanh step costs {ratio:.2f}x ReLU's (epochs-to-accuracy is an ablation-study result)"
    return f"feature costs {100 * (ratio - 1):+.1f}% step time"
