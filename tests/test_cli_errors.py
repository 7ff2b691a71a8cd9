"""Every command line answers a user's mistake with one line on stderr, ``<prog>: error: <what>``, and exit
status 2 - never a traceback - and leaves nothing half-made behind. Each case runs the real command in a
subprocess, as a user would."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from infra.atomic_io import atomic_write, write_json_atomic
from infra.errors import UsageError, check_output_folder, run_cli

REPO = Path(__file__).resolve().parents[1]
# a training run of seconds: AlexNet's layers with 64-wide FC layers, 67 px crops, one step
TINY_TRAIN = ["--data", "synthetic", "--synthetic-train", "16", "--synthetic-val", "8", "--batch-size", "8",
              "--image-size", "70", "--crop-size", "67", "--fc-width", "64", "--epochs", "1", "--max-steps", "1",
              "--no-progress"]


def run(module, *args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def assert_user_error(result, prog, *fragments):
    """Status 2, no traceback, and a last stderr line ``<prog>: error: ...`` naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{prog}: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def jpeg_bytes(size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buf, "JPEG")
    return buf.getvalue()


def image_folder(root: Path, broken: dict[str, bytes] | None = None) -> Path:
    """train/{cat,dog}/ and test/{cat,dog}/ with two good JPEGs each, plus ``broken`` files in train/cat."""
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                (root / split / cls / f"{i}.jpg").write_bytes(jpeg_bytes())
    for name, payload in (broken or {}).items():
        (root / "train" / "cat" / name).write_bytes(payload)
    return root


TRAIN = "python -m alexnet.train"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    r = run("alexnet.train", *TINY_TRAIN, "--out", out, env={"ALEXNET_CACHE": str(out.parent / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.mark.parametrize("case", [
    "missing-path", "empty-folder", "class-without-images", "text-as-jpeg", "truncated-jpeg", "zero-byte-image"])
def test_train_bad_data(tmp_path, case):
    data, expect = tmp_path / "data", []
    if case == "missing-path":
        data, expect = tmp_path / "nowhere", ["no such file or directory", "nowhere"]
    elif case == "empty-folder":
        data.mkdir()
        expect = ["no images", "found in"]
    elif case == "class-without-images":
        image_folder(data)
        (data / "train" / "bird").mkdir()
        (data / "train" / "bird" / "notes.txt").write_text("no images here")
        expect = ["bird", "contains no images"]
    else:
        payload = {"text-as-jpeg": b"this is text, not a JPEG\n" * 10, "truncated-jpeg": jpeg_bytes((200, 200))[:300],
                   "zero-byte-image": b""}[case]
        image_folder(data, {"bad.jpg": payload})
        expect = ["cannot decode image", "bad.jpg", "--on-corrupt skip"]
    out = tmp_path / "out"
    r = run("alexnet.train", *TINY_TRAIN, "--data", data, "--out", out, env={"ALEXNET_CACHE": str(tmp_path / "cache")})
    assert_user_error(r, TRAIN, *expect)
    assert not out.exists(), "a refused start left a run directory behind"
    leftovers = [p.name for p in (tmp_path / "cache").glob("*")] if (tmp_path / "cache").exists() else []
    assert not [n for n in leftovers if not n.endswith(".lock")], f"a half-built cache was left: {leftovers}"


@pytest.mark.parametrize("flags, expect", [
    (["--devices", "cuda:0"], ["cuda:0", "CUDA is not available"]),
    (["--devices", "gpu0"], ["unknown device name 'gpu0'"]),
    (["--layout", "two-gpu", "--devices", "cpu,cpu,cpu"], ["two-gpu", "needs"]),
    (["--layout", "two-gpu", "--devices", "cuda:0,cuda:1"], ["CUDA is not available"]),
    (["--amp", "fp16"], ["--amp fp16 needs CUDA devices", "--amp bf16"]),
])
def test_train_bad_devices_and_options(tmp_path, flags, expect):
    if torch.cuda.is_available():
        pytest.skip("these cases are about a machine without CUDA")
    r = run("alexnet.train", *TINY_TRAIN, *flags, "--out", tmp_path / "out")
    assert_user_error(r, TRAIN, *expect)
    assert not (tmp_path / "out").exists()


def test_train_bad_out(tmp_path, finished_run):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--out", a_file), TRAIN, "is a file")
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--out", a_file / "run"), TRAIN, "cannot be written")
    assert a_file.read_text() == "keep me"
    before = (finished_run / "checkpoint.pt").read_bytes()
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--out", finished_run), TRAIN, "already holds a run",
                      f"--resume {finished_run}")
    assert (finished_run / "checkpoint.pt").read_bytes() == before, "an existing run was overwritten"


def test_train_bad_resume(tmp_path, finished_run):
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--resume", tmp_path / "nothing", "--out", tmp_path / "o1"),
                      TRAIN, "--resume", "does not exist")
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--layout", "one-gpu", "--resume", finished_run,
                          "--out", tmp_path / "o2"), TRAIN, "different model", "layout")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    assert_user_error(run("alexnet.train", *TINY_TRAIN, "--resume", corrupt, "--out", tmp_path / "o3"),
                      TRAIN, "cannot be read")
    for name in ("o1", "o2", "o3"):
        assert not (tmp_path / name).exists()


def test_train_unknown_backend_is_argparse_style(tmp_path):
    r = run("alexnet.train", *TINY_TRAIN, "--kernels", "mkl", "--out", tmp_path / "out")
    assert_user_error(r, TRAIN, "--kernels", "invalid choice: 'mkl'")


def test_evaluate_bad_runs(tmp_path, finished_run):
    prog = "python -m alexnet.evaluate"
    assert_user_error(run("alexnet.evaluate", tmp_path / "nothing"), prog, "not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run("alexnet.evaluate", empty), prog, "summary.json does not exist")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text((finished_run / "summary.json").read_text())
    (broken / "checkpoint.pt").write_bytes(b"garbage")
    assert_user_error(run("alexnet.evaluate", broken), prog, "cannot be read")


def test_bench_report_bad_json(tmp_path):
    prog = "python -m bench.report"
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"machine_info": {}, "benchmarks": [')
    assert_user_error(run("bench.report", malformed, "--out", tmp_path / "r"), prog, "malformed.json")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"machine_info": {}}))
    assert_user_error(run("bench.report", partial, "--out", tmp_path / "r"), prog, "no 'benchmarks' list")
    assert_user_error(run("bench.report", tmp_path / "missing.json", "--out", tmp_path / "r"), prog, "missing.json")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    fixture = REPO / "tests" / "fixtures" / "bench_run_small.json"
    assert_user_error(run("bench.report", fixture, "--out", a_file), prog, "is a file")


def test_ablation_commands_bad_input(tmp_path):
    prog = "python -m bench.ablations"
    assert_user_error(run("bench.ablations", "--variants", "baseline,no-relu", "--runs-dir", tmp_path),
                      prog, "unknown variant(s) ['no-relu']")
    assert_user_error(run("bench.ablations", "--seeds", "zero", "--runs-dir", tmp_path), prog, "--seeds")
    report = "python -m bench.ablations.alexnet_report"
    assert_user_error(run("bench.ablations.alexnet_report", tmp_path / "results.json"), report, "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    assert_user_error(run("bench.ablations.alexnet_report", bad), report, "not a results.json")


def test_tool_commands_bad_input(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    tune = "python -m bench.tools.tune_tiling"
    assert_user_error(run("bench.tools.tune_tiling", "--smoke", "--sites", "conv9", "--out", tmp_path / "t"),
                      tune, "unknown site ['conv9']")
    assert_user_error(run("bench.tools.tune_tiling", "--smoke", "--out", a_file), tune, "is a file")
    res = "python -m bench.tools.kernel_resources"
    assert_user_error(run("bench.tools.kernel_resources", "--dtypes", "float8", "--out", tmp_path / "k"),
                      res, "unknown dtype ['float8']")
    assert_user_error(run("bench.tools.kernel_resources", "--out", a_file), res, "is a file")
    assert_user_error(run("bench.tools.kernel_resources", "--arch", "7", "--out", tmp_path / "k"),
                      res, "--arch 7 is not an NVIDIA compute capability")  # LLVM once aborted the process


def test_run_cli_boundary_is_the_exception_type(capsys):
    def user_mistake():
        raise UsageError("--out x is a file,\n  pass a folder")
    assert run_cli("prog", user_mistake) == 2
    assert capsys.readouterr().err == "prog: error: --out x is a file, pass a folder\n"

    def bug():
        raise KeyError("a real bug keeps its traceback")
    with pytest.raises(KeyError):
        run_cli("prog", bug)


def test_check_output_folder(tmp_path):
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists(), "checking must not create anything"
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="is a file"):
        check_output_folder(tmp_path / "f")
    with pytest.raises(UsageError, match="cannot be written"):
        check_output_folder(tmp_path / "f" / "sub")


def test_json_write_is_atomic(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"finished": True})

    def crash_mid_write(f):
        f.write(b'{"finished": fa')
        raise KeyboardInterrupt("simulated kill while writing")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash_mid_write)
    assert json.loads(path.read_text()) == {"finished": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "temporary file left behind"
