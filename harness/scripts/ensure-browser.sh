#!/usr/bin/env bash
# Makes sure the browser test has a Chromium: Debian's `chromium` package,
# installed when this machine lets us (root, or sudo without a password).
# Never fails: without a Chromium the browser test says it was skipped.
set -uo pipefail
say() { printf 'browser: %s\n' "$*" >&2; }

if [ -n "${DEBUGLAB_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 \
    || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else sudo=none; fi
if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium for the browser test (apt-get)..."
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null 2>&1; then
        exit 0
    fi
fi
say "no Chromium, and it could not be installed here: the browser test will be skipped (sudo apt-get install chromium)"
exit 0
