#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12): train-clean-100 by default, dev-clean and test-clean for scoring.
# Usage: bash recipes/librispeech/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
# Stages: 0 download, 1 prep, 2 features + CMVN, 3 LM, 4 train, 5 decode, 6 RESULTS.md.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/LibriSpeech
stage=0
stop_stage=6
config=$root/conf/librispeech.yaml
work=$here
beam=16
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  for part in train-clean-100 dev-clean test-clean; do
    [ -d "$corpus/$part" ] && echo "   ($part present)" ||
      download_and_unpack "https://www.openslr.org/resources/12/$part.tar.gz" "$(dirname "$corpus")"
  done
fi
run_stage 1 "prep" && prep_data librispeech "$corpus"
run_stage 2 "features + CMVN" && extract_features train_clean_100 dev_clean test_clean
run_stage 3 "word 3-gram LM" && train_lm train_clean_100 3
run_stage 4 "train" && train_model train_clean_100 dev_clean
run_stage 5 "decode: dev decides, test is scored" && evaluate dev_clean test_clean
run_stage 6 "results" && write_results "LibriSpeech train-clean-100"
exit 0
