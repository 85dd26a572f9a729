#!/usr/bin/env bash
# Benchmarks hhtld against safetensors on all-MiniLM-L6-v2 (BENCHMARKS.md).
#
#   scripts/bench.sh            prepare, compare, encode throughput and scaling,
#                               peak RSS, page-touch demo
#   HHTLD_BENCH_PROFILE=1 scripts/bench.sh
#                               also callgrind summaries (encode, decode, open)
#                               and the decode kernel's packed-SIMD check
#
# Environment:
#   HHTLD_BENCH_DIR          data and results (default target/bench-data)
#   HHTLD_BENCH_REPS         interleaved repetitions per comparison (default 41)
#   HHTLD_BENCH_ENCODE_REPS  runs of each profile's encode (default 3)
#   HHTLD_BENCH_ROWS         synthetic encode sizes (default 4096,16384,65536)
#   HHTLD_BENCH_LOAD_REPS    repetitions of each candle load, warm and cold (default 9)
#   HHTLD_CACHE              model cache (see scripts/fetch_model.sh)
#
# Every table is printed and also written to $HHTLD_BENCH_DIR/results.md.
# The machine may be shared: comparisons interleave hhtld and the baseline
# and report medians of ratios, not single absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${HHTLD_BENCH_DIR:-target/bench-data}"
REPS="${HHTLD_BENCH_REPS:-41}"
ENC_REPS="${HHTLD_BENCH_ENCODE_REPS:-3}"
ROWS="${HHTLD_BENCH_ROWS:-4096,16384,65536}"
PROFILES=(fidelity compact hhtl)
BIN=target/release
EX=target/release/examples

step() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required for peak RSS"

mkdir -p "$DIR"
OUT="$DIR/results.md"
: >"$OUT"
emit() { printf '%s\n' "$*" | tee -a "$OUT"; }

step "build (release)"
cargo build --release --bin hhtld \
    --example bench_prepare --example bench_compare \
    --example bench_encode --example bench_probe

step "model"
MODEL="$(scripts/fetch_model.sh)"

# Runs a command under /usr/bin/time -v while sampling its RssAnon/RssFile
# from /proc; sets WALL (s), MAXRSS, ANON, FILE (KiB). Output goes to $LOG.
measure() {
    local tf
    tf="$(mktemp)"
    /usr/bin/time -v -o "$tf" "$@" >"$LOG" 2>&1 &
    local tpid=$! child="" a f
    ANON=0 FILE=0
    while kill -0 "$tpid" 2>/dev/null; do
        if [[ -z "$child" ]]; then
            child="$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}')" || true
        fi
        if [[ -n "$child" ]] && read -r a f < <(awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{print a+0, f+0}' "/proc/$child/status" 2>/dev/null); then
            ((a > ANON)) && ANON=$a
            ((f > FILE)) && FILE=$f
        fi
        sleep 0.05
    done
    wait "$tpid" || die "failed: $* (see $LOG)"
    WALL="$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$tf")"
    MAXRSS="$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf")"
    rm -f "$tf"
}

step "prepare $DIR"
BF16="$DIR/model-bf16.safetensors"
if [[ ! -s "$BF16" || "$BF16" -ot "$MODEL" || "$BF16" -ot "$EX/bench_prepare" ]]; then
    "$EX/bench_prepare" "$MODEL" "$BF16" >"$DIR/params.txt"
fi
[[ -s "$DIR/params.txt" ]] || "$EX/bench_prepare" "$MODEL" "$BF16" >"$DIR/params.txt"
PARAMS="$(cat "$DIR/params.txt")"

emit "# hhtld benchmark results"
emit ""
# (Pipelines below read all their input: with pipefail an early exit would fail the script.)
emit "- machine: $(lscpu | awk -F: '/Model name/ && !m {gsub(/^ +/,"",$2); m=$2} END{print m}'), $(nproc) cores; $(rustc --version)"
emit "- model: all-MiniLM-L6-v2 ($MODEL), $PARAMS parameters; baseline: $BF16 (every float tensor BF16)"
emit "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

step "encode throughput and peak RSS ($ENC_REPS runs per profile, --threads 2)"
emit ""
emit "## Encode (CLI, --threads 2, median of $ENC_REPS runs)"
emit ""
emit "| profile | file size | median wall | params/s | peak RSS | peak RssAnon | peak RssFile |"
emit "|---|---:|---:|---:|---:|---:|---:|"
for p in "${PROFILES[@]}"; do
    walls=() rss=0 anon=0 file=0
    for ((i = 0; i < ENC_REPS; i++)); do
        LOG="$DIR/encode-$p.log"
        measure "$BIN/hhtld" encode "$MODEL" -o "$DIR/$p.hhtld" --profile "$p" --threads 2
        walls+=("$WALL")
        ((MAXRSS > rss)) && rss=$MAXRSS
        ((ANON > anon)) && anon=$ANON
        ((FILE > file)) && file=$FILE
    done
    med="$(printf '%s\n' "${walls[@]}" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')"
    size="$(stat -c %s "$DIR/$p.hhtld")"
    emit "$(awk -v p="$p" -v s="$size" -v w="$med" -v n="$PARAMS" -v r="$rss" -v a="$anon" -v f="$file" \
        'BEGIN{printf "| %s | %.2f MB | %.2f s | %.2f M | %.0f MB | %.0f MB | %.0f MB |", p, s/1e6, w, n/w/1e6, r/1024, a/1024, f/1024}')"
done

step "decode peak RSS"
emit ""
emit "## Decode to safetensors (CLI, original dtypes)"
emit ""
emit "| file | wall | peak RSS | peak RssAnon | peak RssFile |"
emit "|---|---:|---:|---:|---:|"
for p in "${PROFILES[@]}"; do
    LOG="$DIR/decode-$p.log"
    measure "$BIN/hhtld" decode "$DIR/$p.hhtld" -o "$DIR/decoded-$p.safetensors"
    emit "$(awk -v p="$p" -v w="$WALL" -v r="$MAXRSS" -v a="$ANON" -v f="$FILE" \
        'BEGIN{printf "| %s.hhtld | %.2f s | %.0f MB | %.0f MB | %.0f MB |", p, w, r/1024, a/1024, f/1024}')"
    rm -f "$DIR/decoded-$p.safetensors"
done

step "hhtld vs safetensors (bench_compare, $REPS interleaved repetitions)"
emit ""
emit "## Read side: hhtld vs BF16 safetensors"
emit ""
"$EX/bench_compare" "$DIR" --reps "$REPS" | tee -a "$OUT"

# ---- Python package (python/, scripts/bench_python.py) ----------------------
step "Python package vs safetensors (bench_python.py)"
PY="$(scripts/venv.sh)/bin/python"
"$PY" -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
"$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
emit ""
emit "## Python read side: the hhtld package vs safetensors on the BF16 copy"
emit ""
"$PY" scripts/bench_python.py "$DIR/fidelity.hhtld" "$BF16" --reps "$(((REPS + 1) / 2))" | tee -a "$OUT"
# ---- end of the Python package block ----------------------------------------

step "encode scaling (bench_encode)"
emit ""
emit "## Encode scaling (synthetic, fidelity codec)"
emit ""
"$EX/bench_encode" --rows "$ROWS" --reps 3 --threads 2 | tee -a "$OUT"

step "pages touched (bench_probe pages)"
emit ""
emit "## Pages touched by open and one-row decode"
evict() { dd if="$1" iflag=nocache count=0 status=none; }
for mode in random default; do
    emit ""
    evict "$DIR/fidelity.hhtld"
    if [[ $mode == random ]]; then
        "$EX/bench_probe" pages "$DIR/fidelity.hhtld" random | tee -a "$OUT"
    else
        "$EX/bench_probe" pages "$DIR/fidelity.hhtld" | tee -a "$OUT"
    fi
done
emit ""
evict "$BF16"
"$EX/bench_probe" pages-st "$BF16" | tee -a "$OUT"

if [[ "${HHTLD_BENCH_PROFILE:-0}" == 1 ]]; then
    command -v valgrind >/dev/null || die "valgrind is required for HHTLD_BENCH_PROFILE=1"
    PROF="$DIR/prof"
    mkdir -p "$PROF"
    top() { callgrind_annotate --auto=no --inclusive="$2" "$1" 2>/dev/null | awk -v n="$3" '/^ *[0-9,]+ \(/ && c++ < n'; }
    step "callgrind: small encode (4096 x 384, fidelity codec, 1 thread)"
    valgrind --tool=callgrind --callgrind-out-file="$PROF/cg.encode.out" \
        "$EX/bench_encode" --rows 4096 --reps 1 --threads 1 >"$PROF/cg.encode.log" 2>&1
    step "callgrind: 100k random rows, whole-model decode, 1000 opens"
    valgrind --tool=callgrind --callgrind-out-file="$PROF/cg.rows.out" \
        "$EX/bench_probe" rows "$DIR/fidelity.hhtld" 100000 >"$PROF/cg.rows.log" 2>&1
    valgrind --tool=callgrind --callgrind-out-file="$PROF/cg.tensors.out" \
        "$EX/bench_probe" tensors "$DIR/fidelity.hhtld" 1 >"$PROF/cg.tensors.log" 2>&1
    valgrind --tool=callgrind --callgrind-out-file="$PROF/cg.open.out" \
        "$EX/bench_probe" open "$DIR/fidelity.hhtld" 1000 >"$PROF/cg.open.log" 2>&1
    for c in encode rows tensors open; do
        emit ""
        emit "## callgrind: $c"
        emit ""
        emit "self instructions, top 12; then inclusive, top 12 functions of the hhtld crates:"
        emit ""
        emit '```'
        top "$PROF/cg.$c.out" no 12 | tee -a "$OUT"
        emit ""
        callgrind_annotate --auto=no --inclusive=yes "$PROF/cg.$c.out" 2>/dev/null |
            awk '/^ *[0-9,]+ \(/ && /hhtld_(format|reader|writer)::/ && c++ < 12' | tee -a "$OUT"
        emit '```'
    done
    step "decode kernel: packed SIMD in the one-pass loops"
    emit ""
    emit "## Decode kernel instructions (objdump of bench_probe)"
    emit ""
    emit "$(objdump -d --no-show-raw-insn "$EX/bench_probe" |
        awk '/^[0-9a-f]+ <.*(decode_row|fused|stage8|stage4)/{f=1; next} /^[0-9a-f]+ </{f=0} f' |
        awk '$2 ~ /^(addps|mulps|punpcklwd|movups|addss|mulss|movss)$/ {n[$2]++} END{for (k in n) printf "%s %d; ", k, n[k]}')"
fi

# ---- candle loader (hhtld-eval's load_bench; owned by the candle work) ----
step "candle: time to a loaded BertModel, hhtld vs BF16 safetensors, warm and cold"
cargo build --release -p hhtld-eval --example load_bench
emit ""
emit "## candle: time to a loaded BertModel (load_bench)"
emit ""
"$EX/load_bench" "$MODEL" "$DIR/fidelity.hhtld" "${HHTLD_BENCH_LOAD_REPS:-9}" | tee -a "$OUT"
# ---- end candle loader ----

step "done: $OUT"
