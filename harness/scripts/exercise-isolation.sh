#!/usr/bin/env bash
# Proves, on a scratch copy of the repository, that a learner's exercise
# never breaks anything but its own run: with the exercise untouched, fixed
# (the reference copied over it) and syntax-broken,
#   - `cargo test --workspace` still builds (and, in the broken case, passes),
#   - `debuglab list`, `hint` and `progress` still work,
#   - `debuglab check` says what it should (not fixed / fixed / does not compile),
#   - the cargo check of the exercise fails, passes, or does not compile.
# The copy gets its own target directory (seeded with a copy of this one's,
# so only the workspace's crates are rebuilt): two checkouts never share one.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
id=${1:-pool-exhaustion}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/debuglab-isolation.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

say() { printf 'isolation: %s\n' "$*" >&2; }
fail() { printf 'isolation: FAILED: %s\n' "$*" >&2; exit 1; }

say "copying the repository to $scratch"
# The working tree as it is: tracked and new files, less those deleted.
(cd "$here" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do if [ -e "$file" ]; then printf '%s\0' "$file"; fi; done \
    | xargs -0 cp --parents -t "$scratch")
if [ -d "${CARGO_TARGET_DIR:-$here/target}" ]; then
    say "seeding its target directory from this one's"
    cp -a --reflink=auto "${CARGO_TARGET_DIR:-$here/target}" "$scratch/target"
fi
export CARGO_TARGET_DIR="$scratch/target"
export DEBUGLAB_STATE_DIR="$scratch/.state"
unset DEBUGLAB_ROOT DEBUGLAB_EXERCISE_CODE
cd "$scratch"
exercise="scenarios/$id/src/exercise.rs"

debuglab() { cargo run -q -p debuglab -- "$@"; }

# check_case NAME EXPECTED_CHECK_EXIT CHECK_NEEDLE CARGO_CHECK(pass|fail)
check_case() {
    local name=$1 want_exit=$2 needle=$3 cargo_check=$4
    say "[$name] cargo test --workspace --no-run"
    cargo test -q --workspace --no-run >/dev/null 2>"$scratch/build.log" \
        || { tail -n 30 "$scratch/build.log" >&2; fail "[$name] the workspace does not build"; }
    for command in list "hint $id" progress; do
        # shellcheck disable=SC2086
        debuglab $command >/dev/null || fail "[$name] debuglab $command failed"
    done
    say "[$name] debuglab check $id"
    set +e
    debuglab check "$id" >"$scratch/check.out" 2>"$scratch/check.err"
    local got=$?
    set -e
    [ "$got" = "$want_exit" ] || { cat "$scratch/check.out" "$scratch/check.err" >&2; fail "[$name] check exited $got, expected $want_exit"; }
    grep -q -- "$needle" "$scratch/check.out" "$scratch/check.err" \
        || { cat "$scratch/check.out" "$scratch/check.err" >&2; fail "[$name] check did not say '$needle'"; }
    say "[$name] cargo test -p $id --features exercise --test exercise (expect: $cargo_check)"
    if cargo test -q -p "$id" --features exercise --test exercise >"$scratch/cargo.out" 2>&1; then
        [ "$cargo_check" = pass ] || fail "[$name] the cargo check passed"
    else
        [ "$cargo_check" = fail ] || { tail -n 30 "$scratch/cargo.out" >&2; fail "[$name] the cargo check failed"; }
    fi
    say "[$name] ok"
}

check_case untouched 1 "not fixed yet" fail
cp "scenarios/$id/src/fixed.rs" "$exercise"
check_case fixed 0 "fixed." pass
printf '\npub fn half_typed( {\n' >>"$exercise"
check_case broken 1 "does not compile yet" fail

say "[broken] the whole suite (make test's runner), with the exercise broken"
bash harness/scripts/test.sh >"$scratch/test.out" 2>&1 \
    || { tail -n 60 "$scratch/test.out" >&2; fail "[broken] the suite failed"; }
say "every case left the workspace green"
