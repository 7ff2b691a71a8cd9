"""The study folder's layout and its records: run names, the two regimes, the arms, and ``load_study``.

``<out>/runs/**/*.json`` holds one record per finished run, named after it (``fig1/relu-lr0.01/seed0``,
``ablation/lrn/seed1``, ``lr-trial/base-lr0.005/seed0``: the earlier single-lr study; ``lr-grid/lrn-lr0.01/seed0``
and ``tuned/lrn/seed1``: the per-arm learning rates and the claim runs at them; the paper regime's under ``paper/``);
``<out>/study.json`` the invocations (command, machine, versions, dates, wall time); ``<out>/probes/`` the
LRN probes; ``<out>/activation-profile.json`` the tanh/ReLU throughput profile. A folder that cannot be read raises ``ReportError`` (a ``UsageError``: one line on the CLI).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from infra.errors import UsageError

DEFAULT_OUT = "reports/cifar10-cpu"
RUN_NAME = re.compile(r"^(?:(?P<regime>paper)/)?(?:fig1/(?P<act>relu|tanh)-lr(?P<lr>[0-9.e+-]+)|ablation/(?P<arm>[a-z0-9-]+)"
                      r"|lr-trial/(?P<trial_arm>[a-z0-9-]+?)-lr(?P<trial_lr>[0-9.e+-]+)"
                      r"|lr-grid/(?P<grid_arm>[a-z0-9-]+?)-lr(?P<grid_lr>[0-9.e+-]+)|tuned/(?P<tuned_arm>[a-z0-9-]+))"
                      r"/seed(?P<seed>\d+)$")
# the two regimes, in the order of the report's columns
REGIMES = ("unit", "paper")
REGIME_LABELS = {"unit": "unit-variance inputs, PyTorch init", "paper": "paper regime: 0-255 px, cuda-convnet init"}
REGIME_TEXT = {"unit": "inputs mean-subtracted and divided by the per-channel std, PyTorch's default initialisation",
               "paper": "cuda-convnet's regime: mean-subtracted 0-255 pixels (not divided by the std), Gaussian "
                        "weights with std 1e-4 in conv1 and 1e-2 in the other layers, biases 0"}
FIG_SUFFIX = {"unit": "", "paper": "-paper"}
UNIT_LRN_PROBE = "lrn_terms_unit"
ARM_LABELS = {"base": "baseline: ReLU, 3/2 pooling, no LRN", "lrn": "+ LRN (k=2, n=5, alpha=1e-4, beta=0.75)",
              "pool-2x2": "2/2 pooling instead of 3/2",
              "two-tower": "two towers, half the kernels each (joined at conv3 and the classifier)",
              "one-tower-half": "one tower, half the kernels in every conv layer"}


# sub-folders of runs/ that hold another study's records (bench.ablations.conv_local: cuda-convnet's
# conv-local nets), read by that study's own report
OTHER_STUDIES = ("conv-local",)


class ReportError(UsageError, ValueError):
    """The study folder cannot be read (missing, or a run file that is not valid JSON)."""


def load_study(out: str | Path) -> dict:
    """The study folder's records: ``runs`` (run name -> record), ``study`` (``study.json``, {} without it) and
    the two LRN probes (None without them); a folder or file that cannot be read raises ``ReportError``."""
    out = Path(out)
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir} does not exist: no run of the study has finished there "
                          "(run python -m bench.ablations.cifar first)")
    runs = {}
    for path in sorted(runs_dir.rglob("*.json")):
        name = path.relative_to(runs_dir).with_suffix("").as_posix()
        if name.split("/")[0] in OTHER_STUDIES:
            continue
        if not RUN_NAME.match(name):
            raise ReportError(f"{path} is not a run record of this study (unexpected name {name!r})")
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path} is not valid JSON ({exc}); delete it and rerun the study to redo that run") from None
        if not isinstance(rec, dict) or "spec" not in rec or "curve" not in rec:
            raise ReportError(f"{path} is not a run record (no spec or curve); delete it and rerun the study")
        runs[name] = rec
    study_path, probe_path = out / "study.json", out / "probes" / "lrn_regime.json"
    terms_path = out / "probes" / f"{UNIT_LRN_PROBE}.json"
    try:
        study = json.loads(study_path.read_text()) if study_path.exists() else {}
        probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
        terms = json.loads(terms_path.read_text()) if terms_path.exists() else None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{study_path}, {probe_path} or {terms_path} is not valid JSON ({exc})") from None
    profile_path = out / "activation-profile.json"  # bench.tools.cifar_activation_profile, when it has run
    try:
        profile = json.loads(profile_path.read_text()) if profile_path.exists() else None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{profile_path} is not valid JSON ({exc}); rerun bench.tools.cifar_activation_profile") from None
    return {"runs": runs, "study": study, "lrn_regime": probe, "unit_lrn_probe": terms, "activation_profile": profile}
