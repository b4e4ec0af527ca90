#!/usr/bin/env bash
# `make pictures`: the book's pictures. For each scenario (or those named as
# arguments), `debuglab compare` runs buggy and fixed with one seed and
# writes the comparison page; headless Chromium screenshots the whole page
# into docs/src/img/<id>-compare.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'pictures: %s\n' "$*" >&2; }
browser=${DEBUGLAB_CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$browser" ] || { say "error: no Chromium found: install Debian's chromium package, or set DEBUGLAB_CHROMIUM"; exit 1; }

cargo=${CARGO:-cargo}
"$cargo" build -q -p debuglab
debuglab="${CARGO_TARGET_DIR:-target}/debug/debuglab"
pages=$(pwd)/.debuglab/reports/book
images=docs/src/img
scratch=$(mktemp -d "${TMPDIR:-/tmp}/debuglab-pictures.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$pages" "$images"

shoot() {
    "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
        --force-device-scale-factor=1 --no-first-run --user-data-dir="$scratch/profile" "$@" 2>/dev/null
}

if [ "$#" -gt 0 ]; then
    ids="$*"
else
    ids=$("$debuglab" list --format json | python3 -c 'import json, sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
fi
for id in $ids; do
    page="$pages/$id-compare.html"
    say "$id: buggy and fixed..."
    "$debuglab" compare "$id" --seed 7 --html "$page" >/dev/null
    # The page's height, as the browser lays it out at this width.
    sed 's|<head>|<head><script>addEventListener("load", () => { document.title = "height:" + document.documentElement.scrollHeight; });</script>|' \
        "$page" >"$scratch/measure.html"
    height=$(shoot --window-size=1400,900 --dump-dom --virtual-time-budget=3000 "file://$scratch/measure.html" \
        | sed -n 's|.*<title>height:\([0-9]*\)</title>.*|\1|p')
    shoot --window-size="1400,${height:-2600}" --screenshot="$images/$id-compare.png" "file://$page" >/dev/null
    say "$id: $images/$id-compare.png (1400x${height:-2600})"
done
