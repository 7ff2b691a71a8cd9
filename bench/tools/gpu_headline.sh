#!/usr/bin/env bash
# The suite's headline on one GPU, in one command capped at 9 minutes (step limits 150 + 390 s; the
# estimates below are not yet timed on a GPU):
#
#   bash bench/tools/gpu_headline.sh OUT_DIR [NAME]
#
# 1. machine facts (nvidia-smi, versions)                                   OUT_DIR/machine.txt
# 2. correctness of the compiled kernels at AlexNet's batch-128 activations  OUT_DIR/check.log
#    (tests/test_gpu_kernels.py, triton and cpp; ~2 min; compile is checked by every benchmark)
# 3. pytest bench/ -m headline --benchmark-save=NAME: the targets table's     OUT_DIR/bench.log,
#    cases, each checked against eager before it is timed (~6 min)           OUT_DIR/benchmarks/ (JSON),
#                                                                            OUT_DIR/report/ (Markdown,
#                                                                            PNGs, cases.jsonl)
# Each step has its own time limit, so a slow step cannot starve the next; a benchmark run stopped at
# its limit keeps every finished case in OUT_DIR/report/cases.jsonl and its report is rendered from
# there, marking what is missing. OUT_DIR/timeline.log has the wall time of each step. Runs from the
# repository root without installing it (the GPU machine's own torch and Triton are used). NAME
# defaults to "headline". Exit status: 0 when every step passed.
set -uo pipefail
out=${1:?usage: bash bench/tools/gpu_headline.sh OUT_DIR [NAME]}
name=${2:-headline}
python=${PYTHON:-python3}
check_limit=${CHECK_SECONDS:-150}
bench_limit=${BENCH_SECONDS:-390}
mkdir -p "$out" || { echo "gpu_headline.sh: error: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ALEXNET_REPORTS_DIR="$out"   # bench/conftest.py writes the per-case log and the report under it
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/timeline.log"; }

stamp "machine"
{ nvidia-smi || echo "nvidia-smi: not available"
  $python -c "import platform, torch, triton; print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| triton', triton.__version__, '| GPU', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
} > "$out/machine.txt" 2>&1

stamp "correctness at batch 128 (limit ${check_limit} s)"
timeout --signal=INT "$check_limit" $python -m pytest tests/test_gpu_kernels.py -k "triton or cpp" -q \
  -p no:cacheprovider ${CHECK_ARGS:-} > "$out/check.log" 2>&1
check_rc=$?
tail -n 3 "$out/check.log"

stamp "headline benchmarks (limit ${bench_limit} s)"
timeout --signal=INT "$bench_limit" $python -m pytest bench/ -m headline --benchmark-save="$name" \
  --benchmark-storage="file://$out/benchmarks" -p no:cacheprovider ${BENCH_ARGS:-} > "$out/bench.log" 2>&1
bench_rc=$?
tail -n 12 "$out/bench.log"
if [ ! -f "$out/$name/README.md" ] && [ -f "$out/$name/cases.jsonl" ]; then
  stamp "rendering the report from the per-case log (the run did not finish)"
  $python -m bench.report "$out/$name/cases.jsonl" --out "$out" >> "$out/bench.log" 2>&1
fi
[ -d "$out/$name" ] && rm -rf "$out/report" && mv "$out/$name" "$out/report"
stamp "done: correctness exit $check_rc, benchmarks exit $bench_rc"
[ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 5 ] || exit 1   # 5: nothing collected/selected (no GPU)
[ "$bench_rc" -eq 0 ] || exit 1
