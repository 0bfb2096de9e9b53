#!/usr/bin/env bash
# The demo: synthetic spoken digit strings (recipes/demo/corpus, made by make_corpus.sh with
# espeak-ng), a small BiLSTM-CTC trained in a few minutes on a CPU, WER on held-out voices,
# then one file transcribed. This is `make demo`.
# Usage: bash recipes/demo/run.sh [--stage N] [--stop-stage N] [--work DIR]
# Stages: 1 prep (+ 1-voice dev split), 2 features + CMVN, 3 LM, 4 train,
#         5 decode test (greedy, beam + LM), 6 results table, 7 transcribe one file.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=$here/corpus
stage=1
stop_stage=7
feat_config=$root/conf/fbank_8k.yaml
config=$root/conf/demo.yaml
work=$here
beam=8
nj=$(nproc)
source "$root/recipes/lib.sh"
data=$work/data feats=$work/feats exp=$work/exp

run_stage 1 "prep" && prep_data folder "$corpus" --dev-speakers 1
run_stage 2 "features + CMVN" && extract_features train dev test
run_stage 3 "word 3-gram LM" && train_lm train 3
run_stage 4 "train" && train_model train dev
run_stage 5 "decode the held-out voices: dev decides, test is scored" && evaluate dev test
run_stage 6 "results" && write_results "demo: synthetic digit strings, held-out voices"
if run_stage 7 "transcribe one file"; then
  file=$(ls "$corpus"/test/*.flac | head -n 1)
  echo "reference:  $(cat "${file%.flac}.txt")"
  asr transcribe --checkpoint "$exp/best.pt" "$file" --format json --plot "$exp/alignment.png"
  echo "alignment plot: $exp/alignment.png"
fi
exit 0
