#!/usr/bin/env bash
# The checks that need a GPU, as one short run (about 9 minutes on one H200, 16 cores):
#   bash bench/gpu_check.sh [--an4 CORPUS_DIR] [--work DIR] [--jobs N]
# 1. the tests that skip on a machine without CUDA (NCCL under torchrun, features on the GPU);
# 2. with --an4, the AN4 recipe from an empty work dir, which trains on the GPU under float16
#    autocast by itself; its RESULTS.md is printed;
# 3. the whole suite with the GPU visible (recipe tests then train on it too).
# Each part runs even if the one before failed; the exit status is that of the first failure.
# `asr` and the test dependencies must be importable (make install-test, or PYTHONPATH).
set -u
an4="" work="" jobs=$(nproc)
while [ $# -gt 0 ]; do
  case $1 in
    --an4) an4=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: bash bench/gpu_check.sh [--an4 CORPUS_DIR] [--work DIR] [--jobs N]" >&2
       exit 2 ;;
  esac
done
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
start=$SECONDS status=0
part() { echo "=== [$((SECONDS - start)) s] $*"; }
note() { [ "$1" -eq 0 ] || [ "$status" -ne 0 ] || status=$1; }

part "the machine"
nvidia-smi -L
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0),
      'NCCL', '.'.join(map(str, torch.cuda.nccl.version())))" || exit 1

part "tests that need a GPU"
$PY -m pytest -q -rs -p no:cacheprovider tests/test_features.py \
  "tests/test_train.py::test_torchrun_one_process_trains_through_epoch_ends"
note $?

if [ -n "$an4" ]; then
  part "AN4 recipe on the GPU"
  [ -n "$work" ] || work=$(mktemp -d)
  time bash recipes/an4/run.sh --corpus "$an4" --work "$work/an4" --nj "$jobs"
  note $?
fi

part "whole suite, GPU visible"
$PY -m pytest -q -rs -p no:cacheprovider -n "$jobs"
note $?
part "done, status $status"
exit $status
