#!/usr/bin/env bash
# Two builds side by side: scripts/bench-production.sh, bench-drain.sh and bench-http.sh run
# alternately for binary A and binary B in one session (A B, then B A in the next round), so
# the drift of a shared machine falls on both alike. Each run's full output is kept.
# Usage: scripts/bench-ab.sh A_BIN B_BIN [ROUNDS]   (ROUNDS=2; BENCHES="production drain http";
#        OUT=dir for the logs; the benchmarks' own variables pass through, e.g. DURATION)
# Build A from another commit without disturbing this tree, e.g.:
#   git worktree add /tmp/a COMMIT && (cd /tmp/a && cargo build --release) && cp /tmp/a/target/release/sentiq /tmp/sentiq-a
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
A="$1"; B="$2"; ROUNDS="${3:-2}"; BENCHES="${BENCHES:-production drain http}"
OUT="${OUT:-$(mktemp -d /tmp/bench-ab.XXXXXX)}"
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  order="A B"; (( round % 2 == 0 )) && order="B A"
  for bench in $BENCHES; do
    for side in $order; do
      bin="$A"; [[ "$side" == B ]] && bin="$B"
      log="$OUT/$bench-$round-$side.log"
      echo "== round $round: bench-$bench.sh, $side ($bin) -> $log"
      NO_BUILD=1 BIN="$bin" "scripts/bench-$bench.sh" > "$log" 2>&1 || echo "   failed (exit $?): see $log"
    done
  done
done
echo "logs in $OUT"
