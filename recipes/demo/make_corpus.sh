#!/usr/bin/env bash
# Makes the bundled demo corpus that `make demo` trains on: 500 spoken digit strings
# ("FOUR ONE FIVE FIVE TWO", 3-8 digits) synthesised with espeak-ng in 11 voices, at random
# speeds, pitches, levels and noise; 8 kHz mono 16-bit FLAC with a .txt transcript beside each.
#   train/: 400 utterances of 8 voices;  test/: 100 utterances, 60 of them by 3 voices heard only here.
# The same seed every time, so a rerun rewrites the same corpus. Settings: make_corpus.py.
#
# usage: bash recipes/demo/make_corpus.sh [OUT_DIR]     (default: recipes/demo/corpus)
# needs: espeak-ng, sox, and a Python with numpy and soundfile: $PYTHON if set, else the repo's
#        .venv when it exists, else python3
set -euo pipefail

case "${1:-}" in
  -h|--help) grep -E '^#( |$)' "$0" | sed -E 's/^# ?//'; exit 0 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:-$here/corpus}

for tool in espeak-ng sox; do
  if ! command -v "$tool" >/dev/null; then
    echo "$0: '$tool' is not installed; it is needed to synthesise the demo corpus" \
         "(Debian/Ubuntu: sudo apt-get install espeak-ng sox)" >&2
    exit 1
  fi
done

python=${PYTHON:-}
if [ -z "$python" ]; then
  python=python3
  if [ -x "$here/../../.venv/bin/python" ]; then python=$here/../../.venv/bin/python; fi
fi
if ! "$python" -c "import numpy, soundfile" 2>/dev/null; then
  echo "$0: $python cannot import numpy and soundfile; run 'make install' first," \
       "or set PYTHON to a Python that has them" >&2
  exit 1
fi

exec "$python" "$here/make_corpus.py" "$out_dir"
