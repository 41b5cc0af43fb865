#!/usr/bin/env bash
# Overload of `POST /api/jobs`, on the embedded default (`sentiq serve`, SQLite, its worker
# in-process) or, with TOPOLOGY=production, on `sentiq serve` + `sentiq worker` (PostgreSQL +
# Redis, separate processes):
#   1. the rate it sustains: POST /api/jobs closed loop, 16 connections, DURATION seconds;
#   2. FACTOR (3) times that rate offered, open loop (oha sends on schedule whatever the answers
#      take, and counts a late send in the latency), 256 connections: every answer's status,
#      the p99 of the admitted (202) ones, and of the refused ones;
#   3. after the load: every job answered 202 exists once and succeeds, none ran twice.
# Usage: scripts/bench-overload.sh   (needs oha: `cargo install oha --locked`, or OHA=path)
# Environment: DURATION (default 10), FACTOR (default 3), RATE (skip part 1: offer this),
# TOPOLOGY (embedded, or production: PG and REDIS_URL as in bench-production.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION="${DURATION:-10}"
FACTOR="${FACTOR:-3}"
TOPOLOGY="${TOPOLOGY:-embedded}"
if [[ "$TOPOLOGY" == production ]]; then
  # shellcheck source=scripts/lib.sh
  source scripts/lib.sh
  need_oha
  start_redis
  export REDIS_NAMESPACE="overload$$" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0
  scratch_postgres "sentiq_overload_$$"
  start_production
  SERVER=$SPID
  sql() { psql -qAt "$DATABASE_URL" -c "$1"; }
  printf_sql=format
else
  # shellcheck source=scripts/embedded-serve.sh
  source scripts/embedded-serve.sh
  need_oha
  DB="$WORK/bench.db"
  sql() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1], timeout=30).execute(sys.argv[2]).fetchone()[0])" "$DB" "$1"; }
  printf_sql=printf
fi
BODY='{"text": "I loved the first half. The ending was a letdown, sadly."}'
echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ); topology $TOPOLOGY"

if [[ -z "${RATE:-}" ]]; then
  echo
  echo "== 1. Sustained: POST /api/jobs closed loop, 16 connections, ${DURATION}s"
  "$OHA" -z "${DURATION}s" -c 16 --no-tui --output-format json -m POST \
    -H 'Content-Type: application/json' -d "$BODY" "http://$ADDR/api/jobs" > "$WORK/closed.json"
  SUSTAINED=$(python3 -c "
import json; r = json.load(open('$WORK/closed.json'))
print(round(sum(r['statusCodeDistribution'].values()) / $DURATION))")
  echo "sustained: $SUSTAINED req/s (status $(python3 -c "import json; print(json.load(open('$WORK/closed.json'))['statusCodeDistribution'])"))"
  wait_drained
  RATE=$((SUSTAINED * FACTOR))
fi
BEFORE=$(sql "SELECT count(*) FROM sentiq_jobs")

echo
echo "== 2. Offered $RATE req/s (open loop), 256 connections, ${DURATION}s"
"$OHA" -z "${DURATION}s" -q "$RATE" -c 256 --latency-correction --no-tui --output-format json \
  --db-url "$WORK/oha.db" -m POST -H 'Content-Type: application/json' -d "$BODY" \
  "http://$ADDR/api/jobs" > "$WORK/open.json"
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
python3 - "$WORK/open.json" "$WORK/oha.db" "$RATE" "$DURATION" <<'PY'
import json, sqlite3, sys
r = json.load(open(sys.argv[1])); rate, duration = float(sys.argv[3]), float(sys.argv[4])
codes = r["statusCodeDistribution"]; answered = sum(codes.values())
print(f"offered {rate:,.0f} req/s: {answered:,} answered ({answered / duration:,.0f} req/s), "
      f"status {dict(sorted(codes.items()))}, errors {r.get('errorDistribution') or 'none'}")
rows = sqlite3.connect(sys.argv[2]).execute(
    "SELECT status, (end - start_latency_correction) * 1000 FROM oha").fetchall()
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")
for label, pick in [("admitted (202)", lambda s: s == 202), ("refused (503/429)", lambda s: s in (503, 429)),
                    ("all", lambda s: True)]:
    xs = [ms for s, ms in rows if pick(s)]
    print(f"{label}: {len(xs):,} answers, p50 {pct(xs, .5):.1f} ms, p99 {pct(xs, .99):.1f} ms, max {max(xs, default=float('nan')):.1f} ms")
retry = r.get("retryAfter")
open(sys.argv[2] + ".accepted", "w").write(str(codes.get("202", 0)))
PY
echo "serve peak RSS: $((RSS_KB / 1024)) MB"
[[ "$TOPOLOGY" != production ]] || echo "worker peak RSS: $(($(awk '/VmHWM/ {print $2}' "/proc/$WPID/status") / 1024)) MB"

echo
echo "== 3. After the load"
wait_drained
ACCEPTED=$(cat "$WORK/oha.db.accepted")
# A request oha gave up on at its deadline may still have been written: rows >= 202s.
sql "SELECT $printf_sql('%s answered 202, %s job rows written in part 2; all jobs: %s succeeded, %s other; %s ran more than once',
       $ACCEPTED, count(*) - $BEFORE, sum(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END),
       sum(CASE WHEN status <> 'succeeded' THEN 1 ELSE 0 END),
       (SELECT count(*) FROM (SELECT job_id FROM job_transitions WHERE to_status = 'running' GROUP BY job_id HAVING count(*) > 1) t))
     FROM sentiq_jobs"
