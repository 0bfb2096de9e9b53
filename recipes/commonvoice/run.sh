#!/usr/bin/env bash
# Mozilla Common Voice (one language folder: train.tsv, dev.tsv, test.tsv, clips/).
# Usage: bash recipes/commonvoice/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
# Stages: 0 download, 1 prep, 2 features + CMVN, 3 LM, 4 train, 5 decode, 6 RESULTS.md.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/cv-corpus/en
stage=0
stop_stage=6
config=$root/conf/commonvoice.yaml
work=$here
beam=16
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  if [ ! -f "$corpus/train.tsv" ]; then
    echo "Common Voice needs an account to download: get a language archive from" \
         "https://commonvoice.mozilla.org/datasets, unpack it, and pass --corpus DIR" >&2
    exit 1
  fi
  echo "   (corpus present at $corpus)"
fi
run_stage 1 "prep" && prep_data commonvoice "$corpus"
run_stage 2 "features + CMVN" && extract_features train dev test
run_stage 3 "word 3-gram LM" && train_lm train 3
run_stage 4 "train" && train_model train dev
run_stage 5 "decode: dev decides, test is scored" && evaluate dev test
run_stage 6 "results" && write_results "Common Voice"
exit 0
