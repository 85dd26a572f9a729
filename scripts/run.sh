#!/usr/bin/env bash
# The main job (README): fetch all-MiniLM-L6-v2, encode it with a profile
# (default: fidelity), inspect the result, verify it against the original and
# run the model from it (hhtld eval: sentence embeddings vs the original).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-fidelity}
model=$(scripts/fetch_model.sh)
cargo build --release --quiet
out=target/minilm-$profile.hhtld
target/release/hhtld encode "$model" -o "$out" --profile "$profile"
target/release/hhtld inspect --verify "$out"
# Exit status 1 here means a tensor misses its gate (expected for hhtl).
target/release/hhtld verify "$out" --against "$model" | tail -n 1
# The model itself, run from the .hhtld file in candle: sentence embeddings
# of the 600 evaluation sentences against the original weights'.
target/release/hhtld eval "$model" "$out"
