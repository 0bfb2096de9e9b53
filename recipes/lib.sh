# Shared by the recipes: option parsing and stage bookkeeping. Source it after setting defaults.
#   --name value  sets the shell variable `name` (dashes become underscores), if it has a default.
#   A stage runs when stage <= N <= stop_stage, and is skipped when its outputs exist already.
set -euo pipefail

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      grep -E '^# ' "$0" | sed 's/^# //'
      exit 0 ;;
    --*=*) name=${1%%=*}; value=${1#*=} ;;
    --*) name=$1; value=${2:?"$1 needs a value"}; shift ;;
    *) echo "$0: unexpected argument '$1' (options are --name value)" >&2; exit 2 ;;
  esac
  name=${name#--}; name=${name//-/_}
  if ! declare -p "$name" >/dev/null 2>&1; then
    echo "$0: unknown option --${name//_/-}" >&2; exit 2
  fi
  printf -v "$name" '%s' "$value"
  shift
done

# run stage N? usage: if run_stage N "description"; then ...; fi
run_stage() {
  if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
    echo "== stage $1: $2"
    return 0
  fi
  return 1
}

# done_or_run MARKER: true (and says so) when MARKER exists, so the caller skips its work
already_done() {
  if [ -e "$1" ]; then
    echo "   (done already: $1 exists; delete it to redo)"
    return 0
  fi
  return 1
}

# download URL into DIR and unpack; a clear message when there is no network
download_and_unpack() {
  local url=$1 dir=$2
  mkdir -p "$dir"
  local file="$dir/$(basename "$url")"
  if ! command -v curl >/dev/null; then
    echo "curl is needed to download $url" >&2; return 1
  fi
  if ! curl -fL --retry 2 --connect-timeout 20 -o "$file.part" "$url"; then
    echo "could not download $url (offline?). Fetch it by hand into $dir, or pass --corpus" \
         "pointing at an unpacked copy." >&2
    rm -f "$file.part"; return 1
  fi
  mv "$file.part" "$file"
  case "$file" in
    *.tar.gz|*.tgz) tar -xzf "$file" -C "$dir" ;;
    *.tar.bz2) tar -xjf "$file" -C "$dir" ;;
    *.zip) (cd "$dir" && unzip -q "$(basename "$file")") ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# The standard stages. They read: root, data, feats, exp, config, nj, beam, feat_config
# (default conf/fbank.yaml), and lm_alphas / lm_betas (the tune-lm grid).

# stage 1: prep_data CORPUS_NAME SRC [asr prep options...]
prep_data() {
  local name=$1 src=$2; shift 2
  already_done "$data/prep.json" || asr prep "$name" "$src" "$data" "$@"
}

# stage 2: extract_features SET... (the first is the training set: CMVN comes from it; the
# others are skipped when they have no data dir, as a corpus without its test half has none)
extract_features() {
  local train_set=$1 s
  local feat_config=${feat_config:-$root/conf/fbank.yaml}
  already_done "$feats/$train_set/index.tsv" ||
    asr features "$data/$train_set" "$feats/$train_set" --config "$feat_config" --jobs "$nj"
  for s in $(present "${@:2}"); do
    already_done "$feats/$s/index.tsv" ||
      asr features "$data/$s" "$feats/$s" --config "$feat_config" \
        --cmvn "$feats/$train_set/cmvn.npz" --jobs "$nj"
  done
}

# stage 3: train_lm TRAIN_SET ORDER
train_lm() {
  already_done "$data/lm/lm.arpa" || {
    mkdir -p "$data/lm"
    asr lm "$data/$1/text" --order "$2" --out "$data/lm/lm.arpa"
  }
}

# stage 4: train_model TRAIN_SET DEV_SET
train_model() {
  already_done "$exp/done.json" ||
    asr train --config "$config" --train "$data/$1" --dev "$data/$2" \
      --feats-root "$feats" --out "$exp" --resume
}

# stage 1b: speed_perturb SET [FACTOR...]: SET_sp with a waveform-speed copy per factor (default
# 0.9 1.0 1.1, Kaldi's 3-way)
speed_perturb() {
  local set=$1; shift
  local factors=("$@")
  [ ${#factors[@]} -gt 0 ] || factors=(0.9 1.0 1.1)
  already_done "$data/${set}_sp/wav.scp" ||
    asr speed-perturb "$data/$set" "$data/${set}_sp" --factors "${factors[@]}"
}

# present SET...: the names among SET... that have a data dir (a corpus's test half may be absent)
present() {
  local s
  for s in "$@"; do [ -f "$data/$s/wav.scp" ] && echo "$s"; done
  return 0
}

# decode_one CHECKPOINT SET NAME [asr decode options...]: EXP/decode_SET_NAME, unless done
decode_one() {
  local ckpt=$1 set=$2 name=$3; shift 3
  already_done "$exp/decode_${set}_${name}/wer.txt" ||
    asr decode --checkpoint "$ckpt" "$data/$set" --out "$exp/decode_${set}_${name}" "$@"
}

# stage 5: evaluate DEV_SET [TEST_SET...] (test sets without a data dir are skipped)
# The protocol (asr/selection.py): every candidate checkpoint (best.pt; avg.pt when training
# wrote it) is decoded on DEV_SET greedily and with beam search + LM, alpha/beta tuned on DEV_SET
# by `asr tune-lm`; `asr pick` chooses the candidate by dev WER; only the chosen one decodes the
# test sets, with the tuned alpha/beta. Test figures choose nothing.
evaluate() {
  local dev=$1 c ckpt s weights choice alpha beta; shift
  local lm=$data/lm/lm.arpa
  for c in best avg; do
    ckpt=$exp/$c.pt
    [ -e "$ckpt" ] || continue
    decode_one "$ckpt" "$dev" "${c}_greedy"
    already_done "$exp/tune_lm_${c}.json" ||
      asr tune-lm "$data/$dev" --checkpoint "$ckpt" --lm "$lm" --beam "$beam" \
        --alphas ${lm_alphas:-0.2 0.4 0.6 0.8 1.0 1.2 1.5 2.0} --betas ${lm_betas:-0 1 2 3 4 5 6} \
        --out "$exp/tune_lm_${c}.json"
    weights=$(tuned_weights "$exp/tune_lm_${c}.json")
    read -r alpha beta <<< "$weights"
    decode_one "$ckpt" "$dev" "${c}_beam_lm" --decoder beam --beam "$beam" --lm "$lm" \
      --alpha "$alpha" --beta "$beta"
  done
  choice=$(asr pick "$exp" --set "$dev")
  read -r ckpt alpha beta <<< "$choice"
  c=$(basename "$ckpt" .pt)
  for s in $(present "$@"); do
    decode_one "$ckpt" "$s" "${c}_greedy"
    decode_one "$ckpt" "$s" "${c}_beam_lm" --decoder beam --beam "$beam" --lm "$lm" \
      --alpha "$alpha" --beta "$beta"
  done
}

# tuned_weights TUNE_JSON: prints "alpha beta" of the best grid point
tuned_weights() {
  python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))["best"]; print(b["alpha"], b["beta"])' "$1"
}

# stage 6: write_results TITLE
write_results() {
  asr results "$exp" --title "$1"
  cat "$exp/RESULTS.md"
}
