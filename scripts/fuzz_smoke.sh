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

SECONDS_PER=${FUZZ_SECONDS:-30}
ALL_TARGETS=(open decode roundtrip encode_caps mutate)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN="fuzz/target/$TRIPLE/release"

# One build of every target (the fuzz crate has its own target dir).
(cd fuzz && cargo fuzz build --sanitizer none --target "$TRIPLE")

# Seed corpora; fuzz/corpus is not in git. File targets start from the
# committed seeds, the spec's conformance vectors and past crash inputs.
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
done
shopt -s nullglob globstar
file_seeds=(fuzz/seeds/*.hhtld spec/vectors/**/*.hhtld tests/fuzz_regressions/*.hhtld)
for t in open decode; do
    [ -d "fuzz/corpus/$t" ] || continue
    for f in "${file_seeds[@]}"; do
        # Named after the path: several directories hold an empty.hhtld.
        cp -f "$f" "fuzz/corpus/$t/${f//\//_}"
    done
done

declare -A RESULT EXECS COV FT
failed=0
for t in "${TARGETS[@]}"; do
    log="fuzz/artifacts/$t/smoke.log"
    extra=()
    case "$t" in
        # Structured inputs: allow long scripts from the start.
        roundtrip | encode_caps | mutate) extra=(-max_len=4096 -len_control=0) ;;
    esac
    printf '\n== fuzz %s (%s s)\n' "$t" "$SECONDS_PER" >&2
    rc=0
    "$BIN/$t" "fuzz/corpus/$t" \
        -dict=fuzz/dict/hhtld.dict \
        -max_total_time="$SECONDS_PER" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" \
        "${extra[@]}" >"$log" 2>&1 || rc=$?
    EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    COV[$t]=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    FT[$t]=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    if [ "$rc" -eq 0 ]; then
        RESULT[$t]=ok
    else
        RESULT[$t]="FAILED (exit $rc)"
        failed=1
        # The panic message and the input libFuzzer saved.
        grep -E -A12 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$log" | head -40 >&2 || true
        grep -E 'Test unit written to' "$log" >&2 || true
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
