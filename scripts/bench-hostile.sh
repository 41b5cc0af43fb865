#!/usr/bin/env bash
# Slow and hostile clients against the embedded default (`sentiq serve`, jobs left queued so
# event streams stay open): the p99 of other clients' submissions and the server's RSS, first
# alone, then while IDLE (2000) connections send nothing, STREAMS (500) event streams are held
# and SLOW (100) submissions send their body a byte a second.
# Usage: scripts/bench-hostile.sh   (needs oha: `cargo install oha --locked`, or OHA=path)
# Environment: RATE (other clients' submissions a second, default 1000), DURATION (default 10),
# IDLE, STREAMS, SLOW.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE="${RATE:-1000}"
DURATION="${DURATION:-10}"
IDLE="${IDLE:-2000}"
STREAMS="${STREAMS:-500}"
SLOW="${SLOW:-100}"
ulimit -n "$(ulimit -Hn)"  # 2,600 sockets on each side
export RUN_WORKER=false
# shellcheck source=scripts/embedded-serve.sh
source scripts/embedded-serve.sh
need_oha
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER/status"; }
submissions() {
  "$OHA" -z "${DURATION}s" -q "$RATE" -c 32 --latency-correction --no-tui --output-format json \
    -m POST -H 'Content-Type: application/json' \
    -d '{"text": "I loved the first half. The ending was a letdown, sadly."}' \
    "http://$ADDR/api/jobs" > "$WORK/oha.json"
  python3 -c "
import json; r = json.load(open('$WORK/oha.json')); p = r['latencyPercentiles']
print(f\"  submissions at $RATE req/s: status {r['statusCodeDistribution']}, p50 {p['p50'] * 1000:.1f} ms, p99 {p['p99'] * 1000:.1f} ms, max {r['summary']['slowest'] * 1000:.1f} ms\")"
}
echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ)"
JOB=$(curl -fs -H 'Content-Type: application/json' -d '{"text": "Followed by many."}' "http://$ADDR/api/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo
echo "== Alone"
echo "  serve RSS at rest: $(rss) MB"
submissions
echo "  serve RSS: $(rss) MB"

echo
echo "== With $IDLE idle connections, $STREAMS event streams, $SLOW bodies at 1 byte/s"
python3 scripts/hostile_clients.py "$ADDR" $((DURATION + 20)) "$IDLE" "$STREAMS" "$SLOW" "$JOB" > "$WORK/hostile.txt" &
HOSTILE=$!
sleep 5
echo "  serve RSS with them connected: $(rss) MB; its open sockets: $(ls -l /proc/$SERVER/fd | grep -c socket)"
submissions
echo "  serve RSS: $(rss) MB, peak $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER/status") MB"
wait "$HOSTILE"
echo "  what the hostile clients got:"
cat "$WORK/hostile.txt"
