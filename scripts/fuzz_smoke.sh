#!/usr/bin/env bash
# Short runs of every cargo-fuzz target (fuzz/), on stable, without
# sanitizers: called by scripts/test.sh after the tests. Each target runs for
# FUZZ_SECONDS (default 30) from seed corpora made here; the script exits
# non-zero when any target crashes, times out or runs out of memory, and
# prints executions and coverage per target at the end.
#
#   scripts/fuzz_smoke.sh                 # all targets, 30 s each
#   FUZZ_SECONDS=5 scripts/fuzz_smoke.sh open decode
#
# Crash inputs are kept in fuzz/artifacts/<target>/; add each one to
# tests/fuzz_regressions/ once understood (see tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# shellcheck source=scripts/fuzz_common.sh
. scripts/fuzz_common.sh

SECONDS_PER=${FUZZ_SECONDS:-30}
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

ensure_cargo_fuzz
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN="fuzz/target/$TRIPLE/release"

# One build of every target (the fuzz crate has its own target dir).
(cd fuzz && cargo fuzz build --sanitizer none --target "$TRIPLE")

seed_corpora "${TARGETS[@]}"

declare -A RESULT EXECS COV FT
failed=0
for t in "${TARGETS[@]}"; do
    log="fuzz/artifacts/$t/smoke.log"
    libfuzzer_opts "$t" "$SECONDS_PER" fuzz/
    printf '\n== fuzz %s (%s s)\n' "$t" "$SECONDS_PER" >&2
    rc=0
    "$BIN/$t" "fuzz/corpus/$t" "${FUZZ_OPTS[@]}" >"$log" 2>&1 || rc=$?
    read_stats "$t" "$log"
    if [ "$rc" -eq 0 ]; then
        RESULT[$t]=ok
    else
        RESULT[$t]="FAILED (exit $rc)"
        failed=1
        show_failure "$log"
    fi
done

printf '\n== fuzz smoke summary (%s s per target)\n' "$SECONDS_PER"
printf '%-12s %12s %8s %8s  %s\n' target executions cov ft result
for t in "${TARGETS[@]}"; do
    printf '%-12s %12s %8s %8s  %s\n' "$t" "${EXECS[$t]:--}" "${COV[$t]:--}" "${FT[$t]:--}" "${RESULT[$t]}"
done
passed=0
for t in "${TARGETS[@]}"; do
    if [ "${RESULT[$t]}" = ok ]; then passed=$((passed + 1)); fi
done
# The plain closing line CI reads: one per fuzz target run.
printf 'fuzz: %d passed, %d failed\n' "$passed" $((${#TARGETS[@]} - passed))
exit "$failed"
