#!/usr/bin/env bash
# Fails if building one package alone would turn on other features of a
# shared dependency than building the CLI does: cargo would then rebuild
# that dependency and everything above it (minutes, on a learner's first
# `debuglab check`). Fix it by pinning the feature in harness/lib/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo=${CARGO:-cargo}

features() { "$cargo" tree "$@" -f '{p} {f}' --prefix none 2>/dev/null | sed 's/ (\*)//' | grep -v '(/' | sort -u; }

reference=$(features -p debuglab -e normal,build)
# Of `lines`, those naming a package the CLI builds too, with other features:
# a package only tests use cannot make the CLI's dependencies rebuild.
shared_with_reference() {
    awk 'NR == FNR { built[$1 " " $2] = 1; next } ($1 " " $2) in built' <(echo "$reference") -
}
status=0
for manifest in scenarios/*/Cargo.toml; do
    id=$(basename "$(dirname "$manifest")")
    extra=$(comm -23 <(features -p "$id" -e normal,build,dev --features exercise) <(echo "$reference") | shared_with_reference)
    if [ -n "$extra" ]; then
        echo "features: building $id alone differs from building debuglab in:" >&2
        echo "$extra" | sed 's/^/  /' >&2
        status=1
    fi
done
extra=$(comm -23 <(features --workspace -e normal,build,dev) <(echo "$reference") | shared_with_reference)
if [ -n "$extra" ]; then
    echo "features: cargo test --workspace differs from building debuglab in:" >&2
    echo "$extra" | sed 's/^/  /' >&2
    status=1
fi
[ "$status" = 0 ] && echo "features: one feature set for every build"
exit $status
