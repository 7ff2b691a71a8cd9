"""cuda-convnet's conv-local nets: the locally connected layer, shapes and parameter counts against the cfg
files, the normalisation constants, the pooling geometry, the update rule, resuming, records and the report."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from alexnet.conv_local import (CMRNORM, ConvLocalConfig, ConvLocalNet, cmrnorm_reference, convnet_pool_size,
                                pool_padding)
from alexnet.convnet_sgd import ConvnetSGD
from alexnet.local_conv import LocallyConnected2d, local_output_size
from infra.errors import UsageError
from kernels.ops import backend_status

BACKENDS = [b for b in ("eager", "cpp") if backend_status([b])[b] is None]


def local_reference(x, weight, bias, k, padding, stride):
    """Loops over output positions: each position's patch (kernel row, column, channel) times its own bank."""
    n, c, h, w = x.shape
    s = bias.shape[-1]
    xp = F.pad(x, (padding,) * 4)
    out = torch.empty(n, weight.shape[-1], s, s, dtype=x.dtype)
    for i in range(s):
        for j in range(s):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k].permute(0, 2, 3, 1).reshape(n, -1)
            out[:, :, i, j] = patch @ weight[i * s + j] + bias[:, i, j]
    return out


@pytest.mark.parametrize("shape,k,padding,stride", [((3, 5, 6, 6), 3, 1, 1), ((2, 4, 7, 7), 3, 0, 2),
                                                    ((2, 3, 5, 5), 3, 1, 2), ((1, 2, 2, 2), 1, 0, 1)])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_local_layer_matches_loops_with_gradients(shape, k, padding, stride, layout):
    torch.manual_seed(0)
    n, c, h, _ = shape
    layer = LocallyConnected2d(c, 4, h, k, padding=padding, stride=stride).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(shape, dtype=torch.double)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(n, c, h, 2 * h, dtype=torch.double)[..., ::2]
    x.requires_grad_()
    out = layer(x)
    xr = x.detach().clone().requires_grad_()
    w, b = layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_()
    ref = local_reference(xr, w, b, k, padding, stride)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(layer.weight.grad, w.grad)
    torch.testing.assert_close(layer.bias.grad, b.grad)


def test_local_layer_gradcheck_and_bf16_autocast():
    torch.manual_seed(0)
    layer = LocallyConnected2d(3, 2, 4, 3, padding=1).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    layer32 = LocallyConnected2d(8, 5, 6, 3, padding=1)
    x32 = torch.randn(4, 8, 6, 6)
    with torch.autocast("cpu", torch.bfloat16):
        low = layer32(x32)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), layer32(x32), atol=0.05, rtol=0.05)


def test_local_output_size_is_cuda_convnets_modulesx():
    assert local_output_size(6, 3, 1, 1) == 6
    assert local_output_size(24, 5, 2, 1) == 24
    with pytest.raises(ValueError, match="tile"):
        LocallyConnected2d(2, 2, 6, 3, padding=0, stride=2)


def test_pool_geometry_rounds_up_like_cuda_convnet():
    # layer.py: outputsX = ceil((imgSize - start - sizeX) / stride) + 1 with start 0
    assert convnet_pool_size(24) == 12 and convnet_pool_size(12) == 6  # floor mode: 11 and 5
    assert (24 - 3) // 2 + 1 == 11
    assert pool_padding(24) == 1 and pool_padding(12) == 1 and pool_padding(25) == 0


def cuda_convnet_max_pool(a, size=3, stride=2):
    """Windows start at 0, stride 2, clipped at the edge, rounding the count up (cuda-convnet's kLocalPool)."""
    s = convnet_pool_size(a.shape[-1], size, stride)
    out = torch.empty(*a.shape[:2], s, s, dtype=a.dtype)
    for i in range(s):
        for j in range(s):
            out[..., i, j] = a[..., i * stride:i * stride + size, j * stride:j * stride + size].amax(dim=(-2, -1))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_then_floor_pooling_is_exact_after_relu(backend):
    import kernels

    torch.manual_seed(0)
    for size in (24, 12, 13):
        x = torch.randn(2, 16, size, size) - 0.3
        pad = pool_padding(size)
        got = torch.relu(kernels.max_pool(F.pad(x, (0, pad, 0, pad)), 3, 2, backend=backend))
        torch.testing.assert_close(got, cuda_convnet_max_pool(torch.relu(x)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalisation_constants_match_cuda_convnet_formula(backend):
    import kernels

    torch.manual_seed(0)
    a = torch.relu(torch.randn(2, 64, 5, 5, dtype=torch.double) * 30)  # sums large enough that alpha*sum ~ k
    want = cmrnorm_reference(a, size=9, scale=0.001, pow=0.75)
    assert CMRNORM == {"size": 9, "alpha": 0.001 / 9, "beta": 0.75, "k": 1.0}
    got = kernels.relu_lrn(a.float(), **CMRNORM, backend=backend).double()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert float((0.001 / 9 * (a * a).sum(1)).amax()) > 1  # the test exercises the regime where LRN divides
    # fused: pool(LRN(relu(x))) with cuda-convnet's geometry
    x = torch.randn(2, 64, 12, 12, dtype=torch.double) * 30
    fused = kernels.relu_lrn_pool(F.pad(x, (0, 1, 0, 1)).float(), **CMRNORM, kernel_size=3, stride=2, backend=backend)
    torch.testing.assert_close(fused.double(), cuda_convnet_max_pool(cmrnorm_reference(torch.relu(x))),
                               rtol=1e-5, atol=1e-5)


def _cfg_param_count(arm):
    l3 = 64 if arm == "11pct" else 32
    conv = 64 * 3 * 25 + 64 + 64 * 64 * 25 + 64           # shared biases
    local = 36 * (64 * 9 * l3 + l3) + 36 * (l3 * 9 * 32 + 32)  # unshared weights and biases per position
    return conv + local + 6 * 6 * 32 * 10 + 10


@pytest.mark.parametrize("arm", ["13pct", "11pct"])
def test_nets_shapes_parameters_and_init_follow_the_cfg(arm):
    torch.manual_seed(0)
    net = ConvLocalNet(ConvLocalConfig(arm), backend="eager")
    assert sum(p.numel() for p in net.parameters()) == _cfg_param_count(arm)
    assert net.local3.out_channels == (64 if arm == "11pct" else 32) and net.local4.out_channels == 32
    assert net.fc10.in_features == 6 * 6 * 32
    for name, std in (("conv1", 1e-4), ("conv2", 1e-2), ("local3", 4e-2), ("local4", 4e-2), ("fc10", 1e-2)):
        layer = getattr(net, name)
        assert abs(float(layer.weight.detach().std()) / std - 1) < 0.05, name
        assert float(layer.bias.detach().abs().max()) == 0.0
    out = net(torch.randn(3, 3, 24, 24).contiguous(memory_format=torch.channels_last))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "eager"])
def test_net_backends_agree(backend):
    torch.manual_seed(0)
    a = ConvLocalNet(ConvLocalConfig("11pct"), backend="eager")
    b = ConvLocalNet(ConvLocalConfig("11pct"), backend=backend)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for m in (a, b):
            m.conv1.weight.mul_(100)
    x = torch.randn(4, 3, 24, 24) * 60
    torch.testing.assert_close(b(x), a(x), rtol=1e-4, atol=1e-5)


def test_update_rule_is_cuda_convnets():
    # weights.cuh: inc = mom*inc + eps*(-grad) - wc*eps*W; W += inc (grad = mean over the batch)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = ConvnetSGD([{"params": [w], "eps": 0.1, "mom": 0.9, "wc": 0.5}])
    inc, ref = torch.zeros(2), torch.tensor([1.0, -2.0])
    for step, g in enumerate((torch.tensor([0.3, 0.1]), torch.tensor([-0.2, 0.4]), torch.tensor([0.5, 0.5]))):
        scale = 1.0 if step < 2 else 0.1
        opt.param_groups[0]["lr_scale"] = scale
        w.grad = g.clone()
        opt.step()
        inc = 0.9 * inc - 0.1 * scale * g - 0.5 * 0.1 * scale * ref
        ref = ref + inc
        torch.testing.assert_close(w.detach(), ref)
    # constant eps: identical to torch SGD(lr=eps, momentum=mom, weight_decay=wc)
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    o1 = ConvnetSGD([{"params": [a], "eps": 0.05, "mom": 0.9, "wc": 0.004}])
    o2 = torch.optim.SGD([b], lr=0.05, momentum=0.9, weight_decay=0.004)
    for i in range(4):
        g = torch.randn(3, generator=torch.Generator().manual_seed(i))
        a.grad, b.grad = g.clone(), g.clone()
        o1.step()
        o2.step()
    torch.testing.assert_close(a.detach(), b.detach())


# ---- the runner ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_images():
    from bench.ablations.conv_local_train import load_images

    data = load_images("synthetic")
    keep = torch.arange(0, len(data.train_y), 25)  # 200 training images, 40 of them "batch 5"
    data.train, data.train_y, data.val_mask = data.train[keep], data.train_y[keep], data.val_mask[keep]
    data.test, data.test_y = data.test[:64], data.test_y[:64]
    return data


def _tiny_spec(**kw):
    from bench.ablations.conv_local_train import ConvLocalSpec

    return ConvLocalSpec(**{"arm": "11pct", "schedule": "tiny", "epochs": (1, 1, 0, 1), "batch_size": 64,
                            "data": "synthetic", "backend": "eager", **kw})


def test_crops_mean_and_views(tiny_images):
    from bench.ablations.conv_local_train import crops, view_crops

    imgs = tiny_images.train[:3]
    mean = tiny_images.mean_crop
    c = crops(imgs, mean, torch.tensor([0, 8, 3]), torch.tensor([8, 0, 5]), torch.tensor([False, True, False]))
    assert c.shape == (3, 3, 24, 24) and c.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(c[0], imgs[0, :, 0:24, 8:32].float() - mean)
    torch.testing.assert_close(c[1], imgs[1, :, 8:32, 0:24].flip(-1).float() - mean)
    torch.testing.assert_close(c[2], imgs[2, :, 3:27, 5:29].float() - mean)
    torch.testing.assert_close(view_crops(imgs, mean, 2), imgs[:, :, 4:28, 4:28].float() - mean)
    torch.testing.assert_close(view_crops(imgs, mean, 9), imgs[:, :, 8:32, 8:32].flip(-1).float() - mean)


def test_resume_gives_the_same_record(tiny_images, tmp_path):
    from bench.ablations.conv_local_train import train_run

    spec = _tiny_spec()
    whole = train_run(spec, tiny_images)
    state = tmp_path / "state.pt"
    first = train_run(spec, tiny_images, state_path=state, stop_after=1)
    assert len(first["epochs"]) == 1
    resumed = train_run(spec, tiny_images, state_path=state)
    for key in ("train_err", "train_loss", "val_err", "test_err", "phase"):
        assert [r.get(key) for r in resumed["epochs"]] == [r.get(key) for r in whole["epochs"]], key
    assert resumed["epochs"][-1]["test_err_multiview"] == whole["epochs"][-1]["test_err_multiview"]
    assert [p["layers"] for p in resumed["lrn_probe"]] == [p["layers"] for p in whole["lrn_probe"]]
    with pytest.raises(UsageError, match="other settings"):
        train_run(_tiny_spec(seed=1), tiny_images, state_path=state)


def test_record_mismatch_refused_and_report_renders(tiny_images, tmp_path):
    from bench.ablations import conv_local
    from bench.ablations.conv_local_report import render_report

    records = tmp_path / "records"
    for arm in ("13pct", "11pct"):
        spec = _tiny_spec(arm=arm, schedule="short", epochs=(1, 0, 0, 1))
        assert conv_local.run_one(spec, tiny_images, records, tmp_path, quiet=True, stop_after=1) is None
        assert not conv_local.record_path(records, spec).exists()  # a partial run leaves only its state
        assert conv_local.run_one(spec, tiny_images, records, tmp_path, quiet=True)["epochs_run"] == 2
    path = conv_local.record_path(records, _tiny_spec(arm="11pct", schedule="short", epochs=(1, 0, 0, 1)))
    rec = json.loads(path.read_text())
    assert rec["epochs_run"] == 2 and rec["test_err_multiview"] is not None and len(rec["lrn_probe"]) >= 2
    with pytest.raises(UsageError, match="other settings"):
        conv_local.existing_record(path, _tiny_spec(arm="11pct", schedule="short", epochs=(2, 0, 0, 1)))
    report = render_report(records, tmp_path / "conv-local.md")
    text = report.read_text()
    assert "not measured yet" in text  # the full schedule has no records, nor the speed
    speed = {"command": "x", "date_utc": "2026-01-01T00:00:00Z", "machine": {"cpu_model": "cpu", "torch_threads": 2},
             "loadavg_before": [1.0, 1, 1], "loadavg_after": [1.5, 1, 1], "batch": 128, "rounds": 3, "steps": 4,
             "results": [{"arm": "13pct", "amp": "off", "backend": "cpp", "images_per_s": 400.0,
                          "round_seconds": [1.0, 1.28, 2.0]},
                         {"arm": "11pct", "amp": "off", "backend": "cpp", "images_per_s": 380.0,
                          "images_per_cpu_s": 200.0, "round_seconds": [1.0, 1.28, 2.0]}],
             "top_ops": {"11pct": [{"op": "aten::mm", "self_ms_per_step": 12.5, "share": 0.2, "calls_per_step": 6}]}}
    (records / "speed.json").write_text(json.dumps(speed))
    text = render_report(records, tmp_path / "conv-local.md").read_text()
    assert "| 11pct | float32 | cpp | 380 | 200 | 0.95 | 105 / 132 |" in text and "| aten::mm | 12.5 | 20% | 6 |" in text
    # 4 steps x 128 images: 512 img/s in the fastest round; 2.25 M images of the short schedule = 1.22 h
    assert "| 11pct | short | 2.25 M | 1.6 | 1.2 | 3.1 |" in text  # 2.25 M images at 200 per CPU-second
    assert "The planned study" not in text  # 13pct's CPU rate is missing: no total
    speed["results"][0]["images_per_cpu_s"] = 250.0
    (records / "speed.json").write_text(json.dumps(speed))
    text = render_report(records, tmp_path / "conv-local.md").read_text()
    # full: 22.5 M / 250 + 22.5 M / 200 images per CPU-second = 25.0 + 31.25 h; short: 3 x (2.5 + 3.125) h
    assert "takes about 73 CPU-hours of training steps at these rates, the full pair alone about 56" in text
    assert "11pct" in text and "(n=1, seed 0; no interval from one pair)" in text
    mean_row = next(line for line in text.splitlines() if line.startswith("| 11pct | mean (single-view, n=1)"))
    assert mean_row.endswith(f"| {100 * rec['test_err']:.2f}% (one seed) |  |  |  | 11% |")  # the spread beside the mean
    assert ", 1 thread, " in text or " threads, " in text
    assert (tmp_path / "conv-local-short-curves.png").is_file()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- conv-local:begin -->\nold\n<!-- conv-local:end -->\nkept\n")
    conv_local.main(["--report-only", "--records", str(records), "--report", str(tmp_path / "conv-local.md"),
                     "--update-readme", str(readme)])
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- conv-local:end -->\nkept\n")
    assert "[conv-local.md](conv-local.md)" in text  # linked relative to the README
    assert f"| `short` | 11pct | 1 | **{100 * rec['test_err']:.2f}%** | **{100 * rec['test_err_multiview']:.2f}%** | 11% |" in text
    assert "| `short` | 11pct - 13pct (paired by seed) | 1 |" in text and "(one pair)" in text
    assert "| `full` | 13pct | 0 | not measured yet |  | 13% |" in text


def test_study_plan_runs_three_short_pairs_then_the_full_pair_level(tmp_path, monkeypatch):
    """--plan study: short seeds 0, 1 and 2, then the two full runs alternately in chunks."""
    from bench.ablations import conv_local

    calls = []

    def fake_run_one(spec, data, records, state_dir, quiet=False, stop_after=None):
        calls.append((spec.schedule, spec.arm, spec.seed, stop_after))
        return {} if stop_after is None or stop_after == spec.total_epochs else None

    monkeypatch.setattr(conv_local, "run_one", fake_run_one)
    monkeypatch.setattr(conv_local, "render_report", lambda *a, **k: None)
    monkeypatch.setattr(conv_local, "load_images", lambda *a, **k: None)
    conv_local.main(["--plan", "study", "--state-dir", str(tmp_path / "state"), "--records", str(tmp_path / "rec")])
    short = [(s, a, k) for s, a, k, _ in calls if s == "short"]
    assert short == [("short", arm, seed) for seed in (0, 1, 2) for arm in ("13pct", "11pct")]
    full = [i for i, c in enumerate(calls) if c[0] == "full"]
    assert calls[full[0] - 1][:3] == ("short", "11pct", 2) and full[-1] == len(calls) - 1  # after the third pair
    total = conv_local.make_spec("full", "13pct", 0).total_epochs
    assert [c[3] for c in calls if c[0] == "full" and c[1] == "13pct"][:2] == [conv_local.FULL_CHUNK,
                                                                            2 * conv_local.FULL_CHUNK]
    assert [c[1] for c in calls if c[0] == "full"][:4] == ["13pct", "11pct", "13pct", "11pct"]  # kept level
    assert max(c[3] for c in calls if c[0] == "full") == total


def test_without_cmrnorm_removes_only_the_normalisation():
    """The speed baseline: 11pct's layers and parameters, no cmrnorm; the 13pct net has none to keep."""
    torch.manual_seed(0)
    with_norm = ConvLocalNet(ConvLocalConfig("11pct"), backend="eager")
    torch.manual_seed(0)
    without = ConvLocalNet(ConvLocalConfig("11pct", cmrnorm=False), backend="eager")
    assert with_norm.config.lrn and not without.config.lrn
    assert [(n, p.shape) for n, p in with_norm.named_parameters()] == [(n, p.shape) for n, p in without.named_parameters()]
    with torch.no_grad():  # trained-scale activations, where the normalisation acts (init's are ~1e-4)
        for net in (with_norm, without):
            net.conv1.weight.mul_(1e3)
    x = torch.randn(2, 3, 24, 24) * 50
    assert not torch.allclose(with_norm(x), without(x), rtol=1e-2, atol=0)
    with pytest.raises(ValueError, match="no cmrnorm layers"):
        ConvLocalConfig("13pct", cmrnorm=True)


@pytest.mark.parametrize("norm_rounds, status", [
    ([1.0, 1.05, 1.1], "met"),  # every round's ratio (13pct time / 11pct time) >= 0.9
    ([1.2, 1.25, 1.3], "missed"),  # every round's below
    ([1.0, 1.2, 1.3], "unresolved (the rounds straddle it)"),
])
def test_normalised_speed_target_is_judged_round_by_round(norm_rounds, status):
    from bench.ablations.conv_local_report import _speed_target_line

    plain = [1.0, 1.0, 1.0]
    other_net = {"arm": "13pct", "amp": "off", "backend": "cpp", "images_per_s": 500.0, "round_seconds": [0.1] * 3}
    speed = {"results": [other_net,  # a different net: never the baseline of this target
                         {"arm": "11pct", "amp": "off", "backend": "cpp", "cmrnorm": False, "images_per_s": 100.0,
                          "round_seconds": plain},
                         {"arm": "11pct", "amp": "off", "backend": "cpp", "images_per_s": 90.0,
                          "round_seconds": norm_rounds}]}
    line = _speed_target_line(speed)
    assert line.endswith(f"{status}.") and "**0.90x** at the median rates" in line
    del speed["results"][1]  # a record from before the no-cmrnorm variant
    assert "not measured yet" in _speed_target_line(speed)


def test_speed_rounds_time_each_variant_including_the_net_without_cmrnorm(tiny_images):
    from bench.ablations.conv_local_speed import measure

    variants = [("11pct", "off", "eager", None), ("11pct", "off", "eager", False)]
    results = measure(tiny_images, variants, rounds=2, steps=1, batch=4)
    assert [(r["arm"], r["cmrnorm"]) for r in results] == [("11pct", None), ("11pct", False)]
    assert all(len(r["round_seconds"]) == 2 and r["images_per_s"] > 0 for r in results)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from bench.ablations.conv_local import PROG, main
    from infra.errors import run_cli

    assert run_cli(PROG, lambda: main(["--arms", "12pct", "--state-dir", str(tmp_path)])) == 2
    assert "error: --arms" in capsys.readouterr().err
    assert run_cli(PROG, lambda: main(["--state-dir", str(tmp_path), "--data", str(tmp_path / "nope.tar.gz")])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.tar.gz" in err
    assert run_cli(PROG, lambda: main(["--update-readme", str(tmp_path / "R.md"), "--state-dir", str(tmp_path)])) == 2
    assert "--update-readme goes with --report-only" in capsys.readouterr().err
    (tmp_path / "R.md").write_text("no markers\n")
    assert run_cli(PROG, lambda: main(["--report-only", "--records", str(tmp_path), "--report", str(tmp_path / "c.md"),
                                       "--update-readme", str(tmp_path / "R.md")])) == 2
    assert "<!-- conv-local:begin -->" in capsys.readouterr().err


def test_real_cifar_splits_as_cuda_convnet_batches():
    from alexnet.data import cifar10_archive
    from bench.ablations.conv_local_train import load_images

    try:
        archive = cifar10_archive()
    except Exception as exc:  # no archive configured: nothing to check here
        pytest.skip(f"CIFAR-10 archive unavailable: {exc}")
    if not archive.exists():
        pytest.skip(f"CIFAR-10 archive {archive} is absent")
    data = load_images("cifar10")
    assert data.describe()["train_images"] == 40_000 and data.describe()["val_images"] == 10_000
    assert data.describe()["test_images"] == 10_000
    assert torch.bincount(data.train_y[data.val_mask]).tolist() == [1000] * 10
