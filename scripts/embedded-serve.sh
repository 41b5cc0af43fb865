# Sourced by the benchmarks of the embedded default (from the repository's root): with
# scripts/lib.sh ($BIN, $WORK, cleanup on exit), starts `sentiq serve` on a SQLite file in $WORK
# on a free port ($ADDR, process $SERVER, log $WORK/server.log). The server inherits the
# environment; `serve_embedded` starts it again (after the last one was stopped), e.g. with
# other variables.
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
PORT=$(free_port)
ADDR="127.0.0.1:$PORT"

serve_embedded() {
    PORT=$PORT DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0 "$BIN" serve >> "$WORK/server.log" 2>&1 &
    SERVER=$!
    PIDS+=($SERVER)
    wait_ready "$ADDR" /healthz
}
serve_embedded
