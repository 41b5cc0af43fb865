# Sourced by the benchmarks of the embedded default (from the repository's root): builds the
# release binary unless NO_BUILD=1 (BIN names another), starts `sentiq serve` on a SQLite file
# in $WORK on a free port ($ADDR, process $SERVER, log $WORK/server.log), and on exit stops it
# and removes $WORK. The server inherits the environment; `serve_embedded` starts it again
# (after the last one was stopped), e.g. with other variables.
[[ -n "${NO_BUILD:-}" ]] || cargo build --release --quiet
BIN="${BIN:-target/release/sentiq}"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
cleanup() { [[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

serve_embedded() {
    PORT=$PORT DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc" RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0 "$BIN" serve >> "$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do curl -fs "http://$ADDR/healthz" >/dev/null && break; sleep 0.1; done
    curl -fs "http://$ADDR/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
}
serve_embedded
