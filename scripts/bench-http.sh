#!/usr/bin/env bash
# HTTP figures of the embedded product (SQLite + in-process worker), one sentiq process:
#   1. POST /api/jobs throughput and latency, 16 concurrent clients (wrk), while the worker is
#      busy with a large bulk job submitted just before;
#   2. time to accept a 50 MB text upload (curl, 5 runs, median);
#   3. submit-to-succeeded time of one-sentence jobs (scripts/bench_http_latency.py).
# Usage: scripts/bench-http.sh        (needs wrk: apt-get install -y wrk)
# Environment: DURATION (wrk seconds, default 10), JOBS (latency jobs, default 200), POST_ONLY=1
# (part 1 only), BIN and NO_BUILD=1 (measure a given binary); the server inherits the rest
# (e.g. RUN_WORKER=false, WORKER_QUEUES=quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-10}"
JOBS="${JOBS:-200}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }

# shellcheck source=scripts/embedded-serve.sh
source scripts/embedded-serve.sh

echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ)"

# Inputs: a 50 MB document built from the review ground truth, and a 20 MB one to keep the
# worker busy during the POST load.
python3 - "$WORK" <<'PY'
import sys
lines = [l.split("\t", 2)[2].rstrip("\r") for l in
         open("tests/data/vader/amazonReviewSnippets_GroundTruth.txt", encoding="utf-8").read().split("\n") if l.strip()]
block = "".join(" ".join(lines[i:i + 5]) + ".\n" for i in range(0, len(lines), 5)).encode()
for name, size in (("50mb.txt", 50_000_000), ("20mb.txt", 20_000_000)):
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        n = 0
        while n < size:
            f.write(block); n += len(block)
PY

echo
echo "== 1. POST /api/jobs, 16 clients, ${DURATION}s, worker busy with a 20 MB bulk job"
curl -fs -o /dev/null -H 'Content-Type: text/plain' --data-binary @"$WORK/20mb.txt" "http://$ADDR/api/jobs"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"text": "I loved the first half. The ending was a letdown, sadly."}'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://$ADDR/api/jobs" | tee "$WORK/wrk.txt"
grep -E 'Requests/sec|^ +50%|^ +99%|Non-2xx' "$WORK/wrk.txt" || true
[[ -z "${POST_ONLY:-}" ]] || exit 0

echo
echo "== 2. Accepting a 50 MB text upload (5 runs)"
for i in 1 2 3 4 5; do
  curl -fs -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: text/plain' \
    --data-binary @"$WORK/50mb.txt" "http://$ADDR/api/jobs"
done | tee "$WORK/upload.txt"
sort -k2 -n "$WORK/upload.txt" | awk 'NR==3 {printf "median accept time: %.3f s (status %s)\n", $2, $1}'

echo
echo "== 3. Submit-to-succeeded, one-sentence jobs (queue drained first)"
for _ in $(seq 600); do
  busy=$(curl -fs "http://$ADDR/readyz" >/dev/null && python3 - "$WORK/bench.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("select count(*) from sentiq_jobs where status in ('queued','running')").fetchone()[0])
PY
)
  [[ "$busy" == "0" ]] && break
  sleep 1
done
python3 scripts/bench_http_latency.py "$ADDR" "$JOBS"
