#!/usr/bin/env bash
# Creates (once) the project's Python virtual environment and prints its
# directory. Packages come from scripts/requirements.txt; the system Python
# is never changed.
#
#   HHTLD_VENV   where the environment lives (default: target/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HHTLD_VENV:-$PWD/target/venv}"
REQ=scripts/requirements.txt
stamp="$VENV/.requirements"
if [[ ! -x "$VENV/bin/python" ]]; then
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2
fi
if ! cmp -s "$REQ" "$stamp"; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
    cp "$REQ" "$stamp"
fi
printf '%s\n' "$VENV"
