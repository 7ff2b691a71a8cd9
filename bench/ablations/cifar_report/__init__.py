"""Report of the CPU-scale CIFAR-10 study (``bench.ablations.cifar``), rendered from its per-run files alone.

``load_study(out)`` (``records``) reads ``<out>/runs/**/*.json`` (one record per finished run) and
``<out>/study.json`` (the invocations: command, machine, versions, dates, wall time); ``analyse``
(``analysis``) groups the runs into the three experiments and computes one claim row each - the paper's
figure, the measured mean with its 95% interval (``bench.ablations.stats``: paired by seed), the seeds, and
the interval's verdict; ``write_report(out)`` (``render``) writes ``<out>/README.md`` (``markdown``) with
``figure1.png``, ``deltas.png`` and ``curves.png`` (``plots``). A study still running renders too: what is
missing is counted, never filled in.

``python -m bench.ablations.cifar_report [OUT] [--update-readme README.md]`` re-renders without training
anything; ``--update-readme`` also puts the claim rows, with their caveats, between the README's
``<!-- cifar10-cpu:begin -->`` and ``<!-- cifar10-cpu:end -->`` lines (``readme``).
"""
from bench.ablations.cifar_report.analysis import (CLAIM_KEYS, CLAIM_TEXT, DELTA_CLAIMS, DEPENDS_ON_LR,
                                                   NOT_NORMALISATION, SHARED_RATE, TRIAL_MARGIN, _row, analyse, analyse_regime,
                                                   best_val_lr, boundary_drop, claims, epoch_errors, fastest_lr,
                                                   lr_dependence, lrn_absent, per_epoch_crossing, sensitivity,
                                                   trial_trains)
from bench.ablations.cifar_report.markdown import fmt_cell, fmt_measured, headline_rows, render_markdown
from bench.ablations.cifar_report.plots import plot_curves, plot_deltas, plot_figure1, plot_sensitivity
from bench.ablations.cifar_report.readme import README_BEGIN, README_END, README_SECTION, readme_block, update_readme
from bench.ablations.cifar_report.records import (ARM_LABELS, DEFAULT_OUT, FIG_SUFFIX, REGIME_LABELS, REGIME_TEXT,
                                                  REGIMES, RUN_NAME, UNIT_LRN_PROBE, ReportError, load_study)
from bench.ablations.cifar_report.render import cli, write_report
from bench.report.claim_row import fmt_paper

__all__ = [
    "DEPENDS_ON_LR", "NOT_NORMALISATION", "SHARED_RATE", "best_val_lr", "lr_dependence", "lrn_absent", "plot_sensitivity",
    "sensitivity", "ARM_LABELS", "CLAIM_KEYS", "CLAIM_TEXT", "DEFAULT_OUT", "DELTA_CLAIMS", "FIG_SUFFIX", "README_BEGIN", "README_END",
    "README_SECTION", "REGIME_LABELS", "REGIME_TEXT", "REGIMES", "RUN_NAME", "TRIAL_MARGIN", "UNIT_LRN_PROBE",
    "ReportError", "_row", "analyse", "analyse_regime", "boundary_drop", "claims", "cli", "epoch_errors",
    "fastest_lr", "fmt_cell", "fmt_measured", "fmt_paper", "headline_rows", "load_study", "per_epoch_crossing",
    "plot_curves", "plot_deltas", "plot_figure1", "readme_block", "render_markdown", "trial_trains", "update_readme",
    "write_report",
]
