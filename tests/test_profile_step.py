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


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--image-size", "50"], "too small for AlexNet"),
    (["--kernels", "nope"], "invalid choice"),
])
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert message in usage_error_line(profile_step.main, argv, capsys)
