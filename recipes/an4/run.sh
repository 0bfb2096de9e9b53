#!/usr/bin/env bash
# AN4 (CMU census database): spoken letters, digits and words, 0.7 h of training speech.
# Usage: bash recipes/an4/run.sh [--corpus DIR] [--stage N] [--stop-stage N] [--work DIR]
#          [--dev-speakers 8] [--dev-pick first] [--config conf/an4.yaml] [--nj N]
# Stages: 0 download, 1 prep (sphere or raw big-endian release, found by what is on disk) +
#         speaker-disjoint dev split (the first 8 speakers: ESPnet's train_dev, the first 100
#         utterances of train) + 3-way speed perturbation of train, 2 features + CMVN,
#         3 LM, 4 train, 5 decode (dev chooses checkpoint and LM weights; test is scored),
#         6 results table (WORK/exp/RESULTS.md).
# Test is decoded whenever the corpus has its test half (etc/an4_test.transcription).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/an4
stage=0
stop_stage=6
dev_speakers=8
dev_pick=first  # or random (drawn with asr prep's --seed 0)
config=$root/conf/an4.yaml
work=$here
beam=16
lm_order=3
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  [ -d "$corpus/etc" ] && echo "   (corpus present at $corpus)" ||
    download_and_unpack http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz \
      "$(dirname "$corpus")"
fi
if run_stage 1 "prep + speed perturbation"; then
  prep_data an4 "$corpus" --dev-speakers "$dev_speakers" --dev-pick "$dev_pick"
  speed_perturb train
fi
run_stage 2 "features + CMVN" && extract_features train_sp dev test
run_stage 3 "word $lm_order-gram LM" && train_lm train "$lm_order"
run_stage 4 "train" && train_model train_sp dev
run_stage 5 "decode: dev decides, test is scored" && evaluate dev test
case $dev_pick:$dev_speakers in
  first:8) split="ESPnet's train_dev, the first 8 speakers of train" ;;
  first:*) split="the first $dev_speakers speakers of train" ;;
  *) split="$dev_speakers speakers of train drawn with seed 0" ;;
esac
run_stage 6 "results" && write_results "AN4, dev = $split"
exit 0
