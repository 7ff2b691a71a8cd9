"""Data parallelism on CPU: two gloo processes on 127.0.0.1 (launched by torchrun) must end with identical
weights and the same losses as one process on the same global batches; plus the single-process fallbacks
and the clear errors of alexnet.distributed. Every launch is time-bounded and its process group killed."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from alexnet import distributed
from alexnet.distributed import DistContext

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

# The same tiny training run, in a torchrun worker (world of 2) or in this process (world of 1).
TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from torch.utils.data import TensorDataset, DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from alexnet import distributed, placement
    from alexnet.model import AlexNetConfig, build_model

    GLOBAL_BATCH, STEPS, SEED = 8, 3, 0

    def dataset():
        g = torch.Generator().manual_seed(123)
        return TensorDataset(torch.randn(32, 3, 67, 67, generator=g), torch.randint(0, 10, (32,), generator=g))

    def model():
        torch.manual_seed(SEED)
        cfg = AlexNetConfig(num_classes=10, conv_widths=(16, 32, 48, 48, 32), fc_width=64, dropout=0.0)
        return build_model(cfg)

    def train(out_dir, world_size=None):
        ctx = distributed.init_distributed("cpu")
        devices = placement.parse_devices("cpu,cpu", "two-gpu")
        torch.manual_seed(1000 + ctx.rank)            # ranks differ before DDP: DDP must sync them
        net = model() if ctx.rank == 0 else build_model(model().cfg)
        net = distributed.wrap_ddp(placement.place_model(net, devices), ctx, devices)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        data = dataset()
        batch = distributed.per_rank_batch_size(GLOBAL_BATCH, ctx)
        sampler = distributed.make_sampler(data, ctx, shuffle=True, seed=SEED)
        losses = []
        for step, (x, y) in zip(range(STEPS), DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True)):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums = distributed.reduce_metrics({"loss_sum": loss.item() * len(y), "count": len(y)}, ctx)
            losses.append(sums["loss_sum"] / sums["count"])
        state = distributed.unwrap_ddp(net).state_dict()
        torch.save(state, f"{out_dir}/weights_rank{ctx.rank}.pt")
        if ctx.is_main:
            with open(f"{out_dir}/losses.json", "w") as f:
                json.dump({"losses": losses, "world_size": ctx.world_size}, f)
        distributed.cleanup_distributed(ctx)

    if __name__ == "__main__":
        train(sys.argv[1])
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def run_bounded(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill that whole group (torchrun and its workers)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {TIMEOUT_S} s; output:\n{out[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def torchrun(nproc: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", *args]
    return run_bounded(cmd, cwd, clean_env())


# ------------------------------------------------------------------------------ two gloo processes
def test_two_gloo_ranks_match_one_process(tmp_path):
    script = tmp_path / "tiny_train.py"
    script.write_text(TRAIN_SCRIPT)
    multi = tmp_path / "ddp"
    multi.mkdir()

    result = torchrun(2, [str(script), str(multi)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]

    w0 = torch.load(multi / "weights_rank0.pt")
    w1 = torch.load(multi / "weights_rank1.pt")
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"ranks disagree on {name}"

    ddp = json.loads((multi / "losses.json").read_text())
    assert ddp["world_size"] == 2 and len(ddp["losses"]) == 3
    want_losses, want_weights = single_process_run_on_ddp_batches(script)
    torch.testing.assert_close(torch.tensor(ddp["losses"]), torch.tensor(want_losses), rtol=1e-4, atol=1e-5)
    for name in w0:
        torch.testing.assert_close(w0[name], want_weights[name], rtol=1e-4, atol=1e-5, msg=name)


def single_process_run_on_ddp_batches(script: Path) -> tuple[list[float], dict]:
    """Replay the DDP run in one process: global batch s = rank 0's batch s + rank 1's batch s."""
    sys.path.insert(0, str(script.parent))
    try:
        import importlib

        tiny = importlib.import_module(script.stem)
    finally:
        sys.path.remove(str(script.parent))
    from torch.utils.data.distributed import DistributedSampler

    from alexnet import placement

    data = tiny.dataset()
    order = [list(DistributedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=tiny.SEED)) for r in (0, 1)]
    net = placement.place_model(tiny.model(), [torch.device("cpu")] * 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    per_rank = tiny.GLOBAL_BATCH // 2
    losses = []
    for step in range(tiny.STEPS):
        idx = [i for r in (0, 1) for i in order[r][step * per_rank : (step + 1) * per_rank]]
        x = torch.stack([data[i][0] for i in idx])
        y = torch.stack([data[i][1] for i in idx])
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, net.state_dict()


# ------------------------------------------------------------------------------ the training CLI
@pytest.mark.slow
def test_torchrun_train_cli_two_ranks_and_resume(tmp_path):
    try:
        from alexnet import train  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"alexnet.train not importable yet: {exc}")
    tiny = ["--devices", "cpu,cpu", "--batch-size", "8", "--synthetic-train", "32", "--synthetic-val", "16",
            "--image-size", "76", "--crop-size", "67", "--no-progress"]
    first, second = tmp_path / "run", tmp_path / "resumed"
    result = torchrun(2, ["-m", "alexnet.train", *tiny, "--max-steps", "2", "--epochs", "1", "--out", str(first)], REPO)
    assert result.returncode == 0, result.stdout[-4000:]
    summary = json.loads((first / "summary.json").read_text())
    assert summary["config"]["world_size"] == 2 and summary["steps"] == 2
    assert sorted(p.name for p in first.iterdir()) == ["checkpoint.pt", "curves.png", "metrics.jsonl", "report.md",
                                                       "summary.json"]
    assert result.stdout.count("wrote ") == 1  # only rank 0 writes (and says so)
    epochs = [json.loads(line) for line in (first / "metrics.jsonl").read_text().splitlines() if '"epoch"' in line]
    assert [e["epoch"] for e in epochs if e.get("type") == "epoch"] == [1]

    # resume on both ranks from rank 0's checkpoint and continue to step 4 (epoch 2)
    result = torchrun(2, ["-m", "alexnet.train", *tiny, "--max-steps", "4", "--epochs", "2", "--resume", str(first),
                          "--out", str(second)], REPO)
    assert result.returncode == 0, result.stdout[-4000:]
    summary = json.loads((second / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["config"]["world_size"] == 2


# ------------------------------------------------------------------------------ single process and errors
@pytest.fixture
def no_torchrun_env(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_single_process_fallbacks(no_torchrun_env):
    ctx = distributed.init_distributed("cpu")
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(model, ctx, [torch.device("cpu")]) is model
    assert distributed.make_sampler(list(range(10)), ctx, shuffle=True, seed=0) is None
    assert distributed.reduce_metrics({"a": 1, "b": 2.5}, ctx) == {"a": 1.0, "b": 2.5}
    assert distributed.per_rank_batch_size(128, ctx) == 128
    distributed.cleanup_distributed(ctx)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RANK": "0"}, "partial torchrun environment"),
        ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "outside the world"),
        ({"RANK": "0", "WORLD_SIZE": "two", "LOCAL_RANK": "0"}, "not an integer"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4"}, "exceeds WORLD_SIZE"),
    ],
)
def test_bad_torchrun_environment(no_torchrun_env, env, message):
    for k, v in env.items():
        no_torchrun_env.setenv(k, v)
    with pytest.raises((RuntimeError, ValueError), match=message):
        distributed.init_distributed("cpu")


def test_batch_must_split_over_world():
    with pytest.raises(ValueError, match="does not split over world size 3"):
        distributed.per_rank_batch_size(128, DistContext(rank=0, world_size=3, backend="gloo"))


def test_eval_shards_cover_every_sample_once():
    data = list(range(11))
    shards = [list(distributed.ShardSampler(data, 3, r)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == data
    ctxs = [DistContext(rank=r, world_size=3, is_main=r == 0, backend="gloo") for r in range(3)]
    train = [distributed.make_sampler(data, c, shuffle=True, seed=0) for c in ctxs]
    assert len({len(s) for s in train}) == 1  # equal step counts on every rank (DDP needs that)
    assert set(i for s in train for i in s) == set(data)
