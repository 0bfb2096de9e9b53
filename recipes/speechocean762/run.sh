#!/usr/bin/env bash
# speechocean762 (OpenSLR 101): read English by Mandarin L1 speakers, adults and children.
# Usage: bash recipes/speechocean762/run.sh [--corpus DIR] [--stage N] [--stop-stage N]
#          [--dev-speakers 15] [--config conf/speechocean762.yaml] [--work DIR]
# Stages: 0 download, 1 prep + speaker-disjoint dev split + 3-way speed perturbation of train,
#         2 features + CMVN, 3 LM,
#         4 train, 5 decode (greedy, beam + LM), 6 results table (WORK/exp/RESULTS.md).
# Test is decoded whenever the corpus has its test/ half (after prep: a first run that
# downloads it too).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/speechocean762
stage=0
stop_stage=6
dev_speakers=15
config=$root/conf/speechocean762.yaml
work=$here
beam=16
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

if run_stage 0 "download"; then
  [ -d "$corpus/train" ] && echo "   (corpus present at $corpus)" ||
    download_and_unpack https://www.openslr.org/resources/101/speechocean762.tar.gz \
      "$(dirname "$corpus")"
fi
if run_stage 1 "prep + speed perturbation"; then
  prep_data speechocean762 "$corpus" --dev-speakers "$dev_speakers"
  speed_perturb train
fi
run_stage 2 "features + CMVN" && extract_features train_sp dev test
run_stage 3 "word 3-gram LM" && train_lm train 3
run_stage 4 "train" && train_model train_sp dev
run_stage 5 "decode: dev decides, test is scored" && evaluate dev test
run_stage 6 "results" && write_results "speechocean762, train half, $dev_speakers-speaker dev split"
exit 0
