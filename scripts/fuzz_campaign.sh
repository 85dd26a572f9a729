#!/usr/bin/env bash
# A longer local fuzz campaign with AddressSanitizer (not run by CI):
#
#   scripts/fuzz_campaign.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 1800; targets default to all five. Each
# target runs in turn with `cargo fuzz run` (ASan; RUSTC_BOOTSTRAP=1 lets
# stable rustc take -Zsanitizer) from the same corpora as
# scripts/fuzz_smoke.sh, which it keeps growing. It builds into
# fuzz/target/asan so the smoke run's uninstrumented binaries stay valid.
# Prints per target: executions, coverage (cov/ft of the last status line)
# and new crash, timeout and OOM inputs (kept in fuzz/artifacts/<target>/).
# Exits non-zero when any target found one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export RUSTC_BOOTSTRAP=1

SECS=${1:-1800}
shift || true
ALL_TARGETS=(open decode roundtrip encode_caps mutate)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BUILD=(--target "$TRIPLE" --target-dir target/asan)
(cd fuzz && cargo fuzz build "${BUILD[@]}")

for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
done
shopt -s nullglob globstar
for t in open decode; do
    [ -d "fuzz/corpus/$t" ] || continue
    for f in fuzz/seeds/*.hhtld spec/vectors/**/*.hhtld tests/fuzz_regressions/*.hhtld; do
        cp -f "$f" "fuzz/corpus/$t/${f//\//_}"
    done
done

findings() {
    local n=0 f
    for f in "fuzz/artifacts/$1"/crash-* "fuzz/artifacts/$1"/timeout-* \
        "fuzz/artifacts/$1"/oom-* "fuzz/artifacts/$1"/leak-*; do
        n=$((n + 1))
    done
    echo "$n"
}

declare -A EXECS COV FT FOUND RC
failed=0
for t in "${TARGETS[@]}"; do
    log="fuzz/artifacts/$t/campaign.log"
    before=$(findings "$t")
    extra=()
    case "$t" in
        roundtrip | encode_caps | mutate) extra=(-max_len=4096 -len_control=0) ;;
    esac
    printf '\n== campaign %s (%s s, AddressSanitizer)\n' "$t" "$SECS" >&2
    rc=0
    (cd fuzz && cargo fuzz run "${BUILD[@]}" "$t" "corpus/$t" -- \
        -dict=dict/hhtld.dict \
        -max_total_time="$SECS" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" \
        "${extra[@]}") >"$log" 2>&1 || rc=$?
    EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    COV[$t]=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    FT[$t]=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    FOUND[$t]=$(($(findings "$t") - before))
    RC[$t]=$rc
    if [ "$rc" -ne 0 ] || [ "${FOUND[$t]}" -ne 0 ]; then
        failed=1
        grep -E -A12 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$log" | head -40 >&2 || true
        grep -E 'Test unit written to' "$log" >&2 || true
    fi
done

printf '\n== fuzz campaign summary (%s s per target, AddressSanitizer)\n' "$SECS"
printf '%-12s %12s %8s %8s %8s %6s\n' target executions cov ft crashes exit
for t in "${TARGETS[@]}"; do
    printf '%-12s %12s %8s %8s %8s %6s\n' "$t" "${EXECS[$t]:--}" "${COV[$t]:--}" "${FT[$t]:--}" "${FOUND[$t]}" "${RC[$t]}"
done
exit "$failed"
