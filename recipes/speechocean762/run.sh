#!/usr/bin/env bash
# speechocean762 (OpenSLR 101): read English by Mandarin L1 speakers, adults and children.
# Usage: bash recipes/speechocean762/run.sh [--corpus DIR] [--stage N] [--stop-stage N]
#          [--dev-speakers 15] [--config conf/speechocean762.yaml] [--work DIR]
# Stages: 0 download, 1 prep + speaker-disjoint dev split, 2 features + CMVN, 3 LM,
#         4 train, 5 decode (greedy, beam + LM), 6 results table (EXP/RESULTS.md).
# Runs from any directory; outputs go under --work (default recipes/speechocean762).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/download/speechocean762
stage=0
stop_stage=6
dev_speakers=15
config=$root/conf/speechocean762.yaml
work=$here
lm_order=3
beam=16
alpha=0.5
beta=1.0
nj=$(nproc)
source "$root/recipes/lib.sh"

data=$work/data
feats=$work/feats
exp=$work/exp
sets="dev"
[ -d "$corpus/test" ] && sets="dev test"

if run_stage 0 "download"; then
  if [ -d "$corpus/train" ]; then
    echo "   (corpus present at $corpus)"
  else
    download_and_unpack https://www.openslr.org/resources/101/speechocean762.tar.gz "$(dirname "$corpus")"
  fi
fi

if run_stage 1 "prep: $corpus -> $data"; then
  already_done "$data/prep.json" ||
    asr prep speechocean762 "$corpus" "$data" --dev-speakers "$dev_speakers"
fi

if run_stage 2 "features + global CMVN from train"; then
  already_done "$feats/train/index.tsv" ||
    asr features "$data/train" "$feats/train" --config "$root/conf/fbank.yaml" --jobs "$nj"
  for s in $sets; do
    already_done "$feats/$s/index.tsv" ||
      asr features "$data/$s" "$feats/$s" --config "$root/conf/fbank.yaml" \
        --cmvn "$feats/train/cmvn.npz" --jobs "$nj"
  done
fi

if run_stage 3 "word $lm_order-gram LM from the training transcripts"; then
  already_done "$data/lm/lm.arpa" || {
    mkdir -p "$data/lm"
    asr lm "$data/train/text" --order "$lm_order" --out "$data/lm/lm.arpa"
  }
fi

if run_stage 4 "train ($config)"; then
  already_done "$exp/best.pt" ||
    asr train --config "$config" --train "$data/train" --dev "$data/dev" \
      --feats-root "$feats" --out "$exp" --resume
fi

if run_stage 5 "decode: greedy and beam + LM"; then
  for s in $sets; do
    already_done "$exp/decode_${s}_greedy/wer.txt" ||
      asr decode --checkpoint "$exp/best.pt" "$data/$s" --out "$exp/decode_${s}_greedy"
    already_done "$exp/decode_${s}_beam_lm/wer.txt" ||
      asr decode --checkpoint "$exp/best.pt" "$data/$s" --out "$exp/decode_${s}_beam_lm" \
        --decoder beam --beam "$beam" --lm "$data/lm/lm.arpa" --alpha "$alpha" --beta "$beta"
  done
fi

if run_stage 6 "results table"; then
  asr results "$exp" --title "speechocean762 (train half; ${dev_speakers}-speaker dev split)"
  cat "$exp/RESULTS.md"
fi
