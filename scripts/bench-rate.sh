#!/usr/bin/env bash
# One fresh production deployment (PostgreSQL database, throwaway redis-server, one `sentiq
# serve`, one `sentiq worker`) offered a fixed rate of one-sentence POST /api/jobs (open loop:
# oha sends RATE requests a second whatever the answers take and counts a late send in the
# latency), then drained. Prints the POST latency, end to end jobs/s (first created_at to last
# finished_at), queue wait, and the CPU per job of each process: `serve`, the worker, Redis, all
# of PostgreSQL, and the PostgreSQL backends serving `serve` and the worker (told apart by
# their client's port, `ss -tnp`, so it needs root).
# Usage: scripts/bench-rate.sh     (env: NO_BUILD=1 BIN=path, RATE=5000, DURATION=10,
#        IN_FLIGHT (worker default), EXTRA_SQL (run after the migrations, e.g. a schema variant),
#        PG=postgres://postgres@127.0.0.1:5432, OHA=oha; `cargo install oha --locked`;
#        REDIS_STATS=1 prints Redis's command counts at the end; OHA_DB=file.db keeps every
#        request's times there (oha --db-url) and prints the p99 of each 250 ms of the run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE="${RATE:-5000}"; DURATION="${DURATION:-10}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need_oha
unset REDIS_URL
start_redis; RPID=$REDIS_PID; RPORT=$REDIS_PORT
export REDIS_NAMESPACE="r$$" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0
DB="sentiq_rate_$$"
scratch_postgres "$DB"
[[ -z "${EXTRA_SQL:-}" ]] || psql -q "$PG/$DB" -c "$EXTRA_SQL"
start_production --concurrency 2 ${IN_FLIGHT:+--in-flight "$IN_FLIGHT"}
sleep 1
sql() { psql -qAt "$PG/$DB" -c "$1"; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
total() { local t=0; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo $t; }
# The backends of client process $1: the server side of its connections to port 5432.
backends() {
  ss -tnp | awk -v pid="pid=$1," '$0 ~ pid && $5 ~ /:5432$/ { n = split($4, a, ":"); print a[n] }' |
    while read -r port; do ss -tnp | awk -v p=":$port" '$4 ~ /:5432$/ && $5 ~ p"$"' | grep -oP 'pid=\K[0-9]+' | head -1; done
}
declare -A BEFORE; for p in $(pgrep -x postgres); do BEFORE[$p]=$(ticks "$p"); done
since() { local t=0; for p in "$@"; do t=$((t + $(ticks "$p") - ${BEFORE[$p]:-0})); done; echo $t; }
S0=$(ticks $SPID); W0=$(ticks $WPID); R0=$(ticks $RPID)
"$OHA" -z "${DURATION}s" -q "$RATE" -c 64 --latency-correction --no-tui --output-format json ${OHA_DB:+--db-url "$OHA_DB"} -m POST \
  -H 'Content-Type: application/json' -d '{"text": "I loved the first half. The ending was a letdown, sadly."}' \
  "http://$ADDR/api/jobs" > "$WORK/oha.json"
python3 - "$WORK/oha.json" "$RATE" "$DURATION" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rate, duration = float(sys.argv[2]), float(sys.argv[3])
p = {k: v * 1000 for k, v in r["latencyPercentiles"].items()}
codes = r["statusCodeDistribution"]; answered = sum(codes.values())
print(f"offered {rate:,.0f} req/s for {duration:.0f} s: {answered:,} answered, status {codes}; "
      f"latency p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms, p99 {p['p99']:.1f} ms, p99.9 {p['p99.9']:.1f} ms")
PY
[[ -z "${OHA_DB:-}" ]] || python3 scripts/oha_windows.py "$OHA_DB"
for _ in $(seq 1200); do [[ "$(sql "SELECT count(*) FROM sentiq_jobs WHERE finished_at IS NULL")" == 0 ]] && break; sleep 0.1; done
S1=$(ticks $SPID); W1=$(ticks $WPID); R1=$(ticks $RPID)
PGALL=$(since $(pgrep -x postgres)); PGS=$(since $(backends $SPID)); PGW=$(since $(backends $WPID))
N=$(sql "SELECT count(*) FROM sentiq_jobs")
sql "SELECT format('%s jobs, %s succeeded; end to end %s jobs/s; queue wait p50 %s ms, p99 %s ms', count(*),
  count(*) FILTER (WHERE status = 'succeeded'),
  round(count(*) / extract(epoch FROM max(finished_at::timestamptz) - min(created_at::timestamptz))::numeric),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w)::numeric), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY w)::numeric))
  FROM (SELECT status, created_at, finished_at, extract(epoch FROM started_at::timestamptz - created_at::timestamptz) * 1000 AS w FROM sentiq_jobs) t"
python3 -c "
n = $N; us = lambda t: t * 10 / n * 1000
print(f'CPU per job: serve {us($S1 - $S0):.0f} us, worker {us($W1 - $W0):.0f} us, redis {us($R1 - $R0):.0f} us, '
      f'postgres {us($PGALL):.0f} us (backends of serve {us($PGS):.0f} us, of the worker {us($PGW):.0f} us)')"
[[ -z "${REDIS_STATS:-}" ]] || redis-cli -p "$RPORT" info commandstats | grep -v "^#" >&2
