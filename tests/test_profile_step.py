"""bench/tools/profile_step.py: the training-step profile page and its command line."""
import pytest

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


def test_inference_profile_has_only_the_forward(tmp_path):
    out = tmp_path / "profile-infer.md"
    assert profile_step.main(["--kernels", "eager", "--mode", "infer", "--batch", "2", "--image-size", "67",
                              "--steps", "1", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("# Where the AlexNet inference forward spends its time")
    assert "| forward |" in page and "| backward |" not in page and "| optimizer step |" not in page
    assert "convolution_backward" not in page and "under no_grad" in page


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--image-size", "50"], "too small for AlexNet"),
    (["--kernels", "nope"], "invalid choice"),
    (["--mode", "eval"], "invalid choice"),
])
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert message in usage_error_line(profile_step.main, argv, capsys)
