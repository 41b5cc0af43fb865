#!/usr/bin/env bash
# Where the time of a job goes, production topology (PostgreSQL + Redis):
#   1. DURATION seconds of POST /api/jobs (wrk, 16 connections) with no worker running: the
#      submission rate alone, and the CPU per submission of `serve`, PostgreSQL and Redis;
#   2. then one `sentiq worker` drains them: drain rate, and CPU per job of the worker, of the
#      PostgreSQL backends serving it (from 0.5 s after its start), of all PostgreSQL processes
#      and of Redis (from /proc/PID/stat).
# Usage: scripts/bench-drain.sh   (needs wrk; env NO_BUILD=1 BIN=path, CONCURRENCY=2,
# IN_FLIGHT (worker default), DURATION=5, PG=postgres://postgres@127.0.0.1:5432, PERF=1 records
# a perf profile of the worker to /tmp/worker.perf, HISTORY=N first writes N jobs that were
# queued, ran and succeeded, by SQL, so the table holds their rows and dead row versions,
# EXTRA_SQL is run after the migrations, e.g. a schema variant)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONCURRENCY="${CONCURRENCY:-2}"; DURATION="${DURATION:-5}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
unset REDIS_URL
start_redis; RPID=$REDIS_PID
export REDIS_NAMESPACE="d$$" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0
DB="sentiq_drain_$$"
scratch_postgres "$DB"
[[ -z "${EXTRA_SQL:-}" ]] || psql -q "$PG/$DB" -c "$EXTRA_SQL"
if [[ -n "${HISTORY:-}" ]]; then
  psql -q "$PG/$DB" -c "INSERT INTO sentiq_jobs (id, queue, format, input_bytes, created_at, updated_at)
      SELECT 'old' || g, 'quick', 'text', 10, '2026', '2026' FROM generate_series(1, $HISTORY) g" \
    -c "UPDATE sentiq_jobs SET status = 'running'" \
    -c "UPDATE sentiq_jobs SET status = 'succeeded', finished_at = '2026'" >/dev/null
fi
start_production no-worker
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"text": "I loved the first half. The ending was a letdown, sadly."}'
wrk.headers["Content-Type"] = "application/json"
LUA
sql() { psql -qAt "$PG/$DB" -c "$1"; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
pgcpu() { local t=0; for p in $(pgrep -f "postgres: .*$DB"); do t=$((t + $(cpu $p))); done; echo $t; }
allpg() { local t=0; for p in $(pgrep -x postgres); do t=$((t + $(cpu $p))); done; echo $t; }
S0=$(cpu $SPID); PA0=$(allpg); RR0=$(cpu $RPID)
wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://$ADDR/api/jobs" > "$WORK/wrk.txt"
grep -E "Requests/sec|50%|99%" "$WORK/wrk.txt"
S1=$(cpu $SPID); PA1=$(allpg); RR1=$(cpu $RPID)
N0=$(sql "SELECT count(*) FROM sentiq_jobs WHERE status = 'queued'")
python3 -c "n=$N0; print(f'POST CPU per request: serve {($S1-$S0)/100/n*1000:.3f} ms, all postgres {($PA1-$PA0)/100/n*1000:.3f} ms, redis {($RR1-$RR0)/100/n*1000:.3f} ms')"
N=$N0
R0=$(cpu $RPID); PA0=$(allpg)
T0=$(date +%s.%N)
"$BIN" worker --concurrency "$CONCURRENCY" ${IN_FLIGHT:+--in-flight "$IN_FLIGHT"} > "$WORK/worker.log" 2>&1 & WPID=$!; PIDS+=($WPID)
sleep 0.5; P0=$(pgcpu)
if [[ -n "${PERF:-}" ]]; then perf record -F 999 -g -p $WPID -o /tmp/worker.perf -- sleep 3 >/dev/null 2>&1 & fi
while [[ "$(sql "SELECT count(*) FROM sentiq_jobs WHERE status IN ('queued','running')")" != 0 ]]; do sleep 0.1; done
T1=$(date +%s.%N)
W=$(cpu $WPID); P1=$(pgcpu); R1=$(cpu $RPID); PA1=$(allpg)
python3 -c "
n=$N; t=$T1-$T0; tick=100
print(f'jobs {n}, drain {t:.2f} s = {n/t:.0f} jobs/s; CPU per job: worker {($W)/tick/n*1000:.3f} ms, postgres (after 0.5 s) {($P1-$P0)/tick/n*1000:.3f} ms, redis {($R1-$R0)/tick/n*1000:.3f} ms, all postgres {($PA1-$PA0)/tick/n*1000:.3f} ms')"
sql "SELECT status, count(*) FROM sentiq_jobs GROUP BY 1"
grep -ciE "error|warn" "$WORK/worker.log" || true
