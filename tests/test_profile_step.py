"""bench/tools/profile_step.py: the training-step profile page and its command line."""
import pytest
import torch

from bench.report import step_profile
from bench.tools import profile_step
from tests.conftest import usage_error_line


def test_profile_page_names_the_phases_and_our_share(tmp_path):
    out = tmp_path / "profile.md"
    assert profile_step.main(["--kernels", "eager", "--batch", "2", "--image-size", "67", "--steps", "1",
                              "--out", str(out)]) == 0
    page = out.read_text()
    for phase in profile_step.PHASES:
        assert f"| {phase} |" in page
    assert "`aten::" in page and "This suite's ops** (none found" in page  # eager: PyTorch's own ops only
    assert "--image-size 67" in page and "batch 2" in page
    summary = step_profile.load(out)  # the record beside the page, which the report reads
    assert summary.mode == "train" and summary.kernels == "eager" and summary.own_share == 0.0
    assert summary.layout == "nchw" and "float32, NCHW," in page
    assert summary.free_bound == 1.0 and summary.summary_line() in page.splitlines()


def test_the_record_counts_this_suites_ops(tmp_path):
    out = tmp_path / "profile.md"
    assert profile_step.main(["--kernels", "cpp", "--batch", "2", "--image-size", "67", "--steps", "1",
                              "--out", str(out)]) == 0
    summary = step_profile.load(out)
    assert "relu_lrn_pool" in summary.own_ops and 0.0 < summary.own_share < 1.0
    assert summary.own_ms_per_step > 0 and summary.free_bound == pytest.approx(1 / (1 - summary.own_share))
    assert summary.summary_line() == out.read_text().strip().splitlines()[-1]


def test_inference_profile_has_only_the_forward(tmp_path):
    out = tmp_path / "profile-infer.md"
    assert profile_step.main(["--kernels", "eager", "--mode", "infer", "--batch", "2", "--image-size", "67",
                              "--steps", "1", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("# Where the AlexNet inference forward spends its time")
    assert "| forward |" in page and "| backward |" not in page and "| optimizer step |" not in page
    assert "convolution_backward" not in page and "under no_grad" in page


def test_channels_last_profile_runs_in_that_layout_and_records_it(tmp_path, monkeypatch):
    """--channels-last lays out the model and its input as the benchmark's channels_last rows: the cpp ops
    see channels_last activations, and the page and its record say so."""
    seen = []
    real = profile_step.build_model

    def spy(config):
        model = real(config)
        model.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(
            memory_format=torch.channels_last)))
        return model

    monkeypatch.setattr(profile_step, "build_model", spy)
    out = tmp_path / "profile-cl.md"
    assert profile_step.main(["--kernels", "cpp", "--mode", "infer", "--channels-last", "--batch", "2",
                              "--image-size", "67", "--steps", "1", "--out", str(out)]) == 0
    page = out.read_text()
    assert seen and all(seen)
    assert page.startswith("# Where the AlexNet inference forward spends its time (cpp kernels, channels_last,")
    assert "float32, channels_last," in page and "--channels-last" in page
    assert step_profile.load(out).layout == "channels_last"


def test_bf16_profile_of_the_net_without_lrn(tmp_path, monkeypatch):
    """--amp bf16 runs the forward under CPU bfloat16 autocast and --no-lrn profiles the net without its LRN
    layers (the benchmark's no-lrn arm): the page and its record say both."""
    seen = []
    real = profile_step.build_model

    def spy(config):
        seen.append(config.lrn)
        model = real(config)
        model.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
        return model

    monkeypatch.setattr(profile_step, "build_model", spy)
    out = tmp_path / "no-lrn.md"
    assert profile_step.main(["--kernels", "eager", "--no-lrn", "--amp", "bf16", "--batch", "2", "--image-size", "67",
                              "--steps", "1", "--out", str(out)]) == 0
    assert seen[0] is False and set(seen[1:]) == {torch.bfloat16}
    page = out.read_text()
    assert page.startswith("# Where the AlexNet without LRN training step spends its time (eager kernels, bf16 autocast,")
    assert "without its LRN layers" in page and "bfloat16 autocast" in page
    record = step_profile.load(out)
    assert (record.amp, record.lrn, record.layout) == ("bf16", False, "nchw")


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--image-size", "50"], "too small for AlexNet"),
    (["--kernels", "nope"], "invalid choice"),
    (["--mode", "eval"], "invalid choice"),
    (["--amp", "fp16"], "invalid choice"),
])
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert message in usage_error_line(profile_step.main, argv, capsys)
