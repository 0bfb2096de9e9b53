#!/usr/bin/env bash
# Free Spoken Digit Dataset: single digits, 6 speakers, 8 kHz. Index 0-4 of each digit and speaker is test.
# Usage: bash recipes/fsdd/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
#          [--dev-utts 200] [--config conf/fsdd.yaml] [--nj N]
# Stages: 0 download, 1 prep, 2 features + CMVN, 3 LM, 4 train, 5 decode, 6 RESULTS.md.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/free-spoken-digit-dataset
stage=0
stop_stage=6
dev_utts=200
feat_config=$root/conf/fbank_8k.yaml
config=$root/conf/fsdd.yaml
work=$here
beam=16
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  [ -d "$corpus/recordings" ] && echo "   (corpus present at $corpus)" || {
    download_and_unpack \
      https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz \
      "$(dirname "$corpus")"
    mv "$(dirname "$corpus")/free-spoken-digit-dataset-1.0.10" "$corpus"
  }
fi
run_stage 1 "prep" && prep_data fsdd "$corpus" --dev-utts "$dev_utts"
run_stage 2 "features + CMVN" && extract_features train dev test
run_stage 3 "word 1-gram LM" && train_lm train 1
run_stage 4 "train" && train_model train dev
run_stage 5 "decode: dev decides, test is scored" && evaluate dev test
run_stage 6 "results" && write_results "FSDD (conventional split)"
exit 0
