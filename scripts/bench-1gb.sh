#!/usr/bin/env bash
# `sentiq analyze` on a 1 GiB plain-text document, on all cores: wall time, MB/s, sentences/s
# and peak RSS. Exits 1 when the peak RSS reaches MAX_RSS_MB (default 256).
#
# The document, target/bench/1gb.txt, is exactly 1 GiB (1,073,741,824 bytes) and always the
# same: the texts of the VADER tweets and Amazon review ground truths (third TSV field), in file
# order, tweets first, each ended with a full stop unless it already ends with . ! ? or an
# ellipsis, grouped into paragraphs of 3, 4, ... 8, 3, ... sentences separated by a blank line.
# That block (~0.7 MB) is repeated; the last paragraph is cut at a word boundary to land exactly
# on 1 GiB. It is rebuilt only when missing or of the wrong size (REGENERATE=1 forces it).
#
# Environment:
#   MAX_RSS_MB   fail when the peak RSS is at or above this many MiB (default 256)
#   REGENERATE   1: rebuild the document even if it exists
#
# Usage: scripts/bench-1gb.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAX_RSS_MB="${MAX_RSS_MB:-256}"
BENCH_DIR=target/bench
DOC="$BENCH_DIR/1gb.txt"
REPORT="$BENCH_DIR/1gb.report.json"
TIME_LOG="$BENCH_DIR/1gb.time.log"
SIZE=$((1 << 30))
BIN=target/release/sentiq

log() { printf '%s\n' "$*" >&2; }

# --- inputs -----------------------------------------------------------------------------------
corpus_file() {
    local name=$1
    if [[ -f "tests/data/vader/$name" ]]; then
        echo "tests/data/vader/$name"
    elif [[ -f "../shared/corpus/vader-groundtruth/$name" ]]; then
        echo "../shared/corpus/vader-groundtruth/$name"
    else
        log "error: $name not found in tests/data/vader/ or ../shared/corpus/vader-groundtruth/"
        exit 2
    fi
}
TWEETS=$(corpus_file tweets_GroundTruth.txt)
AMAZON=$(corpus_file amazonReviewSnippets_GroundTruth.txt)

# --- tools ------------------------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "== installing GNU time"
    apt-get install -y time >&2 || { apt-get update >&2 && apt-get install -y time >&2; }
fi

log "== cargo build --release"
cargo build --release >&2

# --- the document -----------------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
if [[ "${REGENERATE:-0}" == 1 || ! -f "$DOC" || "$(stat -c %s "$DOC")" -ne "$SIZE" ]]; then
    log "== generating $DOC"
    gen_start=$(date +%s.%N)
    python3 - "$DOC" "$SIZE" "$TWEETS" "$AMAZON" <<'PY'
import os
import sys

out, size, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

sentences = []
for path in sources:
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            fields = line.rstrip(b"\r").split(b"\t", 2)
            if len(fields) != 3 or not fields[2].strip():
                continue
            s = fields[2].strip()
            if not s.endswith((b".", b"!", b"?", "\u2026".encode())):
                s += b"."
            sentences.append(s)

paragraphs, i, n = [], 0, 3
while i < len(sentences):
    paragraphs.append(b" ".join(sentences[i:i + n]) + b"\n\n")
    i += n
    n = 3 if n == 8 else n + 1
block = b"".join(paragraphs)

# Whole blocks, then whole paragraphs, then the next paragraph cut at a word boundary and padded
# with spaces so that the file ends with ".\n" exactly at `size` bytes.
reps, rest = divmod(size, len(block))
tail = bytearray()
for p in paragraphs:
    if len(tail) + len(p) > rest:
        room = rest - len(tail) - 2  # for ".\n"
        words = []
        for w in p.split(b" "):
            if len(b" ".join(words + [w])) > room:
                break
            words.append(w)
        cut = b" ".join(words).rstrip(b".!?")
        tail += cut + b" " * (room - len(cut)) + b".\n"
        break
    tail += p
assert len(tail) == rest, (len(tail), rest)

per_write = max(1, (64 << 20) // len(block))  # write ~64 MiB at a time
big = block * per_write
whole, part = divmod(reps, per_write)
with open(out + ".tmp", "wb") as f:
    for _ in range(whole):
        f.write(big)
    f.write(block * part)
    f.write(tail)
os.replace(out + ".tmp", out)
assert os.path.getsize(out) == size
PY
    gen_end=$(date +%s.%N)
    log "   generated in $(awk -v a="$gen_start" -v b="$gen_end" 'BEGIN { printf "%.1f", b - a }') s"
else
    log "== reusing $DOC (REGENERATE=1 to rebuild)"
fi
bytes=$(stat -c %s "$DOC")

# --- the run ----------------------------------------------------------------------------------
threads=$(nproc)
log "== /usr/bin/time -v $BIN analyze $DOC ($threads threads)"
# The default: one worker per core (SENTIQ_THREADS would override it).
if ! env -u SENTIQ_THREADS /usr/bin/time -v -o "$TIME_LOG" "$BIN" analyze "$DOC" > "$REPORT"; then
    log "error: sentiq analyze failed"
    cat "$TIME_LOG" >&2
    exit 1
fi

# --- results ----------------------------------------------------------------------------------
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TIME_LOG" |
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TIME_LOG")
user_s=$(sed -n 's/.*User time (seconds): //p' "$TIME_LOG")
sys_s=$(sed -n 's/.*System time (seconds): //p' "$TIME_LOG")
cpu=$(sed -n 's/.*Percent of CPU this job got: //p' "$TIME_LOG")
read -r items elapsed_ms < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["items"], r["elapsed_ms"])' "$REPORT")

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    commit="$commit+dirty"
fi

echo
echo "1 GB document (both cores)"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:  $threads cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "sentiq:   $commit, rustc $(rustc --version | awk '{print $2}')"
echo "input:    $DOC ($bytes bytes)"
echo
awk -v bytes="$bytes" -v wall="$wall" -v items="$items" -v ms="$elapsed_ms" -v rss="$rss_kb" \
    -v user="$user_s" -v sys="$sys_s" -v cpu="$cpu" -v threads="$threads" '
BEGIN {
    printf "| %-32s | %18s |\n", "metric", "value"
    printf "|-%s-|-%s-|\n", "--------------------------------", "------------------"
    printf "| %-32s | %18d |\n", "threads", threads
    printf "| %-32s | %18d |\n", "input bytes", bytes
    printf "| %-32s | %18.2f |\n", "wall time (s)", wall
    printf "| %-32s | %18.2f |\n", "user + sys CPU (s)", user + sys
    printf "| %-32s | %18s |\n", "CPU use", cpu
    printf "| %-32s | %18.1f |\n", "throughput (MB/s, 10^6 B)", bytes / 1e6 / wall
    printf "| %-32s | %18.1f |\n", "throughput (MiB/s)", bytes / 1048576 / wall
    printf "| %-32s | %18d |\n", "sentences (report items)", items
    printf "| %-32s | %18.0f |\n", "sentences/s (wall)", items / wall
    printf "| %-32s | %18.0f |\n", "sentences/s (report elapsed_ms)", items / (ms / 1000)
    printf "| %-32s | %18.1f |\n", "peak RSS (MB, MiB)", rss / 1024
}'
echo
awk -v bytes="$bytes" -v wall="$wall" -v items="$items" -v rss="$rss_kb" 'BEGIN {
    printf "wall_s=%.2f mb_per_s=%.1f sentences=%d sentences_per_s=%.0f peak_rss_mb=%.1f\n",
        wall, bytes / 1e6 / wall, items, items / wall, rss / 1024 }'

if ((rss_kb >= MAX_RSS_MB * 1024)); then
    echo "FAIL: peak RSS $((rss_kb / 1024)) MB is at or above $MAX_RSS_MB MB" >&2
    exit 1
fi
