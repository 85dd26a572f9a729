#!/usr/bin/env bash
# End-to-end quality of every profile on all-MiniLM-L6-v2 (issue 9's targets):
# encodes the model with each profile, then measures the sentence embeddings
# against the original model with the independent forward pass
# scripts/reference_eval.py on data/text/eval.txt (never used to choose the
# codecs), plus round-to-nearest anchors (int8 per row, int5 g32, int4 g32)
# of the same original. Exits 1 when a profile misses its target.
#
# Every profile is encoded calibrated: input statistics of every linear
# layer measured on data/text/calib.txt (disjoint from eval.txt) by the
# numpy forward pass scripts/calibration_stats.py, given to
# `hhtld encode --calibration-stats`. `hhtl` is encoded and reported, with
# no target. Encode wall time and peak RSS (/usr/bin/time -v) are printed.
#
#   HHTLD_BIN     the hhtld binary (default: target/release/hhtld, built here)
#   HHTLD_PYTHON  Python of scripts/venv.sh (default: made here)
#   QUALITY_OUT   directory for the encoded files and quality.json (default: a temp dir)
#   --no-anchors  skip the anchors
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=1
[[ "${1:-}" == "--no-anchors" ]] && anchors=0

MODEL=$(scripts/fetch_model.sh)
DIR=$(dirname "$MODEL")
PY="${HHTLD_PYTHON:-$(scripts/venv.sh)/bin/python}"
if [[ -z "${HHTLD_BIN:-}" ]]; then
    cargo build --release -q -p hhtld
    HHTLD_BIN="$PWD/target/release/hhtld"
fi
export HHTLD_BIN OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# fetch_model.sh puts tokenizer.json and config.json beside the model.

OUT="${QUALITY_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
# Encode the weights alone, as a BF16 copy of them would be: the model's
# side files (tokenizer, config; about 0.47 MB that encode stores when they
# sit beside the input) are not weights, so the input is linked from a
# folder that holds only model.safetensors.
WEIGHTS_ONLY="$OUT/weights-only"
mkdir -p "$WEIGHTS_ONLY"
ln -sf "$MODEL" "$WEIGHTS_ONLY/model.safetensors"
TEXT=data/text/eval.txt
CAL="$OUT/calibration.safetensors"
"$PY" scripts/calibration_stats.py "$MODEL" -o "$CAL" --tokenizer "$DIR/tokenizer.json" \
    --text data/text/calib.txt

# profile  min file ratio  min cos mean  min cos p1 (issue 9's targets; the
# fidelity moonshot, 3.5:1, is reported); "-": no target
targets="near-lossless 1.95 0.9995 0.999
fidelity 3.2 0.99 0.98
compact 4.5 0.95 0.92
hhtl - - -"

fail=0
printf '%-14s %8s %8s %9s %9s %9s %7s %9s %8s %8s\n' weights ratio rho_min cos_mean cos_p1 cos_min top10 spearman encode_s peak_MB
while read -r profile min_ratio min_cos min_p1; do
    f="$OUT/$profile.hhtld"
    /usr/bin/time -v -o "$OUT/$profile.time" "$HHTLD_BIN" encode "$WEIGHTS_ONLY/model.safetensors" \
        -o "$f" --profile "$profile" --calibration-stats "$CAL" --json > "$OUT/$profile.encode.json"
    "$PY" scripts/reference_eval.py "$MODEL" "$f" --tokenizer "$DIR/tokenizer.json" \
        --text "$TEXT" --json > "$OUT/$profile.eval.json"
    "$PY" - "$profile" "$OUT/$profile.encode.json" "$OUT/$profile.eval.json" "$OUT/$profile.time" \
        "$min_ratio" "$min_cos" "$min_p1" <<'PY' || fail=1
import json, re, sys
profile, enc, ev, tm = sys.argv[1:5]
e = json.load(open(enc)); r = json.load(open(ev)); t = open(tm).read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
secs = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
ratio = e["file_ratio"]
rho = min((t["rho_median"] for t in e["tensors"] if t.get("rho_median") is not None), default=float("nan"))
print(f"{profile:14} {ratio:7.2f}: {rho:8.4f} {r['cos_mean']:9.5f} {r['cos_p1']:9.5f} "
      f"{r['cos_min']:9.5f} {r['top10_overlap']:7.3f} {r['spearman']:9.5f} {secs:8.1f} {rss:8.0f}")
if sys.argv[5] == "-":
    sys.exit(0)
min_ratio, min_cos, min_p1 = map(float, sys.argv[5:8])
miss = []
if ratio < min_ratio: miss.append(f"file ratio {ratio:.3f} < {min_ratio}")
if r["cos_mean"] < min_cos: miss.append(f"cos_mean {r['cos_mean']:.5f} < {min_cos}")
if r["cos_p1"] < min_p1: miss.append(f"cos_p1 {r['cos_p1']:.5f} < {min_p1}")
if profile == "fidelity" and ratio < 3.5:
    print(f"  fidelity: {ratio:.2f}:1, below the 3.5:1 moonshot")
if miss:
    print(f"  {profile} MISSES its target: " + "; ".join(miss))
    sys.exit(1)
PY
done <<< "$targets"

if [[ $anchors == 1 ]]; then
    "$PY" scripts/reference_eval.py "$MODEL" --anchors --tokenizer "$DIR/tokenizer.json" \
        --text "$TEXT"
fi
echo "files and JSON in $OUT" >&2
exit $fail
