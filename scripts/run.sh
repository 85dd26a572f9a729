#!/usr/bin/env bash
# The main job (README): fetch all-MiniLM-L6-v2, encode it with a profile
# (default: fidelity; calibrated on data/text/calib.txt, since the model is
# a BERT with its tokenizer beside it), run the model from the result
# against the original on the 600 evaluation sentences (encode --eval, which
# stores the figures in the file), inspect it, and verify it against the
# original (every tensor gate and the stored figures recomputed).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-fidelity}
model=$(scripts/fetch_model.sh)
cargo build --release --quiet
out=target/minilm-$profile.hhtld
target/release/hhtld encode "$model" -o "$out" --profile "$profile" --eval
target/release/hhtld inspect --verify "$out"
# Exit status 1 here means a tensor misses its gate (expected for hhtl) or
# a stored figure is not reproduced.
target/release/hhtld verify "$out" --against "$model" | tail -n 2
