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
python3 - "$logs/build.json" >"$logs/binaries" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("profile", {}).get("test") and message.get("executable"):
        import os
        target = message["target"]
        package = os.path.basename(os.path.dirname(message["manifest_path"]))
        print(f'{message["executable"]}\t{package}/{target["kind"][0]}/{target["name"]}\t{message["manifest_path"]}')
EOF

run_one() {
    local executable=$1 name=$2 manifest=$3 log
    log="$logs/$(echo "$name" | tr '/' '_').log"
    # Tests run from their package's directory, as cargo runs them.
    if (cd "$(dirname "$manifest")" && "$executable" >"$log" 2>&1); then
        printf 'ok      %-48s %s\n' "$name" "$(grep -E '^test result:' "$log" | tail -n 1 | sed 's/^test result: //')"
    else
        printf 'FAILED  %s\n' "$name"
        sed 's/^/    /' "$log"
        # Repeated in the summary at the end, where a log's tail shows it.
        { printf '%s\n' "$name"
          grep -E '^test .* FAILED$' "$log" | sed 's/^test /    /; s/ \.\.\. FAILED$//'
          grep -A1 -E "^thread '.*' panicked at " "$log" | grep -v -E '^(thread |--$)' | sed 's/^/      /'
        } >"$log.failed"
        return 1
    fi
}
export -f run_one
export logs

started=$SECONDS
status=0
# Longest binaries first, so the slowest do not start last: the scenarios'
# suites, then the other integration tests, then unit tests.
awk -F'\t' '{ rank = ($2 ~ /\/test\/suite$/) ? 0 : ($2 ~ /\/test\//) ? 1 : 2; print rank "\t" $0 }' "$logs/binaries" \
    | sort -s -t$'\t' -k1,1 | cut -f2- \
    | tr '\t\n' '\0\0' | xargs -0 -n 3 -P "$jobs" bash -c 'run_one "$@"' _ || status=1
"$cargo" test --workspace --doc -q >"$logs/doc.log" 2>&1 || { cat "$logs/doc.log"; status=1; }
echo "test binaries: $(wc -l <"$logs/binaries"), $jobs at a time, $((SECONDS - started)) s"
if compgen -G "$logs/*.failed" >/dev/null; then
    echo "failed (binary, its failing tests, their panic messages):"
    cat "$logs"/*.failed | sed 's/^/  /'
fi
exit $status
