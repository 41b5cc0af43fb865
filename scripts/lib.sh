# What the benchmark scripts share; sourced (from the repository's root) after `set -euo
# pipefail`. On sourcing: builds the release binary unless NO_BUILD=1 ($BIN, absolute; BIN names
# another), makes $WORK, and arranges that on exit every process in $PIDS is stopped, every
# command in $AT_EXIT runs, and $WORK is removed. The helpers start the parts a benchmark needs.

[[ -n "${NO_BUILD:-}" ]] || cargo build --release --quiet
BIN="$(realpath "${BIN:-target/release/sentiq}")"
WORK=$(mktemp -d)
PIDS=()
AT_EXIT=()
bench_cleanup() {
  local p c
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in "${AT_EXIT[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

# A TCP port nothing listens on.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# $OHA, the open-loop load generator, or exit saying how to install it.
need_oha() {
  OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
  [[ -x "$OHA" ]] || { echo "error: oha is not installed (cargo install oha --locked)" >&2; exit 1; }
}

# Wait (at most 10 s) until the server at $1 (host:port) answers $2 (default /readyz).
wait_ready() {
  local _
  for _ in $(seq 100); do curl -fs "http://$1${2:-/readyz}" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "error: the server at $1 is not ready; its logs:" >&2
  tail -n 20 "$WORK"/*.log >&2 || true
  exit 1
}

# REDIS_URL: kept when set, else a throwaway redis-server (no persistence) on a free port
# ($REDIS_PID, $REDIS_PORT).
start_redis() {
  [[ -z "${REDIS_URL:-}" ]] || return 0
  local port _
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 &
  REDIS_PID=$!; REDIS_PORT=$port; PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port"
}

# DATABASE_URL: a new database $1 on the PostgreSQL server $PG (default the local one),
# migrated, dropped on exit.
scratch_postgres() {
  PG="${PG:-postgres://postgres@127.0.0.1:5432}"
  psql -q "$PG/postgres" -c "CREATE DATABASE $1" >/dev/null
  AT_EXIT+=("psql -q '$PG/postgres' -c 'DROP DATABASE IF EXISTS $1 WITH (FORCE)'")
  export DATABASE_URL="$PG/$1"
  "$BIN" migrate
}

# Wait (polling every 0.2 s, at most 300 s) until no job is queued or running, asking the
# database through the script's own `sql` function.
wait_drained() {
  local _
  for _ in $(seq 1500); do
    [[ "$(sql "SELECT count(*) FROM sentiq_jobs WHERE status IN ('queued','running')")" == 0 ]] && return
    sleep 0.2
  done
  echo "error: jobs still open after 300 s" >&2; exit 1
}

# The production topology on $DATABASE_URL and $REDIS_URL: `sentiq serve` on a free port ($ADDR,
# process $SPID, log $WORK/serve.log), ready; and, unless $1 is "no-worker", one `sentiq worker`
# with the remaining arguments ($WPID, log $WORK/worker.log).
start_production() {
  local port
  port=$(free_port)
  ADDR="127.0.0.1:$port"
  PORT=$port "$BIN" serve > "$WORK/serve.log" 2>&1 &
  SPID=$!; PIDS+=($SPID)
  if [[ "${1:-}" != no-worker ]]; then
    "$BIN" worker "$@" > "$WORK/worker.log" 2>&1 &
    WPID=$!; PIDS+=($WPID)
  fi
  wait_ready "$ADDR"
}
