#!/usr/bin/env bash
# The project's test command (README): everything CI runs, on a fresh clone.
# Fetches the real model (all-MiniLM-L6-v2) into the cache when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*" >&2; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "real model"
HHTLD_MODEL=$(scripts/fetch_model.sh)
export HHTLD_MODEL
# The decode test checks the output with the official Python package.
python3 -c 'import safetensors, numpy' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check safetensors numpy

step "unit, integration and conformance tests"
cargo test --workspace --release

step "independent spec checker"
python3 spec/check_vectors.py

step "fuzz smoke runs"
scripts/fuzz_smoke.sh
