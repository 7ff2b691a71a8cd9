"""The CPU-scale CIFAR-10 study: the four-layer CNN, the training loop's curve windows, stopping rules and
resume, and the whole study end to end at a tiny budget through its command line (records, report,
no redone run, settings clash, bad input as one line with exit status 2)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from alexnet.cifar_cnn import ChannelLRN, CifarCNN, lrn_backend
from alexnet.data import DEFAULT_CIFAR10
from bench.ablations import cifar_report
from bench.ablations import cifar
from bench.ablations.cifar_train import RunSpec, load_cifar_tensors, train_run

REPO = Path(__file__).resolve().parents[1]


def test_cifar_cnn_shapes_and_one_switch():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    relu = CifarCNN(activation="relu")
    torch.manual_seed(0)
    tanh = CifarCNN(activation="tanh")
    assert relu(x).shape == (4, 10) and relu.classifier.in_features == 64 * 4 * 4
    # same seed -> identical initial weights; only the nonlinearity differs
    for (n1, p1), (n2, p2) in zip(relu.named_parameters(), tanh.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert not torch.allclose(relu(x), tanh(x))
    lrn = CifarCNN(lrn=True)
    assert sum(p.numel() for p in lrn.parameters()) == sum(p.numel() for p in relu.parameters())
    assert sum(isinstance(m, ChannelLRN) for m in lrn.modules()) == 2
    pool22 = CifarCNN(pool_kernel=2, pool_stride=2)
    assert pool22(x).shape == (4, 10) and pool22.classifier.in_features == 64 * 4 * 4


def test_channel_lrn_is_the_paper_formula():
    a = torch.rand(2, 8, 3, 3, dtype=torch.float64) * 50
    lrn = ChannelLRN(8).double()
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    out = lrn(a)
    for c in range(8):  # the window is clipped at the channel edges: max(0, c-2) .. min(7, c+2)
        lo, hi = max(0, c - n // 2), min(7, c + n // 2)
        expected = a[:, c] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
        assert torch.allclose(out[:, c], expected, rtol=1e-7)  # alpha was rounded to float32 when built
    # PyTorch's convention divides alpha by n: the paper's net is local_response_norm(alpha = n * 1e-4)
    assert torch.allclose(out, F.local_response_norm(a, n, alpha=n * alpha, beta=beta, k=k), rtol=1e-7)
    with pytest.raises(ValueError, match="odd"):
        ChannelLRN(8, size=4)


def test_cifar_cnn_rejects_bad_input():
    with pytest.raises(ValueError, match="activation"):
        CifarCNN(activation="sigmoid")
    with pytest.raises(ValueError, match="32 px"):
        CifarCNN()(torch.randn(2, 3, 24, 24))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        CifarCNN()(torch.randn(3, 32, 32))


@pytest.fixture(scope="module")
def tiny_data():
    # 70 training images at batch 8: 8 steps an epoch, windows of 3 batches (8 // 2 points) cross epoch ends
    return load_cifar_tensors("synthetic", synthetic_train=70, synthetic_test=20)


def test_every_curve_point_rests_on_the_same_number_of_images(tiny_data):
    rec = train_run(RunSpec(batch_size=8, points_per_epoch=2, max_epochs=3, seed=1), tiny_data)
    assert rec["steps_per_epoch"] == 8 and rec["window_batches"] == 4 and rec["steps"] == 24
    assert [p["images"] for p in rec["curve"]] == [32] * 6
    rec = train_run(RunSpec(batch_size=8, points_per_epoch=3, max_epochs=3, seed=1), tiny_data)
    # 8 steps an epoch, windows of 2: a window never shrinks at an epoch end; the last partial one is not a point
    assert rec["window_batches"] == 2 and [p["images"] for p in rec["curve"]] == [16] * 12
    mids = [p["epoch"] for p in rec["curve"]]
    assert mids[0] == pytest.approx(1 / 8) and all(b - a == pytest.approx(2 / 8) for a, b in zip(mids, mids[1:]))
    assert len(rec["test_curve"]) == 3 and rec["stop_reason"] == "budget" and rec["images_per_s"] > 0


def test_threshold_and_give_up_stop_a_run(tiny_data):
    easy = RunSpec(batch_size=8, points_per_epoch=2, max_epochs=6, threshold=0.95, test_every_epoch=False)
    rec = train_run(easy, tiny_data)  # chance error is 0.9: the first point is already under 95%
    assert rec["stop_reason"] == "threshold-reached" and rec["epochs_to_threshold"] is not None
    assert rec["epochs_run"] == 2 and len(rec["test_curve"]) == 1  # one epoch past the crossing; test at the end
    never = RunSpec(batch_size=8, points_per_epoch=2, max_epochs=6, threshold=0.0001, test_every_epoch=False)
    rec = train_run(never, tiny_data, give_up_after=1.5)
    assert rec["stop_reason"] == "slower-than-best" and rec["epochs_run"] == 2 and rec["epochs_to_threshold"] is None


def test_a_threshold_run_stops_only_once_the_whole_epoch_error_has_crossed_too():
    """The running error (windows) can cross 25% an epoch before the whole-epoch error does: the run goes on
    until both have, so both measures of Figure 1 exist for it."""
    from bench.ablations.cifar_train import threshold_stop_epoch

    def window(epoch, err):
        return {"epoch": epoch, "train_top1_err": err, "images": 100}

    curve = [window(0.25, 0.9), window(0.75, 0.5), window(1.25, 0.2), window(1.75, 0.35)]
    # running crossing at 0.75 + 0.25 / 0.3 * 0.5 = 1.17; the whole-epoch errors are 0.70 and 0.275: no crossing
    assert threshold_stop_epoch(curve, 0.25, 10, 1) is None
    curve += [window(2.25, 0.2), window(2.75, 0.2)]  # epoch 2: 0.2, the whole-epoch crossing at 1.5 + 1/3
    assert threshold_stop_epoch(curve, 0.25, 10, 1) == pytest.approx(1.5 + 1 / 3 + 1)
    assert threshold_stop_epoch(curve, None, 10, 1) is None


def test_an_interrupted_run_resumes_where_it_stopped(tiny_data, tmp_path):
    spec = RunSpec(batch_size=8, points_per_epoch=2, max_epochs=3, seed=3, flip=True, lr_drop_epochs=(2,))
    whole = train_run(spec, tiny_data)

    def stop_after_two(e):
        if e["epoch"] == 2:
            raise KeyboardInterrupt

    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, tiny_data, state_path=state, on_epoch=stop_after_two)
    assert state.is_file()
    resumed = train_run(spec, tiny_data, state_path=state)
    assert resumed["epochs_run"] == 3 and resumed["steps"] == whole["steps"]
    for key in ("curve", "test_curve"):
        for a, b in zip(resumed[key], whole[key]):
            for k in a:
                if k != "seconds":
                    assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), (key, k)
    # a state file of another spec is ignored, not resumed into the wrong run
    other = train_run(RunSpec(batch_size=8, points_per_epoch=2, max_epochs=1, seed=4), tiny_data, state_path=state)
    assert other["epochs_run"] == 1


TINY = ["--data", "synthetic", "--amp", "off", "--synthetic-train", "48", "--synthetic-test", "16", "--batch-size", "8",
        "--fig1-seeds", "2", "--seeds", "2", "--epochs", "2", "--lr-drop-epoch", "1", "--fig1-max-epochs", "2",
        "--lrs", "0.01,0.02", "--grid-extensions", "1", "--threads", "1", "--protocol", "single-lr"]


def _cli(args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bench.ablations.cifar", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_study_end_to_end_tiny(tmp_path):
    out, state = tmp_path / "out", tmp_path / "state"
    args = [*TINY, "--out", str(out), "--state-dir", str(state)]
    first = _cli(args)
    assert first.returncode == 0, first.stderr
    runs = sorted(p.relative_to(out / "runs").as_posix() for p in (out / "runs").rglob("*.json"))
    assert {"ablation/base/seed0.json", "ablation/lrn/seed1.json", "ablation/pool-2x2/seed1.json"} <= set(runs)
    assert any(r.startswith("fig1/relu-lr0.01/") for r in runs) and any(r.startswith("fig1/tanh-") for r in runs)
    assert not list(state.rglob("*.pt"))  # finished runs leave no state behind
    md = (out / "README.md").read_text()
    assert "| claim | paper | unit-variance inputs, PyTorch init: measured mean, 95% CI | verdict |" in md
    assert "not measured yet" in md  # the paper regime's rows are there, unmeasured
    assert json.loads((out / "probes" / "lrn_terms_unit.json").read_text())["lrn_terms"]
    assert "LRN lowers test error" in md and "Figure 1" in md and "python -m bench.ablations.cifar" in md
    for png in ("figure1.png", "deltas.png", "curves.png"):
        assert (out / png).stat().st_size > 5000, png
    study = json.loads((out / "study.json").read_text())
    assert study["invocations"][0]["machine"]["cpu_usable_cores"] >= 1

    # a second invocation trains nothing and gives the same records
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    again = _cli(args)
    assert again.returncode == 0 and "training:" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")} == mtimes

    # the report re-renders from the records alone
    md = (out / "README.md").read_text()
    assert "(2 invocation(s))" in md
    (out / "README.md").unlink()
    assert cifar_report.cli([str(out)]) == 0 and (out / "README.md").read_text() == md

    # the project README's headline block is filled from the same rows, and only that block changes
    readme = tmp_path / "README.md"
    readme.write_text("# top\n\n<!-- cifar10-cpu:begin -->\nold rows\n<!-- cifar10-cpu:end -->\n\nrest\n")
    assert cifar_report.cli([str(out), "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# top\n") and text.endswith("<!-- cifar10-cpu:end -->\n\nrest\n")
    assert "old rows" not in text and "| claim | paper | unit-variance inputs, PyTorch init: measured mean" in text
    assert "LRN lowers test error" in text and "float32" in text
    readme.write_text("no block here")
    assert cifar_report.cli([str(out), "--update-readme", str(readme)]) == 2

    # run files made with other settings are refused with one line, not mixed in
    clash = _cli([*args[:args.index("--epochs") + 1], "3", *args[args.index("--epochs") + 2:], "--experiments", "lrn"])
    assert clash.returncode == 2 and "Traceback" not in clash.stderr
    assert clash.stderr.startswith("python -m bench.ablations.cifar: error: ") and "other settings" in clash.stderr
    assert "max_epochs: file 2 vs now 3" in clash.stderr and len(clash.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--experiments", "fig1,dropout"], "unknown experiment(s) ['dropout']"),
    (["--data", "/nonexistent/cifar.tar.gz"], "no such file or directory"),
    (["--lrs", "0.01,fast"], "--lrs must be comma-separated numbers"),
    (["--seeds", "0"], "--seeds must name at least one seed"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    r = _cli([*args, "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "state")])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("python -m bench.ablations.cifar: error: ") and message in r.stderr
    assert not (tmp_path / "out" / "runs").exists()


def test_corrupt_archive_and_corrupt_record_are_one_line(tmp_path):
    bad = tmp_path / "cifar.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    r = _cli(["--data", str(bad), "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "s")])
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(bad) in r.stderr, r.stderr
    runs = tmp_path / "rep" / "runs" / "ablation" / "base"
    runs.mkdir(parents=True)
    (runs / "seed0.json").write_text('{"spec": ')
    r = subprocess.run([sys.executable, "-m", "bench.ablations.cifar_report", str(tmp_path / "rep")], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "is not valid JSON" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.data
@pytest.mark.skipif(not DEFAULT_CIFAR10.exists(), reason=f"real CIFAR-10 archive not found at {DEFAULT_CIFAR10}")
def test_real_cifar10_trains_a_few_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    data = load_cifar_tensors("cifar10", limit_per_class=20)
    assert data.train_x.shape == (200, 3, 32, 32) and data.test_x.shape == (200, 3, 32, 32)
    assert data.classes[:3] == ["airplane", "automobile", "bird"]
    assert abs(float(data.train_x.mean())) < 0.05 and 0.9 < float(data.train_x.std()) < 1.1  # normalised
    rec = train_run(RunSpec(batch_size=20, points_per_epoch=2, max_epochs=2, lrn=True, flip=True), data)
    assert rec["stop_reason"] == "budget" and len(rec["curve"]) == 4 and 0 <= rec["test_top1_err"] <= 1


@pytest.mark.slow
def test_a_stopped_study_records_itself_and_resumes(tmp_path):
    """SIGTERM (how a nohup'd study is stopped) ends the invocation with its record completed; a restart
    redoes no finished run and resumes the interrupted one from its last epoch."""
    import signal
    import time

    out, state = tmp_path / "out", tmp_path / "state"
    args = ["--data", "synthetic", "--synthetic-train", "256", "--synthetic-test", "32", "--batch-size", "8",
            "--experiments", "lrn", "--seeds", "2", "--epochs", "3", "--amp", "off", "--threads", "1",
            "--protocol", "single-lr",
            "--out", str(out), "--state-dir", str(state)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.ablations.cifar", *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "runs").rglob("*.json")) and time.time() < deadline:
        time.sleep(0.5)
    assert list((out / "runs").rglob("*.json")), "no run finished in time"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    record = json.loads((out / "study.json").read_text())["invocations"][-1]
    assert record["outcome"].startswith("stopped") and record["finished"] and record["epochs_trained"] >= 3
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    again = _cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished run was redone"
    assert len(list((out / "runs").rglob("*.json"))) == 4  # base and lrn, seeds 0 and 1
    invocations = json.loads((out / "study.json").read_text())["invocations"]
    assert [i["outcome"] for i in invocations][-1] == "finished" and len(invocations) == 2


def test_cuda_convnet_init_is_the_published_one():
    torch.manual_seed(0)
    default = CifarCNN()
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(default.parameters(), CifarCNN(init="default").parameters()))
    torch.manual_seed(0)
    net = CifarCNN(init="cuda-convnet", widths=(32, 64, 64))
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for m, std in zip(layers, (1e-4, 1e-2, 1e-2, 1e-2), strict=True):  # conv1 1e-4, the rest 1e-2, biases 0
        w = m.weight.detach()
        assert float(w.std()) == pytest.approx(std, rel=0.1) and abs(float(w.mean())) < std / 5
        assert not m.bias.any()
    with pytest.raises(ValueError, match="init"):
        CifarCNN(init="xavier")


def test_input_scale_gives_mean_subtracted_pixels(tiny_data):
    x = tiny_data.train_x[:8]
    assert tiny_data.inputs(x, "unit") is x
    pixels = tiny_data.inputs(x, "pixels")
    std = torch.tensor(tiny_data.info["pixel_std"]).view(1, 3, 1, 1)
    assert torch.allclose(pixels, x * std, rtol=1e-3) and pixels.is_contiguous(memory_format=torch.channels_last)
    whole = tiny_data.inputs(tiny_data.train_x, "pixels")
    per_channel = whole.transpose(0, 1).reshape(3, -1).std(dim=1)
    assert torch.allclose(per_channel, std.flatten(), rtol=1e-3)  # no longer divided by the std
    with pytest.raises(ValueError, match="input_scale"):
        RunSpec(input_scale="0-1")


@pytest.mark.parametrize("autocast", [False, True])
def test_relu_lrn_kernel_agrees_with_the_einsum_lrn(autocast):
    """After ReLU and pooling the input is >= 0, so kernels.relu_lrn (its ReLU a no-op) is the same LRN."""
    torch.manual_seed(0)
    x = (torch.relu(torch.randn(4, 32, 8, 8)) * 60).contiguous(memory_format=torch.channels_last)  # paper-scale
    einsum, kernel = ChannelLRN(32), ChannelLRN(32, nonnegative=True)
    outs, grads = [], []
    for m in (einsum, kernel):
        xi = (x.bfloat16() if autocast else x).clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = m(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.float())
        grads.append(xi.grad.float())
    assert outs[0].dtype == outs[1].dtype
    tol = {"rtol": 2e-2, "atol": 1e-2} if autocast else {"rtol": 1e-5, "atol": 1e-5}
    pos = x > 0  # at exactly 0 the kernel's ReLU passes no gradient; in the net the ReLU before it did not either
    assert torch.allclose(outs[0], outs[1], **tol) and torch.allclose(grads[0][pos], grads[1][pos], **tol)
    assert lrn_backend() in ("cpp", "eager") and "relu_lrn" in repr(kernel)
    assert CifarCNN(lrn=True).features[3].nonnegative and not CifarCNN(lrn=True, activation="tanh").features[3].nonnegative

    # in the net (ReLU -> max-pool -> LRN) the two give the same loss and the same weight gradients
    torch.manual_seed(1)
    net = CifarCNN(lrn=True, init="cuda-convnet").to(memory_format=torch.channels_last)
    images = (torch.randn(6, 3, 32, 32) * 60).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(6) % 10
    results = []
    for nonneg in (True, False):
        for m in net.modules():
            if isinstance(m, ChannelLRN):
                m.nonnegative = nonneg
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(net(images).float(), labels)
        loss.backward()
        results.append((float(loss.detach()), [p.grad.clone() for p in net.parameters()]))
    (l1, g1), (l2, g2) = results
    assert l1 == pytest.approx(l2, rel=1e-3 if autocast else 1e-6)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=5e-2 if autocast else 1e-4, atol=1e-6 * float(b.abs().max()) + 1e-12)


def test_lrn_runs_record_the_lrn_term_at_start_middle_and_end(tiny_data):
    recs = {scale: train_run(RunSpec(batch_size=8, points_per_epoch=2, max_epochs=2, lrn=True, input_scale=scale,
                                     init="cuda-convnet" if scale == "pixels" else "default"), tiny_data)
            for scale in ("unit", "pixels")}
    for rec in recs.values():
        assert [t["epoch"] for t in rec["lrn_terms"]] == [0, 1, 2] and "relu_lrn" in rec["lrn_impl"]
        layer = rec["lrn_terms"][0]["layers"][0]
        assert layer["k"] == 2.0 and 0 <= layer["p50"] <= layer["p99"] <= layer["max"]
    assert "lrn_terms" not in train_run(RunSpec(batch_size=8, max_epochs=1), tiny_data)


def test_old_records_stay_valid_and_the_new_regime_is_another_run():
    args = cifar.build_parser().parse_args([])
    cifar._check(args)
    for name, spec in (("ablation/lrn/seed0", cifar.ablation_spec(args, "lrn", 0)),
                       ("fig1/tanh-lr0.02/seed1", cifar.fig1_spec(args, "tanh", 0.02, 1))):
        stored = json.loads((REPO / "reports/cifar10-cpu/runs" / f"{name}.json").read_text())["spec"]
        assert "input_scale" not in stored and "init" not in stored  # written before the switches existed
        assert spec.matches(stored) and spec.to_dict()["input_scale"] == "unit"
        paper = cifar.ablation_spec(args, "lrn", 0, "paper") if name.startswith("ablation") else \
            cifar.fig1_spec(args, "tanh", 0.02, 1, "paper")
        assert not paper.matches(stored) and (paper.input_scale, paper.init) == ("pixels", "cuda-convnet")
    loaded = cifar_report.load_study(REPO / "reports/cifar10-cpu")
    analysis = cifar_report.analyse(loaded)
    assert len(analysis["regimes"]["unit"]["claims"]) == 4  # Figure 1 twice, LRN and pooling at one shared lr
    rows = "\n".join(cifar_report.headline_rows(analysis))
    missing = sum(cifar_report._row(analysis, g, key) is None
                  for g in cifar_report.REGIMES for key in cifar_report.CLAIM_KEYS)
    fig1 = next(c for c in analysis["regimes"]["unit"]["claims"] if c.key == "fig1-epochs")
    assert fig1.n >= 3 and fig1.seeds[:3] == (0, 1, 2)  # the committed Figure-1 pairs, old records among them
    assert f"**{fig1.mean:.2f}x**" in rows and rows.count("not measured yet") == missing  # one per claim a regime lacks


def test_trial_rule_and_at_chance_stop(tiny_data):
    rec = {"diverged": False, "final_train_err": 0.79, "final_train_loss": 2.0, "data": {"num_classes": 10}}
    assert cifar_report.trial_trains(rec)
    assert not cifar_report.trial_trains({**rec, "final_train_err": 0.85})
    assert not cifar_report.trial_trains({**rec, "diverged": True})
    # a rate far too high for 0-255 inputs: the run stops at chance instead of running its whole budget
    spec = RunSpec(batch_size=8, points_per_epoch=2, max_epochs=6, lr=5.0, input_scale="pixels",
                   init="cuda-convnet", chance_stop_epochs=2)
    out = train_run(spec, tiny_data)
    assert out["stop_reason"] in ("at-chance", "diverged") and out["epochs_run"] <= 2


def test_records_of_the_conv_local_study_are_left_to_its_own_report(tmp_path):
    """runs/conv-local/ holds another study's records (bench.ablations.conv_local); the four-layer study's
    loader skips that folder instead of refusing the whole report, and still refuses a stray file elsewhere."""
    from bench.ablations.cifar_report.records import ReportError, load_study

    (tmp_path / "runs" / "conv-local" / "short" / "11pct").mkdir(parents=True)
    (tmp_path / "runs" / "conv-local" / "speed.json").write_text("{}")
    (tmp_path / "runs" / "conv-local" / "short" / "11pct" / "seed0.json").write_text("{}")
    assert load_study(tmp_path)["runs"] == {}
    (tmp_path / "runs" / "stray.json").write_text("{}")
    with pytest.raises(ReportError, match="stray"):
        load_study(tmp_path)
