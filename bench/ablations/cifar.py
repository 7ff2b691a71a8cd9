"""The paper's CIFAR-10 experiments at their own scale, on a CPU: ``python -m bench.ablations.cifar``.

Three experiments on the paper's four-layer CNN (``alexnet.cifar_cnn``), real CIFAR-10 at 32 px:

* ``fig1`` - Figure 1, ReLU vs tanh: epochs (and training seconds) until the running training error
  reaches 25 %. No regularisation (no weight decay, no augmentation, no LRN). Each activation gets its
  own learning rate, the fastest of a grid on the first seed (a grid run stops as soon as it is slower
  than the best so far; a best rate at the edge of the grid extends the grid by a factor 2 that way,
  up to ``--grid-extensions`` times); then every seed runs at that rate. A run stops one epoch after
  the crossing, or at ``--fig1-max-epochs`` ("not reached in N epochs").
* ``lrn`` - the net with and without LRN after the first two pooling layers (paper: 13 % -> 11 % test
  error), ``--seeds`` seeds paired by seed.
* ``pool`` - overlapping 3/2 vs 2/2 max-pooling, same protocol (the paper's -0.4 % is on ImageNet).

Two regimes (``--regime``), each a pair of switches of a run's settings, the net the same:

* ``unit`` (the first study): inputs mean-subtracted and divided by the per-channel std, PyTorch's
  default initialisation; records in ``<out>/runs/{fig1,ablation}/``.
* ``paper``: cuda-convnet's regime for this net (``layers-18pct``), mean-subtracted 0-255 pixels (no
  division by the std) and Gaussian weights, std 1e-4 in conv1 and 1e-2 elsewhere, biases 0; records in
  ``<out>/runs/paper/``. Its parts run in the order of importance: ``lrn`` (base and LRN arms), then
  ``fig1``, then ``pool`` (the 2/2 arm, sharing the base arm). The unit regime's rate 0.01 does not
  train here, so the ablation's rate is chosen by one rule for every arm: the largest of
  ``--paper-ablation-lrs`` (tried from the top) at which a one-epoch trial of each arm (base, LRN, 2/2;
  seed 0; records in ``runs/paper/lr-trial/``) ends with a finite loss and a running training error
  below chance by more than 10 pp; Figure 1 searches its own grid ``--paper-lrs`` with the unit
  regime's protocol, from the largest rate down (the give-up rule then costs less; the fastest rate
  is the same whatever the order). A paper-regime run still at chance after ``--chance-stop-epochs``
  epochs stops there ("at-chance"), a result reported as such.

Learning rates that favour no arm (``--protocol per-arm``, the default): every arm of ``lrn``, ``pool`` and
``towers`` gets its own rate by one rule, the lowest validation error after a short budget. A validation
split of ``--val-images`` training images (a fixed seeded draw, ``cifar_train.holdout_indices``; never the
test set) is held out; each arm trains ``--grid-epochs`` epochs at every rate of the regime's grid
(``--unit-lr-grid`` / ``--paper-lr-grid``; seeds ``--grid-seeds``; records in ``runs/[paper/]lr-grid/``,
which never evaluate on the test set), the rate with the lowest mean validation error is that arm's,
and the claim runs (``runs/[paper/]tuned/<arm>/seed<k>``) train each arm at its own rate: ``--epochs``
epochs in the unit regime, ``--paper-epochs`` with the lr divided by 10 at each of ``--paper-lr-drops`` in
the paper regime. The grid runs also give each claim's delta at every rate of the grid (the report's
sensitivity table). ``--protocol single-lr`` is the earlier study: one rate for every arm (``--lr``, or in
the paper regime the largest of ``--paper-ablation-lrs`` at which every arm trains), records in
``runs/[paper/]ablation/``, which stay and are reported as that study.

``towers`` (paper section 3.2): the net as two towers, each with half of every conv layer's kernels
(``alexnet.cifar_cnn``, layout ``two-gpu``: the towers exchange activations only at conv3 and in the
classifier), against one tower with half the kernels in every conv layer (the paper's one-GPU net).

Where LRN acts: every LRN run records ``alpha * sum a^2`` against ``k`` (percentiles over a fixed
batch) at its start, middle and end. The unit regime's LRN records predate that, so the ``lrn`` part of
either regime retrains the unit regime's LRN arm once, seed 0, with the same settings, into
``<out>/probes/lrn_terms_unit.json`` (its test error also checks that the committed record reproduces).

Every run of a study uses the same precision (``--amp``): by default bfloat16 autocast for the
convolutions and the classifier with float32 master weights, loss and LRN.

``lrn`` and ``pool`` share one recipe and one baseline arm (ReLU, 3/2 pooling, no LRN), each other arm
differing from it in one switch: SGD momentum 0.9, weight decay 5e-4, random horizontal flips, batch
128, ``--epochs`` epochs at ``--lr`` divided by 10 from ``--lr-drop-epoch`` on; test error after each.

Every run's record is one small JSON file, ``<out>/runs/<experiment>/<arm>/seed<k>.json``, written
the moment the run ends; a run whose file exists is never redone (its settings must match: a file made
with other settings is an error, not a silent mix), and an interrupted run resumes at its last
finished epoch from ``--state-dir``. The report (``bench.ablations.cifar_report``) is rendered from
those files alone at the end, or with ``--report-only`` without training anything.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from alexnet.data import DataError, cifar10_archive
from bench.ablations import cifar_report
from bench.ablations.cifar_report import trial_trains
from bench.ablations.cifar_train import RunSpec, load_cifar_tensors, lrn_regime, train_run, with_later_keys
from infra import report_kit
from infra.atomic_io import write_json_atomic
from infra.errors import UsageError, check_output_folder, run_cli
from infra.machine import cpu_info, machine_info, source_revision

PROG = "python -m bench.ablations.cifar"
EXPERIMENTS = ("fig1", "lrn", "pool", "towers")
PROTOCOLS = ("per-arm", "single-lr")
# arms of the lrn, pool and towers experiments: the shared baseline and one switch each; the towers
# experiment sets the paper's two-GPU net against its one-GPU one (half the kernels in every conv layer)
ARMS = {"base": {}, "lrn": {"lrn": True}, "pool-2x2": {"pool": "2/2"},
        "two-tower": {"layout": "two-gpu"}, "one-tower-half": {"widths": (16, 16, 32)}}
EXPERIMENT_ARMS = {"lrn": ("base", "lrn"), "pool": ("base", "pool-2x2"), "towers": ("two-tower", "one-tower-half")}
ACTIVATIONS = ("relu", "tanh")
# regime -> the run settings it switches, and the folder of its records under <out>/runs/
REGIMES = {"unit": {"input_scale": "unit", "init": "default"},
           "paper": {"input_scale": "pixels", "init": "cuda-convnet"}}
REGIME_PREFIX = {"unit": "", "paper": "paper/"}
TRIAL_ARMS = ("base", "lrn", "pool-2x2")  # every arm must train at the paper regime's ablation rate
UNIT_LRN_PROBE = "lrn_terms_unit"  # <out>/probes/<this>.json


class StudyError(UsageError, ValueError):
    """A request the study cannot honour (unknown experiment, run files made with other settings)."""


def _regime_settings(args, regime: str) -> dict:
    extra = {"chance_stop_epochs": args.chance_stop_epochs} if regime != "unit" else {}
    return {**REGIMES[regime], **extra}


def fig1_spec(args, activation: str, lr: float, seed: int, regime: str = "unit") -> RunSpec:
    return RunSpec(activation=activation, lr=lr, seed=seed, max_epochs=args.fig1_max_epochs, weight_decay=0.0,
                   flip=False, batch_size=args.batch_size, points_per_epoch=args.points_per_epoch,
                   threshold=args.threshold, epochs_past_threshold=1, test_every_epoch=False,
                   max_steps=args.max_steps, amp=args.amp, **_regime_settings(args, regime))


def ablation_spec(args, arm: str, seed: int, regime: str = "unit", lr: float | None = None,
                  epochs: int | None = None) -> RunSpec:
    epochs = args.epochs if epochs is None else epochs
    drops = (args.lr_drop_epoch,) if args.lr_drop_epoch is not None and args.lr_drop_epoch < epochs else ()
    return RunSpec(activation="relu", lr=args.lr if lr is None else lr, seed=seed, max_epochs=epochs,
                   lr_drop_epochs=drops, weight_decay=5e-4, flip=True, batch_size=args.batch_size,
                   points_per_epoch=args.points_per_epoch, test_every_epoch=True, max_steps=args.max_steps,
                   amp=args.amp, **_regime_settings(args, regime), **ARMS[arm])


def tuned_spec(args, arm: str, seed: int, regime: str, lr: float, grid: bool = False) -> RunSpec:
    """A per-arm-protocol run: the claim run of ``arm`` at its own rate ``lr`` or, ``grid=True``, its
    learning-rate trial (``--grid-epochs``, constant rate, validation error only, no test evaluation)."""
    if grid:
        epochs, drops = args.grid_epochs, ()
    elif regime == "unit":
        epochs = args.epochs
        drops = (args.lr_drop_epoch,) if args.lr_drop_epoch is not None and args.lr_drop_epoch < epochs else ()
    else:
        epochs, drops = args.paper_epochs, tuple(e for e in args.paper_lr_drops if e < args.paper_epochs)
    return RunSpec(activation="relu", lr=lr, seed=seed, max_epochs=epochs, lr_drop_epochs=drops, weight_decay=5e-4,
                   flip=True, batch_size=args.batch_size, points_per_epoch=args.points_per_epoch,
                   test_every_epoch=not grid, test_at_end=not grid, max_steps=args.max_steps, amp=args.amp,
                   val_images=args.val_images, **_regime_settings(args, regime), **ARMS[arm])


def data_key(args) -> dict:
    """What identifies the training data without decoding it (stored in and checked against every run)."""
    if args.data == "synthetic":
        return {"source": "synthetic", "train": args.synthetic_train, "test": args.synthetic_test,
                "limit_per_class": args.limit_per_class}
    path = cifar10_archive() if args.data == "cifar10" else Path(args.data).expanduser()
    if not path.exists():
        raise DataError(f"data {args.data!r}: no such file or directory {path}")
    key = {"source": path.name, "limit_per_class": args.limit_per_class}
    if path.is_file():
        key["bytes"] = path.stat().st_size
    return key


class Study:
    """Runs (or finds) each training run; keeps the data loaded once; prints progress with an ETA."""

    def __init__(self, args, log=print):
        self.args, self.log = args, log
        self.out = Path(args.out)
        self.state_dir = Path(args.state_dir)
        self.key = data_key(args)
        self._data: dict[int, object] = {}  # validation images -> the tensors
        self.trained_epochs, self.trained_seconds = 0, 0.0
        self.remaining = None  # callable -> estimated epochs left in the whole study

    def data(self, val_images: int = 0):
        """The tensors, with ``val_images`` held out of the training set (decoded once per split)."""
        if val_images not in self._data:
            a = self.args
            self._data.clear()  # one split in memory at a time
            self.log(f"decoding {a.data} into memory (32 px, normalised, {val_images} validation images) ...")
            self._data[val_images] = load_cifar_tensors(a.data, limit_per_class=a.limit_per_class,
                                                        synthetic_train=a.synthetic_train,
                                                        synthetic_test=a.synthetic_test, val_images=val_images)
            self.log(f"  {self._data[val_images].describe()}")
        return self._data[val_images]

    def run(self, name: str, spec: RunSpec, give_up_after: float | None = None, folder: str = "runs") -> dict:
        path = self.out / folder / f"{name}.json"
        if path.exists():
            try:
                rec = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise StudyError(f"{path} is not valid JSON ({exc}); delete it to redo that run") from None
            if not spec.matches(rec.get("spec")) or rec.get("data_key") != self.key:
                stored = with_later_keys(rec.get("spec") or {})
                diff = [f"{k}: file {stored.get(k)!r} vs now {v!r}" for k, v in spec.to_dict().items()
                        if stored.get(k) != v]
                if rec.get("data_key") != self.key:
                    diff.append(f"data: file {rec.get('data_key')!r} vs now {self.key!r}")
                raise StudyError(f"{path} was made with other settings ({'; '.join(diff)}); pass another --out "
                                 "or delete that file")
            return rec
        state = self.state_dir / ("" if folder == "runs" else f"{folder}/") / f"{name}.pt"
        self.log(f"[{name}] {'resuming' if state.exists() else 'training'}: {_describe(spec)}"
                 + (f"; stops unless under 25% by epoch {give_up_after:.2f}" if give_up_after is not None else ""))
        data = self.data(spec.val_images)
        self._tick = time.perf_counter()
        rec = train_run(spec, data, state_path=state, give_up_after=give_up_after,
                        on_epoch=lambda e: self._progress(name, spec, e))
        rec["data_key"] = self.key
        rec["finished"] = _now()
        write_json_atomic(path, rec)
        state.unlink(missing_ok=True)
        self.log(f"[{name}] done: {_outcome(rec)}")
        return rec

    def _progress(self, name: str, spec: RunSpec, e: dict) -> None:
        now = time.perf_counter()
        self.trained_epochs += 1
        self.trained_seconds += now - self._tick
        self._tick = now
        last = e["curve"][-1] if e["curve"] else {}
        test = e["test_curve"][-1]["test_top1_err"] if e["test_curve"] else None
        ips = e["steps"] * spec.batch_size / e["train_seconds"] if e["train_seconds"] else 0.0
        eta = ""
        if self.remaining is not None and self.trained_epochs:
            left = self.remaining()
            eta = f"; study ETA ~{_hms(left * self.trained_seconds / self.trained_epochs)} ({left:.0f} epochs)"
        self.log(f"  [{name}] epoch {e['epoch']}/{spec.max_epochs}: train err {_pct(last.get('train_top1_err'))}"
                 + (f", test err {_pct(test)}" if test is not None else "") + f", {ips:,.0f} img/s{eta}")


def run_fig1(study: Study, seeds: list[int], regime: str = "unit") -> None:
    a = study.args
    prefix = REGIME_PREFIX[regime]
    lrs = a.lrs if regime == "unit" else a.paper_lrs
    for act in ACTIVATIONS:
        grid: dict[float, dict] = {}
        # unit: from the lowest rate up, as the first study ran; paper: from the highest down, where rates that
        # stay at chance stop early and the first that trains bounds the rest (the fastest rate is the same)
        queue = sorted(set(lrs), reverse=regime != "unit")
        extended = 0
        while queue:
            lr = queue.pop(0)
            reached = [r["epochs_to_threshold"] for r in grid.values() if r["epochs_to_threshold"] is not None]
            grid[lr] = study.run(f"{prefix}fig1/{act}-lr{lr:g}/seed{seeds[0]}", fig1_spec(a, act, lr, seeds[0], regime),
                                 give_up_after=min(reached) if reached else None)
            if not queue and extended < a.grid_extensions:
                best = cifar_report.fastest_lr(grid)
                if grid[best]["epochs_to_threshold"] is not None and len(grid) > 1:
                    step = 2.0 if best == max(grid) else 0.5 if best == min(grid) else None
                    if step is not None:
                        queue.append(best * step)
                        extended += 1
        best = cifar_report.fastest_lr(grid)
        study.log(f"fig1 ({regime}) {act}: fastest rate of the grid {sorted(grid)} is {best:g}")
        for seed in seeds[1:]:
            study.run(f"{prefix}fig1/{act}-lr{best:g}/seed{seed}", fig1_spec(a, act, best, seed, regime))


def choose_ablation_lr(study: Study, seeds: list[int], regime: str) -> float:
    """The ablation's rate: ``--lr`` in the unit regime; in the paper regime the largest of ``--paper-ablation-lrs``
    at which a one-epoch trial of every arm of ``TRIAL_ARMS`` trains (``trial_trains``); when none does, the rate
    whose worst arm ends lowest, so that the runs show how it fails."""
    a = study.args
    if regime == "unit":
        return a.lr
    tried: dict[float, list[dict]] = {}
    for lr in sorted(set(a.paper_ablation_lrs), reverse=True):
        tried[lr] = []
        for arm in TRIAL_ARMS:
            rec = study.run(f"{REGIME_PREFIX[regime]}lr-trial/{arm}-lr{lr:g}/seed{seeds[0]}",
                            ablation_spec(a, arm, seeds[0], regime, lr=lr, epochs=1))
            tried[lr].append(rec)
            if not trial_trains(rec):
                break
        else:
            study.log(f"ablation ({regime}): rate {lr:g}, the largest of {sorted(tried)} at which every arm trains")
            return lr
    lr = min(tried, key=lambda r: max(t["final_train_err"] if t["final_train_err"] is not None else math.inf
                                      for t in tried[r]))
    study.log(f"ablation ({regime}): no rate of {sorted(tried)} trains every arm; running at {lr:g}, the least bad")
    return lr


def run_ablations(study: Study, experiments: list[str], seeds: list[int], regime: str = "unit",
                  lr: float | None = None) -> None:
    arms = list(dict.fromkeys(arm for e in experiments if e in EXPERIMENT_ARMS for arm in EXPERIMENT_ARMS[e]))
    for seed in seeds:  # seed-major: a stop leaves complete pairs
        for arm in arms:
            study.run(f"{REGIME_PREFIX[regime]}ablation/{arm}/seed{seed}",
                      ablation_spec(study.args, arm, seed, regime, lr=lr))


def choose_arm_lr(study: Study, arm: str, regime: str, grid_seeds: list[int]) -> float:
    """``arm``'s own rate: every rate of the regime's grid trained ``--grid-epochs`` epochs on each grid seed
    (resumable, one record each), the lowest mean validation error wins (``cifar_report.best_val_lr``)."""
    a = study.args
    rates = a.unit_lr_grid if regime == "unit" else a.paper_lr_grid
    grid: dict[float, list[dict]] = {}
    for lr in sorted(set(rates), reverse=True):
        grid[lr] = [study.run(f"{REGIME_PREFIX[regime]}lr-grid/{arm}-lr{lr:g}/seed{seed}",
                              tuned_spec(a, arm, seed, regime, lr, grid=True)) for seed in grid_seeds]
    best = cifar_report.best_val_lr(grid)
    study.log(f"per-arm lr ({regime}) {arm}: {best:g}, the lowest validation error of the grid {sorted(grid)}")
    return best


def run_per_arm(study: Study, experiments: list[str], seeds: list[int], regime: str, grid_seeds: list[int]) -> None:
    """Experiment by experiment: each arm's rate (``choose_arm_lr``), then the claim runs seed by seed (a stop
    leaves complete pairs); a baseline shared by two experiments is chosen and run once."""
    chosen: dict[str, float] = {}
    for e in [e for e in experiments if e in EXPERIMENT_ARMS]:
        for arm in EXPERIMENT_ARMS[e]:
            if arm not in chosen:
                chosen[arm] = choose_arm_lr(study, arm, regime, grid_seeds)
        for seed in seeds:
            for arm in EXPERIMENT_ARMS[e]:
                study.run(f"{REGIME_PREFIX[regime]}tuned/{arm}/seed{seed}",
                          tuned_spec(study.args, arm, seed, regime, chosen[arm]))


def probe_lrn_regime(study: Study) -> None:
    """``<out>/probes/lrn_regime.json``: how far below ``k`` the LRN term is here (``cifar_train.lrn_regime``)."""
    path = study.out / "probes" / "lrn_regime.json"
    if not path.exists():
        write_json_atomic(path, {**lrn_regime(study.data()), "data_key": study.key, "measured": _now()})
        study.log(f"wrote {path}")


def probe_unit_lrn_terms(study: Study, seeds: list[int]) -> dict:
    """``<out>/probes/lrn_terms_unit.json``: the unit regime's LRN arm, first seed, retrained with the same
    settings, for its ``lrn_terms`` (the committed records predate them); resumable like any run."""
    return study.run(UNIT_LRN_PROBE, ablation_spec(study.args, "lrn", seeds[0], "unit"), folder="probes")


def _estimate_left(study: Study, experiments: list[str], fig1_seeds: list[int], seeds: list[int],
                   regime: str = "unit", grid_seeds: list[int] = (0,)):
    """Epochs the study still has to train (fig1 runs guessed from the finished ones, else half the cap)."""
    a = study.args
    runs_dir = study.out / "runs" / REGIME_PREFIX[regime].rstrip("/")
    lrs = a.lrs if regime == "unit" else a.paper_lrs

    def left() -> float:
        total = 0.0
        if "fig1" in experiments:
            for act in ACTIVATIONS:
                done = [json.loads(p.read_text()) for p in runs_dir.glob(f"fig1/{act}-lr*/seed*.json")]
                per_run = (sum(r["epochs_run"] for r in done) / len(done)) if done else a.fig1_max_epochs / 2
                total += max(len(lrs) + len(fig1_seeds) - 1 - len(done), 0) * per_run
        arms = {arm for e in experiments if e in EXPERIMENT_ARMS for arm in EXPERIMENT_ARMS[e]}
        if a.protocol == "per-arm":
            epochs = a.epochs if regime == "unit" else a.paper_epochs
            grid = len(a.unit_lr_grid if regime == "unit" else a.paper_lr_grid) * len(grid_seeds)
            done = sum(1 for p in runs_dir.glob("tuned/*/seed*.json") if p.parent.name in arms)
            trials = sum(1 for p in runs_dir.glob("lr-grid/*/seed*.json") if p.parent.name.rsplit("-lr", 1)[0] in arms)
            return total + max(len(arms) * len(seeds) - done, 0) * epochs + max(len(arms) * grid - trials, 0) * a.grid_epochs
        done = len(list(runs_dir.glob("ablation/*/seed*.json")))
        total += max(len(arms) * len(seeds) - done, 0) * a.epochs
        if regime != "unit" and arms:
            trials = len(list(runs_dir.glob("lr-trial/*/seed*.json")))
            total += max(len(TRIAL_ARMS) - trials, 0)  # at least one rate's trials
        if "lrn" in experiments and not (study.out / "probes" / f"{UNIT_LRN_PROBE}.json").exists():
            total += a.epochs
        return total
    return left


def parse_seeds(spec: str, name: str) -> list[int]:
    """'3' -> [0, 1, 2]; '0,4,7' -> [0, 4, 7]."""
    try:
        seeds = [int(s) for s in spec.split(",") if s.strip()] if "," in spec else list(range(int(spec)))
    except ValueError:
        raise StudyError(f"{name} must be a count or a comma list of integers, got {spec!r}") from None
    if not seeds:
        raise StudyError(f"{name} must name at least one seed, got {spec!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="cifar10",
                   help="'cifar10' (../shared/data/cifar10-jpg.tar.gz or $ALEXNET_CIFAR10), an archive or ImageFolder "
                        "with train/ and test/, or 'synthetic'")
    p.add_argument("--experiments", default=None,
                   help=f"comma list of {', '.join(EXPERIMENTS)} (default: all; towers only in the paper regime under --protocol "
                        "per-arm)")
    p.add_argument("--out", default="reports/cifar10-cpu", help="report folder; per-run records go to OUT/runs/")
    p.add_argument("--state-dir", default="runs/cifar10-cpu-state", help="per-epoch state of unfinished runs")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: the usable cores)")
    p.add_argument("--report-only", action="store_true", help="re-render the report from OUT/runs, train nothing")
    p.add_argument("--regime", default="unit", choices=tuple(REGIMES),
                   help="unit: unit-variance inputs, PyTorch's initialisation (the first study); paper: cuda-convnet's "
                        "mean-subtracted 0-255 pixels and Gaussian initialisation (std 1e-4 conv1, 1e-2 others), "
                        "records under OUT/runs/paper/, parts in the order lrn, fig1, pool")
    p.add_argument("--amp", default="bf16", choices=("bf16", "off"),
                   help="bf16: bfloat16 autocast for convolutions and classifier, LRN in float32 (2.3x faster than "
                        "float32 on a CPU with AMX); off: float32 throughout")
    g = p.add_argument_group("Figure 1 (ReLU vs tanh)")
    g.add_argument("--fig1-seeds", default="3", help="seeds: a count (0..N-1) or a comma list; the first picks the lr")
    g.add_argument("--lrs", default="0.005,0.01,0.02,0.04", help="learning-rate grid, searched per activation")
    g.add_argument("--grid-extensions", type=int, default=2, help="times a best rate at the grid's edge extends it")
    g.add_argument("--fig1-max-epochs", type=int, default=30, help="budget of a run that never reaches the threshold")
    g.add_argument("--threshold", type=float, default=0.25, help="training error to reach")
    g.add_argument("--paper-lrs", default="0.00125,0.0025,0.005,0.01",
                   help="the paper regime's learning-rate grid, searched per activation from the top")
    g = p.add_argument_group("LRN and pooling (shared recipe)")
    g.add_argument("--seeds", default="5", help="seeds of every arm: a count or a comma list")
    g.add_argument("--epochs", type=int, default=8)
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--lr-drop-epoch", type=int, default=6, help="lr / 10 from this epoch on (0-based)")
    g.add_argument("--paper-ablation-lrs", default="0.01,0.005,0.0025,0.00125,0.000625",
                   help="paper regime: the rates tried, from the top, for the one every arm trains at")
    g.add_argument("--chance-stop-epochs", type=int, default=3,
                   help="paper regime: a run still at chance after this many epochs stops ('at-chance')")
    g = p.add_argument_group("learning rates per arm (lrn, pool, towers)")
    g.add_argument("--protocol", default="per-arm", choices=PROTOCOLS,
                   help="per-arm: each arm's own rate, the lowest validation error of a grid after a short budget "
                        "(records in OUT/runs/[paper/]lr-grid and tuned); single-lr: the earlier study's one rate for "
                        "every arm (OUT/runs/[paper/]ablation)")
    g.add_argument("--val-images", type=int, default=5000,
                   help="per-arm: training images held out as the validation split (a fixed seeded draw)")
    g.add_argument("--unit-lr-grid", default="0.04,0.02,0.01,0.005,0.0025", help="per-arm: the unit regime's rates")
    g.add_argument("--paper-lr-grid", default="0.01,0.005,0.0025,0.00125,0.000625",
                   help="per-arm: the paper regime's rates")
    g.add_argument("--grid-epochs", type=int, default=3, help="per-arm: epochs of a learning-rate trial (constant rate)")
    g.add_argument("--grid-seeds", default="1", help="per-arm: seeds of the learning-rate trials, a count or a comma list")
    g.add_argument("--paper-epochs", type=int, default=30, help="per-arm: epochs of a paper-regime claim run")
    g.add_argument("--paper-lr-drops", default="20,26",
                   help="per-arm: paper regime, lr / 10 from each of these epochs on (0-based)")
    g = p.add_argument_group("scale (tests and quick trials)")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--points-per-epoch", type=int, default=4, help="training-error points per epoch")
    g.add_argument("--max-steps", type=int, default=None, help="stop every run after this many steps")
    g.add_argument("--limit-per-class", type=int, default=None, help="first N images of each class in each split")
    g.add_argument("--synthetic-train", type=int, default=None)
    g.add_argument("--synthetic-test", type=int, default=None)
    return p


def _check(args) -> list[str]:
    if args.experiments is None:
        # towers: the paper regime's, under the per-arm protocol (the paper's two-GPU net is its own regime's)
        args.experiments = ",".join(e for e in EXPERIMENTS
                                    if e != "towers" or (args.protocol == "per-arm" and args.regime == "paper"))
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown or not experiments:
        raise StudyError(f"unknown experiment(s) {unknown or [args.experiments]}; choose from {', '.join(EXPERIMENTS)}")
    for name in ("lrs", "paper_lrs", "paper_ablation_lrs", "unit_lr_grid", "paper_lr_grid"):
        flag, text = f"--{name.replace('_', '-')}", getattr(args, name)
        if isinstance(text, list):
            continue
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise StudyError(f"{flag} must be comma-separated numbers, got {text!r}") from None
        if not values or any(not lr > 0 for lr in values):
            raise StudyError(f"{flag} must be positive numbers, got {text!r}")
        setattr(args, name, values)
    if isinstance(args.paper_lr_drops, str):
        try:
            args.paper_lr_drops = [int(v) for v in args.paper_lr_drops.split(",") if v.strip()]
        except ValueError:
            raise StudyError(f"--paper-lr-drops must be comma-separated epoch numbers, got {args.paper_lr_drops!r}") from None
        if any(e < 1 for e in args.paper_lr_drops):
            raise StudyError(f"--paper-lr-drops must be epochs of at least 1, got {args.paper_lr_drops}")
    if args.val_images < 1 and args.protocol == "per-arm":
        raise StudyError(f"--val-images must be at least 1 for --protocol per-arm, got {args.val_images}")
    if "towers" in experiments and args.protocol != "per-arm":
        raise StudyError("the towers experiment runs under --protocol per-arm only")
    if args.chance_stop_epochs < 1:
        raise StudyError(f"--chance-stop-epochs must be at least 1, got {args.chance_stop_epochs}")
    for name in ("epochs", "fig1_max_epochs", "batch_size", "points_per_epoch", "grid_epochs", "paper_epochs"):
        if getattr(args, name) < 1:
            raise StudyError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise StudyError(f"--threads must be at least 1, got {args.threads}")
    if not 0 < args.threshold < 1:
        raise StudyError(f"--threshold must lie in (0, 1), got {args.threshold}")
    if not args.lr > 0:
        raise StudyError(f"--lr must be positive, got {args.lr}")
    return experiments


def main(args: argparse.Namespace, log=print) -> dict:
    """Run (or finish) the study, then write the report; return what the report was made from."""
    experiments = _check(args)
    fig1_seeds, seeds = parse_seeds(args.fig1_seeds, "--fig1-seeds"), parse_seeds(args.seeds, "--seeds")
    grid_seeds = parse_seeds(args.grid_seeds, "--grid-seeds")
    out = check_output_folder(args.out)
    if not args.report_only:
        torch.set_num_threads(args.threads or cpu_info()["cpu_usable_cores"] or 1)
        study = Study(args, log)
        study.remaining = _estimate_left(study, experiments, fig1_seeds, seeds, args.regime, grid_seeds)
        invocation = {"command": shlex.join(["python", "-m", "bench.ablations.cifar", *sys.argv[1:]]),
                      "started": _now(), "code": source_revision(), "machine": machine_info()}
        log(f"{PROG}: {args.regime} regime, {args.protocol}, {', '.join(experiments)}; threads {torch.get_num_threads()}; "
            f"~{study.remaining():.0f} epochs to train")
        t0 = time.perf_counter()
        number = _record_invocation(out, invocation, args)  # at once: a killed invocation still shows
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            run_regime(study, args.regime, experiments, fig1_seeds, seeds, grid_seeds)
            invocation["outcome"] = "finished"
        except BaseException as exc:
            invocation["outcome"] = f"stopped ({type(exc).__name__})"
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            invocation.update(finished=_now(), seconds=round(time.perf_counter() - t0, 1),
                              epochs_trained=study.trained_epochs)
            _record_invocation(out, invocation, args, number)
    paths = cifar_report.write_report(out)
    for p in paths:
        log(f"wrote {p}")
    return cifar_report.load_study(out)


def run_regime(study: Study, regime: str, experiments: list[str], fig1_seeds: list[int], seeds: list[int],
               grid_seeds: list[int] = (0,)) -> None:
    """per-arm: Figure 1 (when asked for), then each experiment's per-arm rates and claim runs in the order
    asked. single-lr: unit as the first study ran (fig1, then lrn and pool seed by seed, then the probes);
    paper: the LRN pairs, the unit regime's LRN-term probe, Figure 1, the 2/2 arm."""
    if study.args.protocol == "per-arm":
        if "fig1" in experiments:
            run_fig1(study, fig1_seeds, regime)
        run_per_arm(study, experiments, seeds, regime, list(grid_seeds))  # LRN runs record their own terms
        return
    if regime == "unit":
        if "fig1" in experiments:
            run_fig1(study, fig1_seeds)
        run_ablations(study, experiments, seeds)
        if "lrn" in experiments:
            probe_lrn_regime(study)
            probe_unit_lrn_terms(study, seeds)
        return
    lr = choose_ablation_lr(study, seeds, regime) if any(e in EXPERIMENT_ARMS for e in experiments) else None
    if "lrn" in experiments:
        run_ablations(study, ["lrn"], seeds, regime, lr)
        probe_unit_lrn_terms(study, seeds)
    if "fig1" in experiments:
        run_fig1(study, fig1_seeds, regime)
    if "pool" in experiments:
        run_ablations(study, ["pool"], seeds, regime, lr)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # SIGTERM (nohup's kill): unwind, so the invocation's record is completed


def _record_invocation(out: Path, invocation: dict, args, number: int | None = None) -> int:
    """Add this invocation to ``<out>/study.json`` (``number`` None), or rewrite entry ``number``; return its
    number. Under a lock: several processes may share a study, each running some of its experiments."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out / "study.json"
        study = json.loads(path.read_text()) if path.exists() else {}
        settings = {k: v for k, v in vars(args).items() if k not in ("report_only", "state_dir")}
        entries = study.setdefault("invocations", [])
        if number is None:
            entries.append({})
            number = len(entries) - 1
        entries[number] = {**invocation, "settings": settings}
        write_json_atomic(path, study)
    return number


def _describe(spec: RunSpec) -> str:
    bits = [spec.activation, f"lr {spec.lr:g}", f"seed {spec.seed}", f"pool {spec.pool}"]
    if (spec.input_scale, spec.init) != ("unit", "default"):
        bits.append(f"inputs {spec.input_scale}, init {spec.init}")
    if spec.lrn:
        bits.append("LRN")
    if spec.weight_decay:
        bits.append(f"wd {spec.weight_decay:g}")
    if spec.flip:
        bits.append("flips")
    bits.append(f"max {spec.max_epochs} epochs")
    return ", ".join(bits)


def _outcome(rec: dict) -> str:
    bits = [f"stopped: {rec['stop_reason']} after {rec['epochs_run']} epochs"]
    if rec["epochs_to_threshold"] is not None:
        bits.append(f"25% at epoch {rec['epochs_to_threshold']:.2f} ({rec['seconds_to_threshold']:.0f} s)")
    bits.append(f"final train err {_pct(rec['final_train_err'])}, test err {_pct(rec['test_top1_err'])}")
    if rec["images_per_s"]:
        bits.append(f"{rec['images_per_s']:,.0f} img/s")
    return "; ".join(bits)


def _pct(v) -> str:
    return report_kit.pct(v, 1)


def _hms(seconds: float) -> str:
    m = int(seconds // 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{int(seconds % 60):02d}s"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(PROG, lambda: main(args, log=lambda msg: print(msg, flush=True)))


if __name__ == "__main__":
    sys.exit(cli())
