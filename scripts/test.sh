#!/usr/bin/env bash
# The project's test command (README): everything CI runs, on a fresh clone.
# Fetches the real model (all-MiniLM-L6-v2) into the cache when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*" >&2; }

step "format and lints"
cargo fmt --all -- --check
# The workspace builds hhtld-reader with its `candle` feature (hhtld-eval
# needs it), so clippy covers hhtld_reader::candle and both commands build
# candle-transformers once each.
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "real model"
HHTLD_MODEL=$(scripts/fetch_model.sh)
export HHTLD_MODEL
# Python tests and checks run in the project's own virtual environment.
HHTLD_PYTHON="$(scripts/venv.sh)/bin/python"
export HHTLD_PYTHON

# Includes tests/candle.rs: candle loads MiniLM from .hhtld bit for bit as
# from its F32 decode (F32, BF16, F16 weights; BertModel outputs), and
# `hhtld eval` on MiniLM agrees with scripts/reference_eval.py.
step "unit, integration and conformance tests"
cargo test --workspace --release

step "Python tests (reference forward pass metrics)"
"$HHTLD_PYTHON" -m pytest -q tests/python/test_reference_eval.py

step "Python package: pip install ./python, then its pytest suite"
# Test-only packages (torch for framework="pt", ml_dtypes for numpy
# bfloat16); then the package itself, built by maturin from this checkout.
# The tests use target/release/hhtld, built by `cargo test --release` above.
"$HHTLD_PYTHON" -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
"$HHTLD_PYTHON" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
# pytest exits 5 when it collects no test; with `set -e` that fails the run.
"$HHTLD_PYTHON" -m pytest -q python/tests

step "end-to-end quality of every profile (independent forward pass, data/text/eval.txt)"
HHTLD_BIN="$PWD/target/release/hhtld" scripts/quality.sh --no-anchors

step "independent spec checker"
"$HHTLD_PYTHON" spec/check_vectors.py

step "fuzz smoke runs"
scripts/fuzz_smoke.sh
