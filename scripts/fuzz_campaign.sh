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

# shellcheck source=scripts/fuzz_common.sh
. scripts/fuzz_common.sh

SECS=${1:-1800}
shift || true
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

ensure_cargo_fuzz
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BUILD=(--target "$TRIPLE" --target-dir target/asan)
(cd fuzz && cargo fuzz build "${BUILD[@]}")

seed_corpora "${TARGETS[@]}"

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
    libfuzzer_opts "$t" "$SECS" ""
    printf '\n== campaign %s (%s s, AddressSanitizer)\n' "$t" "$SECS" >&2
    rc=0
    (cd fuzz && cargo fuzz run "${BUILD[@]}" "$t" "corpus/$t" -- "${FUZZ_OPTS[@]}") >"$log" 2>&1 || rc=$?
    read_stats "$t" "$log"
    FOUND[$t]=$(($(findings "$t") - before))
    RC[$t]=$rc
    if [ "$rc" -ne 0 ] || [ "${FOUND[$t]}" -ne 0 ]; then
        failed=1
        show_failure "$log"
    fi
done

printf '\n== fuzz campaign summary (%s s per target, AddressSanitizer)\n' "$SECS"
printf '%-12s %12s %8s %8s %8s %6s\n' target executions cov ft crashes exit
for t in "${TARGETS[@]}"; do
    printf '%-12s %12s %8s %8s %8s %6s\n' "$t" "${EXECS[$t]:--}" "${COV[$t]:--}" "${FT[$t]:--}" "${FOUND[$t]}" "${RC[$t]}"
done
exit "$failed"
