"""Training entry point on CPU: loss falls, --resume continues exactly, checkpoints are atomic,
divergence is reported instead of crashing, every flag has help, bad flags are named, and the
Triton kernels and a CIFAR-10 subset train (skipped with the reason when unavailable)."""
import json
import math

import pytest
import torch

from alexnet import checkpoint as ckpt_module
from alexnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from alexnet.train import build_parser, main
from infra.errors import UsageError
from tests.conftest import CIFAR10_ARCHIVE, cached_backend_status

# AlexNet's conv layers and towers with 256-wide fc6/fc7 (5M parameters instead of 57M), 67 px crops of
# 72 px synthetic images: about a second per epoch on 2 CPU cores.
SMALL_RUN = ["--data", "synthetic", "--synthetic-train", "96", "--synthetic-val", "32", "--batch-size", "16",
             "--image-size", "72", "--crop-size", "67", "--fc-width", "256", "--kernels", "eager", "--no-progress"]


def run(tmp_path, name, *flags):
    args = build_parser().parse_args([*SMALL_RUN, "--out", str(tmp_path / name), *flags])
    return main(args)


def losses(summary, key="train_loss"):
    return [h[key] for h in summary["history"]]


def test_every_flag_has_help():
    missing = [a.option_strings for a in build_parser()._actions if a.option_strings and not a.help]
    assert not missing, f"flags without help: {missing}"


def test_loss_falls_and_outputs_are_written(tmp_path):
    summary = run(tmp_path, "run", "--epochs", "3", "--log-every", "4", "--synthetic-train", "256", "--dropout", "0")
    train = losses(summary)
    assert len(train) == 3 and train[-1] < train[0] - 0.15, f"train loss did not fall: {train}"
    assert not summary["diverged"]
    out = tmp_path / "run"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in lines if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert any(r["type"] == "step" and math.isfinite(r["grad_norm"]) for r in lines)
    for key in ("train_top1_err", "train_top5_err", "val_loss", "val_top1_err", "val_top5_err", "images_per_s",
                "lr", "seconds", "grad_norm", "steps"):
        assert key in epochs[-1], key
    peak = epochs[-1]["peak_mem_bytes"]  # CPU: the process's peak resident set, named as such
    assert list(peak) == ["cpu (process peak RSS)"] and 100 * 2**20 < peak["cpu (process peak RSS)"] < 20 * 2**30
    assert epochs[-1]["steps"] == 16  # 256 images / batch 16
    saved = json.loads((out / "summary.json").read_text())
    assert saved["history"] == json.loads(json.dumps(summary["history"]))
    assert saved["config"]["num_parameters"] == summary["config"]["num_parameters"] > 1_000_000
    report = (out / "report.md").read_text()
    assert "val top-1 err" in report and "torch" in report and "![learning curves" in report
    assert (out / "curves.png").stat().st_size > 5000
    state = load_checkpoint(out)
    assert state["epoch"] == 3 and state["step"] == 48


def test_resume_continues_exactly(tmp_path):
    straight = run(tmp_path, "straight", "--epochs", "2", "--warmup-epochs", "0.5")
    first = run(tmp_path, "resumed", "--epochs", "1", "--warmup-epochs", "0.5")
    assert len(first["history"]) == 1
    resumed = run(tmp_path, "resumed", "--epochs", "2", "--warmup-epochs", "0.5", "--resume", str(tmp_path / "resumed"))
    for key in ("train_loss", "val_loss", "grad_norm", "lr"):
        assert losses(resumed, key) == pytest.approx(losses(straight, key), rel=1e-6, abs=1e-6), key
    a = load_checkpoint(tmp_path / "straight")["model"]
    b = load_checkpoint(tmp_path / "resumed")["model"]
    assert all(torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7) for k in a)


def test_resume_rejects_a_different_model(tmp_path):
    run(tmp_path, "a", "--epochs", "1", "--max-steps", "1")
    with pytest.raises(UsageError, match="layout: checkpoint 'two-gpu' vs now 'one-gpu'"):
        run(tmp_path, "b", "--epochs", "2", "--layout", "one-gpu", "--resume", str(tmp_path / "a"))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"model": {"w": torch.arange(4.0)}, "optimizer": {}, "epoch": 1, "step": 3, "history": []}
    save_checkpoint(good, path)

    def crash_mid_write(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("simulated crash while writing")

    monkeypatch.setattr(ckpt_module.torch, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({**good, "epoch": 2}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "temporary file left behind"


def test_checkpoint_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    save_checkpoint({"model": {}, "optimizer": {}, "epoch": 1, "step": 1, "history": []}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an alexnet-kernels checkpoint"):
        load_checkpoint(foreign)


def test_divergence_is_reported_not_raised(tmp_path):
    summary = run(tmp_path, "diverge", "--epochs", "3", "--lr", "1e6", "--momentum", "0")
    assert summary["diverged"] is True, "lr 1e6 should produce a non-finite loss"
    assert summary["diverged_at"]["step"] >= 1
    lines = [json.loads(line) for line in (tmp_path / "diverge" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["type"] == "diverged"
    assert "Diverged" in (tmp_path / "diverge" / "report.md").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [(["--crop-size", "64"], "below 67"), (["--crop-size", "80"], "larger than --image-size 72"),
     (["--epochs", "0"], "--epochs must be at least 1")],
)
def test_bad_flags_are_named(tmp_path, flags, message):
    with pytest.raises(UsageError, match=message):
        run(tmp_path, "bad", *flags)


def test_triton_kernels_train(tmp_path):
    reason = cached_backend_status()["triton"]
    if reason is not None:
        pytest.skip(f"backend 'triton' unavailable here: {reason}")
    args = ["--epochs", "1", "--max-steps", "2", "--batch-size", "2", "--synthetic-val", "4"]
    summary = run(tmp_path, "triton", *args, "--kernels", "triton")
    eager = run(tmp_path, "eager", *args)
    assert losses(summary) == pytest.approx(losses(eager), rel=1e-4)
    assert math.isfinite(summary["history"][0]["val_loss"])


@pytest.mark.data
def test_cifar10_subset_loss_falls(tmp_path):
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(f"CIFAR-10 archive not found at {CIFAR10_ARCHIVE}")
    summary = run(tmp_path, "cifar", "--data", str(CIFAR10_ARCHIVE), "--limit-per-class", "32", "--epochs", "3",
                  "--batch-size", "16", "--dropout", "0")
    assert summary["config"]["num_classes"] == 10
    train = losses(summary)
    assert train[-1] < train[0] - 0.1, f"CIFAR-10 subset train loss did not fall: {train}"


def test_evaluate_reproduces_the_runs_validation_and_ten_crop_runs(tmp_path, capsys):
    """``python -m alexnet.evaluate RUN`` rebuilds the run's validation data and model: its centre-crop
    numbers are the run's last validation numbers; 10 crops give a different, valid result."""
    from alexnet.evaluate import cli, evaluate_run

    summary = run(tmp_path, "run", "--epochs", "1")
    last = summary["history"][-1]
    centre = evaluate_run(tmp_path / "run", ten_crop=False)
    for key in ("val_loss", "val_top1_err", "val_top5_err"):
        assert centre[key] == pytest.approx(last[key], rel=1e-5, abs=1e-6), key
    assert cli([str(tmp_path / "run"), "--ten-crop"]) == 0
    ten = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= ten["val_top1_err"] <= 1.0 and ten["val_loss"] != pytest.approx(centre["val_loss"], rel=1e-9)
    assert cli([str(tmp_path / "nothing")]) == 2
    assert "nothing is not a folder" in capsys.readouterr().err
    (tmp_path / "unfinished").mkdir()
    assert cli([str(tmp_path / "unfinished")]) == 2
    assert "is not a finished alexnet.train run" in capsys.readouterr().err
