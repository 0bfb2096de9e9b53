#!/usr/bin/env bash
# LJSpeech 1.1: one speaker reading non-fiction, 24 hours. Dev and test are utterance splits.
# Usage: bash recipes/ljspeech/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
#          [--dev-utts 500] [--config conf/ljspeech.yaml] [--nj N]
# Stages: 0 download, 1 prep, 2 features + CMVN, 3 LM, 4 train, 5 decode, 6 RESULTS.md.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/LJSpeech-1.1
stage=0
stop_stage=6
dev_utts=500
config=$root/conf/ljspeech.yaml
work=$here
beam=16
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  [ -f "$corpus/metadata.csv" ] && echo "   (corpus present at $corpus)" ||
    download_and_unpack https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2 \
      "$(dirname "$corpus")"
fi
run_stage 1 "prep" && prep_data ljspeech "$corpus" --dev-utts "$dev_utts"
run_stage 2 "features + CMVN" && extract_features train dev
run_stage 3 "word 3-gram LM" && train_lm train 3
run_stage 4 "train" && train_model train dev
run_stage 5 "decode (dev; LM weights tuned on it)" && evaluate dev
run_stage 6 "results" && write_results "LJSpeech 1.1 (500-utterance dev split)"
exit 0
