# What scripts/fuzz_smoke.sh and scripts/fuzz_campaign.sh share (sourced by
# both from the repository root, after `set -euo pipefail`): the targets,
# their seed corpora, the libFuzzer options and the reading of a run's log.
# A target added to fuzz/ goes in ALL_TARGETS here.

ALL_TARGETS=(open decode roundtrip encode_caps mutate)

# A glob that matches nothing expands to nothing (seeds, crash counts).
shopt -s nullglob globstar

# Installs cargo-fuzz when missing.
ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked
    fi
}

# Creates fuzz/corpus/<t> and fuzz/artifacts/<t> for each target given; the
# file targets (open, decode) start from the committed seeds, the spec's
# conformance vectors and past crash inputs (fuzz/corpus is not in git).
seed_corpora() {
    local t f
    for t in "$@"; do
        mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    done
    local file_seeds=(fuzz/seeds/*.hhtld spec/vectors/**/*.hhtld tests/fuzz_regressions/*.hhtld)
    for t in open decode; do
        [ -d "fuzz/corpus/$t" ] || continue
        for f in "${file_seeds[@]}"; do
            # Named after the path: several directories hold an empty.hhtld.
            cp -f "$f" "fuzz/corpus/$t/${f//\//_}"
        done
    done
}

# Sets FUZZ_OPTS to the libFuzzer options of target $1 run for $2 seconds;
# $3 is the fuzz crate's directory as the run sees it ("fuzz/" from the
# repository root, "" from inside fuzz/).
libfuzzer_opts() {
    local t=$1 secs=$2 dir=$3
    FUZZ_OPTS=(
        -dict="${dir}dict/hhtld.dict"
        -max_total_time="$secs"
        -rss_limit_mb=2048
        -timeout=10
        -print_final_stats=1
        -artifact_prefix="${dir}artifacts/$t/"
    )
    case "$t" in
        # Structured inputs: allow long scripts from the start.
        roundtrip | encode_caps | mutate) FUZZ_OPTS+=(-max_len=4096 -len_control=0) ;;
    esac
}

# Records in EXECS, COV and FT (associative arrays the caller declares) the
# executions and the last status line's coverage of target $1's log $2.
read_stats() {
    local t=$1 log=$2 last
    EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    COV[$t]=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    FT[$t]=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
}

# Prints the panic message of log $1 and the input libFuzzer saved.
show_failure() {
    grep -E -A12 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$1" | head -40 >&2 || true
    grep -E 'Test unit written to' "$1" >&2 || true
}
