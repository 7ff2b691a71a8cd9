"""bench/tools/cifar_activation_profile.py: the tanh-vs-ReLU speed page, its JSON summary and its command line."""
import json

import pytest

from bench.tools import cifar_activation_profile
from tests.conftest import usage_error_line


def test_page_and_summary_name_every_arm(tmp_path):
    out = tmp_path / "profile.md"
    assert cifar_activation_profile.main(["--data", "synthetic", "--rounds", "1", "--steps", "1", "--warmup", "0",
                                          "--profile-steps", "1", "--out", str(out)]) == 0
    page, summary = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    for arm in cifar_activation_profile.ARMS:
        assert f"| {arm} |" in page and summary["images_per_s"][arm] > 0
    assert "operators by self CPU time" in page and "--profile-steps 1" in summary["command"]


@pytest.mark.parametrize("argv, message", [
    (["--profile-steps", "0"], "--profile-steps must be at least 1"),
    (["--rounds", "0"], "--rounds must be at least 1"),
])
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert message in usage_error_line(cifar_activation_profile.main, argv, capsys)
