#!/usr/bin/env bash
# The GPU work of this suite, cut into stages that each fit one 10-minute command on a lent GPU
# machine (a bare image with CUDA PyTorch, Triton, pytest-benchmark, pandas and matplotlib; the repo
# is not pip-installed there, so everything runs from the repository root).
#
#   bash bench/tools/gpu_session.sh STAGE [NAME]
#
# STAGE      what it runs (~minutes on an H100)                               writes under $OUT
# check      nvidia-smi; GPU kernel tests at batch 128 and the CUDA-only tests   check.log
#            (~4)
# tiling     sweep of the Triton launch shapes vs the defaults, outputs checked  tiling/README.md, tiling.csv
#            (~6; python -m bench.tools.tune_tiling)
# kernels-a  relu_lrn kernel benchmarks, all backends (~6)                       NAME-kernels-a.tgz
# kernels-b  max_pool, relu_lrn_pool and unfused benchmarks (~6)               NAME-kernels-b.tgz
# model      AlexNet step benchmarks: layouts, placements, kernels (~6)          NAME-model.tgz
# train      CIFAR-10 at 227 px, 2 epochs each: triton vs eager kernels, bf16,   train.tgz
#            channels_last, plus the same on synthetic images (~8)
#
# NAME defaults to h100. Each stage keeps the benchmark JSON (pytest-benchmark's storage) and the
# report it generated; merge the parts back here with
#   python -m bench.report A.json B.json C.json --merge NAME
# The train stage needs the CIFAR-10 archive carried along: copy ../shared/data/cifar10-jpg.tar.gz to
# .gpu_carry/ (ignored by git) and name .gpu_carry in the device call's carry list.
set -euo pipefail
stage=${1:?usage: bash bench/tools/gpu_session.sh check|tiling|kernels-a|kernels-b|model|train [NAME]}
name=${2:-h100}
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
python=${PYTHON:-python3}
storage="file://$PWD/.benchmarks"

bench() {  # bench PART PYTEST-ARGS...: one saved benchmark part and its report, packed for the trip back
  local part=$1
  shift
  $python -m pytest "$@" --benchmark-save="$name-$part" --benchmark-storage="$storage" -p no:cacheprovider \
    2>&1 | tee "$out/$part.log"
  tar czf "$out/$name-$part.tgz" .benchmarks "reports/$name-$part" "$out/$part.log"
}

case "$stage" in
  check)
    {
      nvidia-smi
      $python -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name())"
      $python -m pytest tests/test_gpu_kernels.py tests/test_cuda_backend.py tests/test_triton_internals.py \
        tests/test_kernels.py -x -q -p no:cacheprovider
    } 2>&1 | tee "$out/check.log"
    ;;
  tiling) $python -m bench.tools.tune_tiling --out "$out/tiling" 2>&1 | tee "$out/tiling.log" ;;
  kernels-a) bench kernels-a bench/test_kernel_bench.py -k "relu_lrn and not relu_lrn_pool" ;;
  kernels-b) bench kernels-b bench/test_kernel_bench.py -k "not relu_lrn or relu_lrn_pool" ;;
  model) bench model bench/test_model_bench.py ;;
  train)
    archive=.gpu_carry/cifar10-jpg.tar.gz
    [ -f "$archive" ] || { echo "no $archive: carry the CIFAR-10 archive (see the header)" >&2; exit 2; }
    export ALEXNET_CIFAR10=$PWD/$archive
    common=(--amp bf16 --channels-last --epochs 2 --batch-size 128 --no-progress --log-every 50)
    for kernels in triton eager; do
      $python -m alexnet.train --kernels "$kernels" --data cifar10 "${common[@]}" --out "runs/cifar-$kernels" \
        2>&1 | tee "$out/train-cifar-$kernels.log"
    done
    $python -m alexnet.train --kernels triton --data synthetic "${common[@]}" --out runs/synthetic-triton \
      2>&1 | tee "$out/train-synthetic-triton.log"
    tar czf "$out/train.tgz" --exclude='*.pt' runs "$out"/train-*.log
    ;;
  *) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
