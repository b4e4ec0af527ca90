#!/usr/bin/env bash
# Makes sure the service images a test run needs are on this machine:
# the official images (or the DEBUGLAB_*_IMAGE overrides) if they are present
# or can be pulled, otherwise debuglab's offline images built from Debian
# packages (harness/images/build.sh). The harness makes the same choice at
# run time; doing it here first keeps a slow build out of the first test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'images: %s\n' "$*" >&2; }

docker info >/dev/null 2>&1 || {
    printf 'images: error: Docker is not running; start the Docker daemon and try again.\n' >&2
    exit 1
}

available() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    say "pulling $1..."
    timeout 180 docker pull -q "$1" >/dev/null 2>&1
}

postgres=${DEBUGLAB_POSTGRES_IMAGE:-postgres:16-alpine}
redis=${DEBUGLAB_REDIS_IMAGE:-redis:7-alpine}
if [ -n "${DEBUGLAB_POSTGRES_URL:-}" ] || available "$postgres"; then pg_ok=1; else pg_ok=0; fi
if [ -n "${DEBUGLAB_REDIS_URL:-}" ] || available "$redis"; then redis_ok=1; else redis_ok=0; fi
if [ "$pg_ok" = 1 ] && [ "$redis_ok" = 1 ]; then
    exit 0
fi
say "no image registry reachable; using debuglab's offline images"
# They are built with debootstrap: install it when this machine lets us
# (root, or sudo without a password), otherwise say the one command to run.
if ! command -v debootstrap >/dev/null 2>&1 \
    && ! docker image inspect debuglab/debian-base:bookworm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else sudo=none; fi
    if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
        say "installing debootstrap (apt-get)..."
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq debootstrap >/dev/null \
            || { printf 'images: error: installing debootstrap failed; run: sudo apt-get install debootstrap\n' >&2; exit 1; }
    else
        printf 'images: error: building the offline images needs debootstrap; run: sudo apt-get install debootstrap\n' >&2
        exit 1
    fi
fi
exec bash "$here/../images/build.sh"
