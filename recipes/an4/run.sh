#!/usr/bin/env bash
# AN4 (CMU census database): spoken letters, digits and words, about 1 hour.
# Usage: bash recipes/an4/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
#          [--dev-speakers 5] [--config conf/an4.yaml] [--nj N]
# Stages: 0 download, 1 prep, 2 features + CMVN, 3 LM, 4 train, 5 decode, 6 RESULTS.md.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/an4
stage=0
stop_stage=6
dev_speakers=5
config=$root/conf/an4.yaml
work=$here
beam=16
alpha=0.5
beta=1.0
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  [ -d "$corpus/etc" ] && echo "   (corpus present at $corpus)" ||
    download_and_unpack http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz \
      "$(dirname "$corpus")"
fi
run_stage 1 "prep" && prep_data an4 "$corpus" --dev-speakers "$dev_speakers"
run_stage 2 "features + CMVN" && extract_features train dev test
run_stage 3 "word 3-gram LM" && train_lm train 3
run_stage 4 "train" && train_model train dev
run_stage 5 "decode" && decode_sets dev test
run_stage 6 "results" && write_results "AN4"
exit 0
