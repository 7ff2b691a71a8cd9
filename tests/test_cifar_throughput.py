"""bench/tools/cifar_throughput.py: the CIFAR-10 arms' side-by-side speed page and its command line."""
import pytest

from bench.ablations.cifar import ARMS as STUDY_ARMS
from bench.tools import cifar_throughput
from tests.conftest import usage_error_line


def test_page_has_every_arm_against_the_baseline(tmp_path):
    out = tmp_path / "throughput.md"
    assert cifar_throughput.main(["--data", "synthetic", "--rounds", "1", "--steps", "1", "--warmup", "0",
                                  "--out", str(out)]) == 0
    page = out.read_text()
    for arm in cifar_throughput.ARMS:
        assert f"| {arm} |" in page
    assert "| baseline: no LRN |" in page.split("| 1.00x |")[0]
    assert "paper regime" in page and "--steps 1" in page


def test_towers_page_times_the_towers_experiments_nets(tmp_path):
    out = tmp_path / "throughput-towers.md"
    assert cifar_throughput.main(["--arms", "towers", "--amp", "off", "--data", "synthetic", "--rounds", "1",
                                  "--steps", "1", "--warmup", "0", "--out", str(out)]) == 0
    page = out.read_text()
    for arm in cifar_throughput.TOWER_ARMS:
        assert f"| {arm} |" in page
    assert "| one tower, full width |" in page.split("| 1.00x |")[0] and "LRN:" not in page
    assert "lr 0.00125" in page and "float32" in page and "not the two-GPU speed" in page


def test_tower_arms_build_the_experiments_nets():
    """The towers page's nets are the study's: the two-tower net has conv2 grouped by tower, the half-width
    net half of every conv layer's kernels, both otherwise the full-width net."""
    from torch import nn

    from bench.ablations.cifar_train import load_cifar_tensors

    data = load_cifar_tensors("synthetic", synthetic_train=16, synthetic_test=16)
    kwargs = {"batch_size": 4, "input_scale": "pixels", "init": "cuda-convnet", "amp": "off"}
    convs = {name: [(m.out_channels, m.groups) for m in
                    cifar_throughput.Arm(name, False, None, data, {**kwargs, **STUDY_ARMS[key]}).model.modules()
                    if isinstance(m, nn.Conv2d)]
             for name, key in cifar_throughput.TOWER_ARMS.items()}
    assert convs == {"one tower, full width": [(32, 1), (32, 1), (64, 1)],
                     "two towers, half the kernels each": [(32, 1), (32, 2), (64, 1)],
                     "one tower, half the kernels in every conv layer": [(16, 1), (16, 1), (32, 1)]}


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
