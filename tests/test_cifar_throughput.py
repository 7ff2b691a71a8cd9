"""bench/tools/cifar_throughput.py: the CIFAR-10 arms' side-by-side speed page and its command line."""
import pytest

from bench.tools import cifar_throughput
from tests.conftest import usage_error_line


def test_page_has_every_arm_against_the_baseline(tmp_path):
    out = tmp_path / "throughput.md"
    assert cifar_throughput.main(["--data", "synthetic", "--rounds", "1", "--steps", "1", "--warmup", "0",
                                  "--out", str(out)]) == 0
    page = out.read_text()
    for arm in cifar_throughput.ARMS:
        assert f"| {arm} |" in page
    assert "| baseline: no LRN |" in page and "| 1.00x |" in page
    assert "paper regime" in page and "--steps 1" in page


def test_every_lrn_arm_computes_the_same_net():
    """The arms differ in how LRN is computed, not in what: equal outputs from equal weights."""
    import torch

    from bench.ablations.cifar_train import load_cifar_tensors

    data = load_cifar_tensors("synthetic", synthetic_train=16, synthetic_test=16)
    kwargs = {"batch_size": 4, "input_scale": "pixels", "init": "cuda-convnet", "amp": "off"}
    x = data.inputs(data.train_x[:4], "pixels")
    outs = {name: cifar_throughput.Arm(name, lrn, impl, data, kwargs).model(x)
            for name, (lrn, impl) in cifar_throughput.ARMS.items() if lrn}
    first = next(iter(outs.values()))
    for name, out in outs.items():
        torch.testing.assert_close(out, first, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--data", "/no/such/place"], "no such file or directory"),
    (["--regime", "nope"], "invalid choice"),
])
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert message in usage_error_line(cifar_throughput.main, argv, capsys)
