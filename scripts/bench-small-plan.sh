#!/usr/bin/env bash
# The production topology on the smallest database plans: a throwaway PostgreSQL that accepts
# 20 connections in all (Heroku's essential plans), 2 `sentiq serve` and 2 `sentiq worker`
# processes whose pools are sized to fit it, and bench-production's open-loop load (part 1b)
# split over the two web processes. Prints the answers, the latency, the most connections
# PostgreSQL saw, the connection refusals in the logs, and whether every job answered 202
# exists once and succeeded.
# Usage: scripts/bench-small-plan.sh   (needs oha: `cargo install oha --locked`, or OHA=path)
# Environment: RATE (req/s offered in all, default 4000), DURATION (s, default 10),
# SERVE_CONNECTIONS (default 4), WORKER_CONNECTIONS (default 5), PG_MAX_CONNECTIONS (20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATE="${RATE:-4000}"
DURATION="${DURATION:-10}"
SERVE_CONNECTIONS="${SERVE_CONNECTIONS:-4}"
WORKER_CONNECTIONS="${WORKER_CONNECTIONS:-5}"
PG_MAX_CONNECTIONS="${PG_MAX_CONNECTIONS:-20}"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need_oha
chmod 755 "$WORK"
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
AT_EXIT+=("as_postgres '$PGBIN/pg_ctl' -D '$WORK/pg' -m immediate stop")

# PostgreSQL with the plan's connection limit.
mkdir "$WORK/pg" && { [[ $(id -u) != 0 ]] || chown postgres "$WORK/pg"; }
as_postgres "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres --no-sync -E UTF8 >/dev/null
PGPORT=$(free_port)
as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w -o \
  "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=$PG_MAX_CONNECTIONS -c fsync=off" start >/dev/null
PG="postgres://postgres@127.0.0.1:$PGPORT"
psql -q "$PG/postgres" -c "CREATE DATABASE sentiq" >/dev/null
sql() { psql -qAt "$PG/sentiq" -c "$1"; }

start_redis
export DATABASE_URL="$PG/sentiq" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0
"$BIN" migrate
ADDRS=()
for i in 1 2; do
  port=$(free_port)
  DATABASE_MAX_CONNECTIONS=$SERVE_CONNECTIONS PORT=$port "$BIN" serve > "$WORK/serve$i.log" 2>&1 &
  PIDS+=($!); ADDRS+=("127.0.0.1:$port")
  DATABASE_MAX_CONNECTIONS=$WORKER_CONNECTIONS "$BIN" worker > "$WORK/worker$i.log" 2>&1 &
  PIDS+=($!)
done
for a in "${ADDRS[@]}"; do wait_ready "$a"; done

echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ); PostgreSQL max_connections=$(sql 'SHOW max_connections')"
echo "2 serve (DATABASE_MAX_CONNECTIONS=$SERVE_CONNECTIONS) + 2 worker (DATABASE_MAX_CONNECTIONS=$WORKER_CONNECTIONS)"
echo
echo "== POST /api/jobs at $RATE req/s offered in all (open loop, half to each serve), ${DURATION}s"
( most=0
  while :; do
    n=$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'" 2>/dev/null || echo 0)
    (( n > most )) && most=$n && echo "$most" > "$WORK/most"
    sleep 0.2
  done ) &
SAMPLER=$!; PIDS+=($SAMPLER)
for i in 0 1; do
  "$OHA" -z "${DURATION}s" -q $((RATE / 2)) -c 32 --latency-correction --no-tui --output-format json \
    -m POST -H 'Content-Type: application/json' \
    -d '{"text": "I loved the first half. The ending was a letdown, sadly."}' \
    "http://${ADDRS[$i]}/api/jobs" > "$WORK/oha$i.json" &
  OHAS[$i]=$!
done
wait "${OHAS[0]}" "${OHAS[1]}"
wait_drained
kill "$SAMPLER" 2>/dev/null || true
python3 - "$WORK/oha0.json" "$WORK/oha1.json" "$DURATION" <<'PY'
import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:3]]; duration = float(sys.argv[3])
codes = {}
for r in runs:
    for k, v in r["statusCodeDistribution"].items():
        codes[k] = codes.get(k, 0) + v
errors = [r.get("errorDistribution") for r in runs if r.get("errorDistribution")]
answered = sum(codes.values())
print(f"answered {answered:,} ({answered / duration:,.0f} req/s), status {dict(sorted(codes.items()))}, errors {errors or 'none'}")
for i, r in enumerate(runs):
    p = {k: v * 1000 for k, v in r["latencyPercentiles"].items()}
    print(f"serve {i + 1}: latency (from the scheduled send) p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms, max {r['summary']['slowest'] * 1000:.2f} ms")
open(sys.argv[1] + ".accepted", "w").write(str(codes.get("202", 0)))
PY
ACCEPTED=$(cat "$WORK/oha0.json.accepted")
echo "most client connections PostgreSQL saw: $(cat "$WORK/most" 2>/dev/null || echo '?') of $PG_MAX_CONNECTIONS"
echo "connection refusals in the logs (too many clients): $(cat "$WORK"/serve*.log "$WORK"/worker*.log | grep -ci 'too many clients\|53300' || true)"
# A request oha gave up on at the deadline may still have been written: rows >= 202s.
sql "SELECT format('%s answered 202, %s job rows: %s succeeded, %s other; %s ran more than once',
       $ACCEPTED, count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded'),
       (SELECT count(*) FROM (SELECT job_id FROM job_transitions WHERE to_status = 'running' GROUP BY job_id HAVING count(*) > 1) t))
     FROM sentiq_jobs"
