#!/usr/bin/env bash
# Waiting instead of polling, on the embedded default (SQLite + in-process worker), one sentiq
# process:
#   1. one-sentence round trip, POST with `Prefer: wait=5` against submit-then-poll (every
#      100 ms, back to back, and after each Retry-After), interleaved job by job;
#   2. LONG_POLLS (default 1000) long-polls at once (`Prefer: wait=WAIT` on unchanged jobs),
#      with the server's RSS before, during and after, and its CPU while they wait;
#   3. the same on a web-only server (RUN_WORKER=false, as beside a separate `sentiq worker`),
#      whose waits cannot be signalled and re-read the row every 250 ms.
# Usage: scripts/bench-wait.sh
# Environment: JOBS (round trips per way, default 200), LONG_POLLS, WAIT (seconds, default 10),
# BIN and NO_BUILD=1 (measure a given binary); the server inherits the rest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS="${JOBS:-200}"
LONG_POLLS="${LONG_POLLS:-1000}"
WAIT="${WAIT:-10}"
ulimit -n 8192

# shellcheck source=scripts/embedded-serve.sh
source scripts/embedded-serve.sh

echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ)"
echo
echo "== 1. One-sentence round trip: Prefer: wait=5 against submit-then-poll ($JOBS jobs each)"
python3 scripts/bench_wait.py roundtrip "$ADDR" "$JOBS"
echo
echo "== 2. $LONG_POLLS long-polls at once, Prefer: wait=$WAIT"
python3 scripts/bench_wait.py longpoll "$ADDR" "$SERVER" "$LONG_POLLS" "$WAIT"
echo
echo "== 3. $LONG_POLLS long-polls at once, Prefer: wait=$WAIT, web only (RUN_WORKER=false)"
kill "$SERVER"; wait "$SERVER" || true
RUN_WORKER=false serve_embedded
python3 scripts/bench_wait.py longpoll "$ADDR" "$SERVER" "$LONG_POLLS" "$WAIT"
grep -E 'WARN|ERROR' "$WORK/server.log" | head -5 || true
