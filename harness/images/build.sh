#!/usr/bin/env bash
# Builds debuglab's offline service images from Debian packages, for machines
# (and workshop rooms) that cannot reach an image registry:
#
#   debuglab/debian-base:bookworm  a minbase rootfs with postgresql-15 and redis-server
#   debuglab/postgres:15-bookworm  PostgreSQL 15 with the official image's interface
#   debuglab/redis:7-bookworm      Redis 7
#
# The Debian mirror is read at run time from the machine's own apt sources (or
# DEBUGLAB_DEBIAN_MIRROR); no package host is written into the repository.
# Usage: build.sh [--force]   (without --force, images that exist are kept)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=debuglab/debian-base:bookworm
postgres=debuglab/postgres:15-bookworm
redis=debuglab/redis:7-bookworm
force=0
[ "${1:-}" = "--force" ] && force=1

say() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "Docker is not running; start the Docker daemon and run 'make images' again."

if [ "$force" = 0 ] && have_image "$postgres" && have_image "$redis"; then
    say "$postgres and $redis are already built (make images FORCE=1 rebuilds them)."
    exit 0
fi

debian_mirror() {
    if [ -n "${DEBUGLAB_DEBIAN_MIRROR:-}" ]; then echo "$DEBUGLAB_DEBIAN_MIRROR"; return; fi
    local sources=/etc/apt/sources.list.d/debian.sources
    if [ -r "$sources" ]; then
        # The first URIs: line is the main archive (security comes later).
        awk '/^URIs:/ { print $2; exit }' "$sources"
        return
    fi
    if [ -r /etc/apt/sources.list ]; then
        awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list
    fi
}

if [ "$force" = 1 ] || ! have_image "$base"; then
    command -v debootstrap >/dev/null 2>&1 \
        || die "debootstrap is not installed; install it (sudo apt-get install debootstrap) and run 'make images' again."
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set DEBUGLAB_DEBIAN_MIRROR to a Debian mirror URL."
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/debuglab-rootfs.XXXXXX")
    trap '$sudo rm -rf "$rootfs"' EXIT
    say "debootstrap bookworm with postgresql-15 and redis-server (about 40 s)..."
    $sudo debootstrap --variant=minbase --include=postgresql-15,redis-server \
        bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (full log: $rootfs.log)."; }
    rm -f "$rootfs.log"
    # apt lists and caches are not needed at run time; they only make the image bigger.
    $sudo rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    say "importing the rootfs as $base..."
    $sudo tar -C "$rootfs" -c . | docker import -c 'LABEL debuglab.image=base' - "$base" >/dev/null
fi

# The legacy builder needs no BuildKit component (absent on some Debian
# installs); its deprecation notice is noise, so output is shown only on failure.
build() {
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/debuglab-build.XXXXXX")
    DOCKER_BUILDKIT=0 docker build -t "$1" "$here/$2" >"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; rm -f "$log"; die "building $1 failed."; }
    rm -f "$log"
}
say "building $postgres..."
build "$postgres" postgres
say "building $redis..."
build "$redis" redis
say "done: $postgres, $redis"
