#!/usr/bin/env bash
# Peak memory (RSS) of each process under large uploads, sampled every 100 ms. In one run:
#   1. the embedded default (`sentiq serve`, SQLite, in-process worker): UPLOADS concurrent
#      uploads of SIZE_MB MiB of plain text;
#   2. the production topology (`sentiq serve` + `sentiq worker` on PostgreSQL + Redis): the same;
#   3. BULK_JOBS jobs of SIZE_MB MiB through one `sentiq worker --concurrency CONCURRENCY`
#      (submitted first, the worker started after; the issue asked for 4, 8 shows that the
#      worker's analysis memory, not its concurrency, bounds it).
# Each part prints the answers (202, or 503/429 with Retry-After), whether every accepted job
# succeeded, and the peak RSS of each process. Goal: every process under 256 MB.
# Usage: scripts/bench-memory.sh   (UPLOADS=16, SIZE_MB=64, BULK_JOBS=20; PG, REDIS as in
#        bench-production.sh; PARTS="1 2 3" picks parts; CONCURRENCY=8 for part 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UPLOADS="${UPLOADS:-16}"
SIZE_MB="${SIZE_MB:-64}"
BULK_JOBS="${BULK_JOBS:-20}"
CONCURRENCY="${CONCURRENCY:-8}"
PARTS="${PARTS:-1 2 3}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# SIZE_MB MiB of English sentences, some lines long, some short.
python3 - "$WORK/input.txt" "$SIZE_MB" <<'EOF'
import random, sys
random.seed(7)
words = ("good bad great terrible movie plot actor love hate boring exciting the a was is "
         "very not really quite awful wonderful story ending").split()
target = int(sys.argv[2]) << 20
with open(sys.argv[1], "w") as f:
    size = 0
    while True:
        s = " ".join(random.choice(words) for _ in range(random.randint(5, 15))).capitalize() + ". "
        if random.random() < 0.1:
            s += "\n"
        if size + len(s) > target:
            break
        f.write(s)
        size += len(s)
EOF

# Sample the RSS (KiB) of pid $1 into file $2 until the process ends or the file is removed.
sample() {
  local pid=$1 out=$2
  : > "$out"
  ( while kill -0 "$pid" 2>/dev/null && [[ -e "$out" ]]; do
      awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >> "$out" 2>/dev/null || true
      sleep 0.1
    done ) &
}
peak_mb() { sort -n "$1" | tail -1 | awk '{printf "%.0f MB", $1 / 1024}'; }

# POST $UPLOADS copies of the input at once to $1; prints the status codes and keeps the ids.
upload_all() {
  local addr=$1 dir=$2
  mkdir -p "$dir"
  for i in $(seq "$UPLOADS"); do
    curl -s -o "$dir/$i.json" -D "$dir/$i.headers" -w "%{http_code}\n" \
      -H 'Content-Type: text/plain' --data-binary @"$WORK/input.txt" \
      "http://$addr/api/jobs" > "$dir/$i.code" &
  done
  wait $(jobs -p | tail -n "$UPLOADS") 2>/dev/null || true
  local accepted=0 refused=0 other=0
  for i in $(seq "$UPLOADS"); do
    case "$(cat "$dir/$i.code")" in
      202) accepted=$((accepted + 1)) ;;
      503|429)
        grep -qi '^retry-after:' "$dir/$i.headers" || { echo "a refusal without Retry-After" >&2; exit 1; }
        refused=$((refused + 1)) ;;
      *) other=$((other + 1)); cat "$dir/$i.json" >&2 ;;
    esac
  done
  echo "  answers: $accepted accepted (202), $refused refused (503/429 with Retry-After), $other other"
  [[ $other -eq 0 ]] || exit 1
}

# Wait until every accepted upload of $2 has succeeded at $1 (at most 10 minutes).
wait_succeeded() {
  local addr=$1 dir=$2 ids=() id status
  for f in "$dir"/*.json; do
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id",""))' "$f" 2>/dev/null || true)
    [[ -n "$id" ]] && ids+=("$id")
  done
  local start=$SECONDS
  for id in "${ids[@]}"; do
    while true; do
      status=$(curl -s "http://$addr/api/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
      [[ "$status" == succeeded ]] && break
      [[ "$status" == queued || "$status" == running ]] || { echo "job $id ended $status" >&2; exit 1; }
      (( SECONDS - start < 600 )) || { echo "job $id still $status after 10 minutes" >&2; exit 1; }
      sleep 1
    done
  done
  echo "  all ${#ids[@]} accepted jobs succeeded ($((SECONDS - start)) s after the last answer)"
}

echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ); $UPLOADS uploads of $SIZE_MB MiB; MEMORY_BUDGET_MB=${MEMORY_BUDGET_MB:-256 (default)}"
export RUST_LOG=warn SUBMIT_RATE_PER_MINUTE=0

if [[ " $PARTS " == *" 1 "* ]]; then
  echo "== 1. embedded default: sentiq serve (SQLite, in-process worker)"
  PORT=$(free_port)
  (cd "$WORK" && exec env PORT="$PORT" DATABASE_URL="sqlite://$WORK/embedded.db?mode=rwc" \
    "$BIN" serve > "$WORK/embedded.log" 2>&1) &
  SERVE=$!; PIDS+=($SERVE)
  wait_ready "127.0.0.1:$PORT"
  sample "$SERVE" "$WORK/embedded.rss"
  upload_all "127.0.0.1:$PORT" "$WORK/embedded"
  wait_succeeded "127.0.0.1:$PORT" "$WORK/embedded"
  echo "  peak RSS: serve $(peak_mb "$WORK/embedded.rss")"
  kill "$SERVE"; wait "$SERVE" 2>/dev/null || true
fi

if [[ " $PARTS " == *" 2 "* || " $PARTS " == *" 3 "* ]]; then
  start_redis
  export REDIS_NAMESPACE="mem$$"
  scratch_postgres "sentiq_mem_$$"
  start_production no-worker
  sample "$SPID" "$WORK/serve.rss"
fi

if [[ " $PARTS " == *" 2 "* ]]; then
  echo "== 2. production topology: sentiq serve + sentiq worker (PostgreSQL + Redis)"
  "$BIN" worker > "$WORK/worker.log" 2>&1 &
  WORKER=$!; PIDS+=($WORKER)
  sample "$WORKER" "$WORK/worker.rss"
  upload_all "$ADDR" "$WORK/production"
  wait_succeeded "$ADDR" "$WORK/production"
  echo "  peak RSS: serve $(peak_mb "$WORK/serve.rss"), worker $(peak_mb "$WORK/worker.rss")"
  kill "$WORKER"; wait "$WORKER" 2>/dev/null || true
fi

if [[ " $PARTS " == *" 3 "* ]]; then
  echo "== 3. $BULK_JOBS bulk jobs of $SIZE_MB MiB through one sentiq worker --concurrency $CONCURRENCY"
  UPLOADS_WAS=$UPLOADS; UPLOADS=$BULK_JOBS
  upload_all "$ADDR" "$WORK/bulk"
  UPLOADS=$UPLOADS_WAS
  started=$(date +%s.%N)
  "$BIN" worker --queues bulk --concurrency "$CONCURRENCY" > "$WORK/bulk-worker.log" 2>&1 &
  WORKER=$!; PIDS+=($WORKER)
  sample "$WORKER" "$WORK/bulk-worker.rss"
  wait_succeeded "$ADDR" "$WORK/bulk"
  echo "  drained in $(python3 -c "import time; print(round(time.time() - $started, 1))") s"
  echo "  peak RSS: worker $(peak_mb "$WORK/bulk-worker.rss") (serve over parts 2 and 3: $(peak_mb "$WORK/serve.rss"))"
fi
