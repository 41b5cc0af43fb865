#!/usr/bin/env bash
# Figures of the production topology: PostgreSQL + Redis, one `sentiq serve` and one
# `sentiq worker` as separate processes, load generator on the same machine. In one run:
#   0. pgbench: single-row INSERT transactions per second, 16 clients (the physical bound of a
#      submission, which is one committed row);
#   1. POST /api/jobs throughput and latency, 16 connections (wrk), the worker running the jobs;
#   1b. POST /api/jobs at a fixed offered rate (open loop: oha sends RATE requests a second
#      whatever the answers take, and counts a late send in the latency), the worker running them;
#   2. end to end: every job submitted in 1. from its row's created_at to the last finished_at;
#   3. pick-up: commit to `running` of one-sentence jobs submitted one at a time to an idle
#      worker (started_at - created_at of each row).
# Usage: scripts/bench-production.sh     (needs wrk, oha and pgbench; DURATION=10, PICKUP_JOBS=300,
#        RATE=5000; oha: `cargo install oha --locked`, or OHA=path; OHA_DB=file.db keeps every
#        request's times of 1b there and prints the p99 of each 250 ms)
# Environment: PG (server URL without database, default postgres://postgres@127.0.0.1:5432),
# REDIS_URL (default: a throwaway redis-server on a free port), CONCURRENCY (worker, default 2),
# KEYED=1 (every request of parts 1, 1b and 3 sends one API key, made by `sentiq keys create`
# without a rate limit: the cost of authenticating each request).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-10}"
PICKUP_JOBS="${PICKUP_JOBS:-300}"
CONCURRENCY="${CONCURRENCY:-2}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
RATE="${RATE:-5000}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need_oha
start_redis
export REDIS_NAMESPACE="bench$$" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0
scratch_postgres "sentiq_bench_$$"
DB="sentiq_bench_$$"
AUTH=()
if [[ -n "${KEYED:-}" ]]; then
  API_KEY=$("$BIN" keys create bench --rate-per-minute 0 | grep -oE 'sq_[A-Za-z0-9_-]{43}' | head -1)
  [[ -n "$API_KEY" ]] || { echo "error: no API key made" >&2; exit 1; }
  AUTH=(-H "Authorization: Bearer $API_KEY")
  export BENCH_AUTHORIZATION="Bearer $API_KEY"
fi

start_production --concurrency "$CONCURRENCY"

sql() { psql -qAt "$PG/$DB" -c "$1"; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { local t=0; for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p"))); done; echo $t; }
echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ), $(psql -qAt "$PG/postgres" -c 'SHOW server_version'), $(redis-server --version | cut -d' ' -f3)"
echo "postgres: fsync=$(sql 'SHOW fsync') synchronous_commit=$(sql 'SHOW synchronous_commit'); worker concurrency $CONCURRENCY"

echo
echo "== 0. pgbench: one-row INSERT transactions, 16 clients, ${DURATION}s"
sql "CREATE TABLE bench_insert (id TEXT PRIMARY KEY, body BYTEA NOT NULL, created_at TEXT NOT NULL)"
cat > "$WORK/insert.sql" <<'SQL'
INSERT INTO bench_insert VALUES (gen_random_uuid()::text, '\x7b2274657874223a2022492077617320686170707921227d', now()::text);
SQL
"$PGBENCH" -n -c 16 -j 2 -T "$DURATION" -f "$WORK/insert.sql" "$PG/$DB" | tee "$WORK/pgbench.txt" | grep -E 'tps|latency average'
PGBENCH_TPS=$(grep -oP 'tps = \K[0-9.]+' "$WORK/pgbench.txt" | head -1)

echo
echo "== 1. POST /api/jobs, 16 connections, ${DURATION}s, the worker running the jobs"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"text": "I loved the first half. The ending was a letdown, sadly."}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth then wrk.headers["Authorization"] = auth end
LUA
wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://$ADDR/api/jobs" | tee "$WORK/wrk.txt"
RPS=$(grep -oP 'Requests/sec:\s+\K[0-9.]+' "$WORK/wrk.txt")
python3 -c "print(f'POST /api/jobs: {float(\"$RPS\"):,.0f} req/s = {float(\"$RPS\")/float(\"$PGBENCH_TPS\"):.2f} x pgbench one-row inserts ({float(\"$PGBENCH_TPS\"):,.0f} tps)')"

echo
echo "== 2. End to end: the jobs of 1., first created_at to last finished_at"
wait_drained
sql "SELECT format('%s jobs: %s succeeded, %s other; %s s from first submission to last success = %s jobs/s',
       count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded'),
       round(extract(epoch FROM max(finished_at::timestamptz) - min(created_at::timestamptz))::numeric, 2),
       round(count(*) / extract(epoch FROM max(finished_at::timestamptz) - min(created_at::timestamptz))::numeric))
     FROM sentiq_jobs"
sql "SELECT format('queue wait (created_at to started_at) p50 %s ms, p99 %s ms',
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY w)::numeric, 1))
     FROM (SELECT extract(epoch FROM started_at::timestamptz - created_at::timestamptz) * 1000 AS w FROM sentiq_jobs) t"
sql "SELECT format('per-job transitions: %s jobs ran more than once', count(*)) FROM (SELECT job_id FROM job_transitions WHERE to_status = 'running' GROUP BY job_id HAVING count(*) > 1) t"

echo
echo "== 1b. POST /api/jobs at ${RATE} req/s offered (open loop), 64 connections, ${DURATION}s, the worker running the jobs"
sql "TRUNCATE sentiq_jobs, job_inputs, job_item_chunks, job_transitions, webhook_deliveries"
S0=$(ticks $SPID); W0=$(ticks $WPID); P0=$(pg_ticks)
"$OHA" -z "${DURATION}s" -q "$RATE" -c 64 --latency-correction --no-tui --output-format json \
  ${OHA_DB:+--db-url "$OHA_DB"} -m POST -H 'Content-Type: application/json' "${AUTH[@]}" \
  -d '{"text": "I loved the first half. The ending was a letdown, sadly."}' \
  "http://$ADDR/api/jobs" > "$WORK/oha.json"
python3 - "$WORK/oha.json" "$RATE" "$DURATION" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rate, duration = float(sys.argv[2]), float(sys.argv[3])
p = {k: v * 1000 for k, v in r["latencyPercentiles"].items()}
codes = r["statusCodeDistribution"]
answered = sum(codes.values())
print(f"offered {rate:,.0f} req/s for {duration:.0f} s: {answered:,} answered ({answered / duration:,.0f} req/s), "
      f"status {dict(sorted(codes.items()))}, errors {r.get('errorDistribution') or 'none'}")
print(f"latency (from the scheduled send) p50 {p['p50']:.2f} ms, p90 {p['p90']:.2f} ms, p99 {p['p99']:.2f} ms, "
      f"p99.9 {p['p99.9']:.2f} ms, max {r['summary']['slowest'] * 1000:.2f} ms")
PY
[[ -z "${OHA_DB:-}" ]] || python3 scripts/oha_windows.py "$OHA_DB"
wait_drained
S1=$(ticks $SPID); W1=$(ticks $WPID); P1=$(pg_ticks)
N=$(sql "SELECT count(*) FROM sentiq_jobs")
python3 -c "
n = $N; us = lambda t: t * 10 / n * 1000
print(f'CPU per job: serve {us($S1 - $S0):.0f} us, worker {us($W1 - $W0):.0f} us, postgres (all) {us($P1 - $P0):.0f} us')"
sql "SELECT format('end to end at that rate: %s jobs, %s succeeded; queue wait p50 %s ms, p99 %s ms',
       count(*), count(*) FILTER (WHERE status = 'succeeded'),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY w)::numeric, 1))
     FROM (SELECT status, extract(epoch FROM started_at::timestamptz - created_at::timestamptz) * 1000 AS w FROM sentiq_jobs) t"

echo
echo "== 3. Pick-up: ${PICKUP_JOBS} one-sentence jobs one at a time to an idle worker"
sql "TRUNCATE sentiq_jobs, job_inputs, job_item_chunks, job_transitions, webhook_deliveries"
python3 scripts/bench_http_latency.py "$ADDR" "$PICKUP_JOBS"
sql "SELECT format('commit to running (started_at - created_at, ms resolution): p50 %s ms, p90 %s ms, p99 %s ms, max %s ms',
       percentile_cont(0.5) WITHIN GROUP (ORDER BY w), percentile_cont(0.9) WITHIN GROUP (ORDER BY w),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY w), max(w))
     FROM (SELECT extract(epoch FROM started_at::timestamptz - created_at::timestamptz) * 1000 AS w FROM sentiq_jobs) t"
