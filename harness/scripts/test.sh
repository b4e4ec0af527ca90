#!/usr/bin/env bash
# `make test`: the whole workspace's tests, the same as `cargo test
# --workspace`, with the test binaries run side by side (JOBS at a time).
#
# cargo runs test binaries one after another; most of a scenario's test time
# is spent waiting on its servers and its simulated remote services, so
# independent binaries — each with its own containers and its own runs —
# share the machine well. Verdicts do not depend on the machine's speed, so
# a neighbour's load cannot change them. Output of a binary is shown when it
# fails (and its summary line always).
set -euo pipefail
cd "$(dirname "$0")/../.."

jobs=${JOBS:-3}
cargo=${CARGO:-cargo}
logs=$(mktemp -d "${TMPDIR:-/tmp}/debuglab-test.XXXXXX")
trap 'rm -rf "$logs"' EXIT

# Build everything first; the list of test executables comes from cargo itself.
"$cargo" test --workspace --no-run --message-format=json-render-diagnostics >"$logs/build.json"
# The longest binaries start first, so the slowest do not start last: by
# how long each took when it last passed, kept beside the build; binaries
# not timed yet go by kind (scenarios' suites, other integration tests, unit tests).
times="${CARGO_TARGET_DIR:-target}/debuglab-test-times.tsv"
python3 - "$logs/build.json" "$times" >"$logs/binaries" <<'EOF'
import json, os, sys
build, times = sys.argv[1:3]
last = {}
if os.path.exists(times):
    for line in open(times):
        name, _, seconds = line.rstrip("\n").partition("\t")
        try:
            last[name] = float(seconds)
        except ValueError:
            pass
binaries = []
for line in open(build):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("profile", {}).get("test") and message.get("executable"):
        target = message["target"]
        package = os.path.basename(os.path.dirname(message["manifest_path"]))
        name = f'{package}/{target["kind"][0]}/{target["name"]}'
        guess = 1000 if name.endswith("/test/suite") else 500 if "/test/" in name else 0
        binaries.append((-last.get(name, guess), f'{message["executable"]}\t{name}\t{message["manifest_path"]}'))
for _, line in sorted(binaries, key=lambda binary: binary[0]):
    print(line)
EOF

run_one() {
    local executable=$1 name=$2 manifest=$3 log started=$EPOCHREALTIME
    log="$logs/$(echo "$name" | tr '/' '_').log"
    # Tests run from their package's directory, as cargo runs them.
    if (cd "$(dirname "$manifest")" && "$executable" >"$log" 2>&1); then
        printf 'ok      %-48s %s\n' "$name" "$(grep -E '^test result:' "$log" | tail -n 1 | sed 's/^test result: //')"
        python3 -c 'import sys; print(f"{sys.argv[1]}\t{float(sys.argv[3]) - float(sys.argv[2]):.1f}")' \
            "$name" "$started" "$EPOCHREALTIME" >"$log.time"
    else
        printf 'FAILED  %s\n' "$name"
        sed 's/^/    /' "$log"
        # Repeated in the summary at the end, where a log's tail shows it.
        { printf '%s\n' "$name"
          grep -E '^test .* FAILED$' "$log" | sed 's/^test /    /; s/ \.\.\. FAILED$//'
          grep -A1 -E "^thread '.*'( \([0-9]+\))? panicked at " "$log" | grep -v -E '^(thread |--$)' | sed 's/^/      /'
        } >"$log.failed"
        return 1
    fi
}
export -f run_one
export logs

started=$SECONDS
status=0
tr '\t\n' '\0\0' <"$logs/binaries" | xargs -0 -n 3 -P "$jobs" bash -c 'run_one "$@"' _ || status=1
"$cargo" test --workspace --doc -q >"$logs/doc.log" 2>&1 || { cat "$logs/doc.log"; status=1; }
echo "test binaries: $(wc -l <"$logs/binaries"), $jobs at a time, $((SECONDS - started)) s"
if compgen -G "$logs/*.time" >/dev/null; then
    # This run's times first; a binary that failed keeps its last time.
    { cat "$logs"/*.time; if [ -f "$times" ]; then cat "$times"; fi; } \
        | awk -F'\t' '!seen[$1]++' >"$logs/times" && cp "$logs/times" "$times"
fi
if compgen -G "$logs/*.failed" >/dev/null; then
    echo "failed (binary, its failing tests, their panic messages):"
    cat "$logs"/*.failed | sed 's/^/  /'
fi
exit $status
