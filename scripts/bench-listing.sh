#!/usr/bin/env bash
# GET /api/jobs of one API key, a page of LIMIT (100) final jobs that each have a webhook, on
# the embedded default: oha closed loop, 8 connections, DURATION seconds. With B_BIN set, the
# same database is served by $BIN and $B_BIN alternately, ROUNDS (2) times each, side by side.
# Usage: scripts/bench-listing.sh   (needs oha; NO_BUILD=1 BIN=path B_BIN=path compares two)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LIMIT="${LIMIT:-100}"; DURATION="${DURATION:-5}"; ROUNDS="${ROUNDS:-2}"
export WEBHOOK_SECRET="whsec_$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
export WEBHOOK_ALLOW_PRIVATE=true WEBHOOK_RETRY_SCHEDULE=1h
# shellcheck source=scripts/embedded-serve.sh
source scripts/embedded-serve.sh
need_oha
KEY=$(DATABASE_URL="sqlite://$WORK/bench.db" "$BIN" keys create lister --rate-per-minute 0 | grep -oE 'sq_[A-Za-z0-9_-]{43}' | head -1)
for i in $(seq "$LIMIT"); do
  curl -fs -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"text\": \"Job $i was fine.\", \"webhook_url\": \"http://127.0.0.1:9/hook\"}" "http://$ADDR/api/jobs"
done
for _ in $(seq 100); do
  open=$(curl -fs -H "Authorization: Bearer $KEY" "http://$ADDR/api/jobs?status=queued,running" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
  [[ "$open" == 0 ]] && break; sleep 0.2
done
echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ); $LIMIT final jobs with a webhook"
measure() {
  "$OHA" -z "${DURATION}s" -c 8 --no-tui --output-format json -H "Authorization: Bearer $KEY" \
    "http://$ADDR/api/jobs?limit=$LIMIT" | python3 -c "
import json, sys; r = json.load(sys.stdin); p = r['latencyPercentiles']
print(f\"  $1: {r['summary']['requestsPerSec']:,.0f} req/s, p50 {p['p50'] * 1000:.2f} ms, p99 {p['p99'] * 1000:.2f} ms, status {r['statusCodeDistribution']}\")"
}
A_BIN=$BIN
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    [[ "$side" == B && -z "${B_BIN:-}" ]] && continue
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    if [[ "$side" == A ]]; then BIN=$A_BIN; else BIN=$B_BIN; fi
    RUN_WORKER=false serve_embedded
    measure "round $round, $side ($BIN)"
  done
done
