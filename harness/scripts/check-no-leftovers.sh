#!/usr/bin/env bash
# Fails if any container labelled `debuglab` is still there after a test run.
# Containers of processes that ended are removed by their session's watcher a
# moment later at most, so this waits up to 30 s before it fails.
set -euo pipefail
deadline=$((SECONDS + 30))
while :; do
    left=$(docker ps -aq --filter label=debuglab)
    [ -z "$left" ] && { echo "no debuglab containers left"; exit 0; }
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "error: containers labelled debuglab were left behind:" >&2
        docker ps -a --filter label=debuglab >&2
        exit 1
    fi
    sleep 0.5
done
