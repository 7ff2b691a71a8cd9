"""bench.tools.tune_tiling, the GPU launch-shape sweep, checked on the CPU through its smoke mode: every
kernel and candidate runs, outputs are compared with the default's, and a wrong one fails the run."""
import pandas as pd
import pytest
import torch

from bench.tools import tune_tiling
from kernels.catalog import CUSTOM_OPS
from tests.conftest import require_backend

ARGS = ["--smoke", "--sites", "conv1", "--dtypes", "float32", "--layouts", "channels_last"]


@pytest.fixture(autouse=True)
def _triton():
    require_backend("triton")


def test_smoke_sweep_runs_every_kernel_and_candidate(tmp_path):
    assert tune_tiling.main([*ARGS, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "tiling.csv")
    assert set(zip(table["op"], table["pass"])) == {(op, d) for op in CUSTOM_OPS for d in tune_tiling.PASSES}
    assert table.groupby(["op", "pass"]).size().min() >= 3  # the default and at least two alternatives
    assert table["matches_default"].all() and (table["us"] > 0).all()
    assert table["config"].str.contains("chunk=5").any()  # a chunked walk (of 11 channels) was among them
    assert table["config"].str.startswith("channel-vectors").any()  # channels_last: the vector kernel too
    report = (tmp_path / "README.md").read_text()
    assert "SMOKE RUN" in report and "matched the default's: yes" in report


def test_an_op_without_candidates_is_an_error(monkeypatch):
    real = tune_tiling._launch_candidates
    monkeypatch.setattr(tune_tiling, "_launch_candidates",
                        lambda x, smoke: {k: v for k, v in real(x, smoke).items() if k != ("max_pool", "backward")})
    x = torch.randn(tune_tiling.SMOKE_SHAPE)
    with pytest.raises(LookupError, match=r"\('max_pool', 'backward'\)"):
        tune_tiling.kernel_cases(x, smoke=True)


def test_a_wrong_candidate_fails_the_sweep(tmp_path, monkeypatch):
    real = tune_tiling.kernel_cases

    def with_a_bad_one(x, smoke):  # only the case that gets the bad candidate: the sweep above ran the rest
        candidates, nbytes = real(x, smoke)[("relu_lrn", "forward")]
        bad = tune_tiling.Candidate("broken", lambda: candidates[0].run() + 1.0)
        return {("relu_lrn", "forward"): (candidates + [bad], nbytes)}

    monkeypatch.setattr(tune_tiling, "kernel_cases", with_a_bad_one)
    assert tune_tiling.main([*ARGS, "--out", str(tmp_path)]) == 1
    assert "differ from the default (a bug)" in (tmp_path / "README.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_full_sweep_needs_a_gpu(tmp_path):
    with pytest.raises(SystemExit) as exc:
        tune_tiling.main(["--out", str(tmp_path)])
    assert exc.value.code == 2
