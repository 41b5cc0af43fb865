#!/usr/bin/env bash
# Scorer throughput on one core: sentiq against the Python reference (vaderSentiment 3.3.2).
#
# Input: target/bench/tweets100k.txt, the texts of the VADER tweets ground truth (third TSV
# field, CR stripped) repeated in order until exactly 100,000 lines.
#
# Both sides are pinned to core 0 (taskset -c 0) and run alternately, 3 rounds each
# (ref, sentiq, ref, sentiq, ref, sentiq), so slow phases of a noisy machine hit both:
#   reference: python3 vader_reference.py --bench --format lines FILE
#              -> its own sentences_per_s (scoring loop only: no interpreter start, no file
#                 reading, no lexicon load, no output)
#   sentiq:    taskset -c 0 target/release/sentiq --threads 1 score FILE > /dev/null
#              -> 100000 / wall seconds of the whole process (start, UTF-8 check, read,
#                 scoring, JSON output); each round is a hyperfine run (1 warm-up + RUNS runs)
#                 when hyperfine is installed, else RUNS timed runs; the round's median counts.
# The result of each side is the median of its 3 rounds; the ratio is sentiq / reference.
#
# Environment:
#   MIN_RATIO   exit 1 when sentiq/reference is below this (default 0: report only)
#   ROUNDS      rounds per side (default 3)
#   RUNS        timed sentiq runs per round (default 10 with hyperfine, 5 without)
#   NO_HYPERFINE  1: time with the date loop even when hyperfine is installed
#   VADER_REFERENCE  path of vader_reference.py (default ../shared/tools/vader_reference.py)
#
# Usage: scripts/bench-vs-reference.sh            (from anywhere; works from the repo root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MIN_RATIO="${MIN_RATIO:-0}"
ROUNDS="${ROUNDS:-3}"
have_hyperfine() { [[ "${NO_HYPERFINE:-0}" != 1 ]] && command -v hyperfine >/dev/null; }
# Timed sentiq runs per round: 10 with hyperfine, 5 with the date loop.
if have_hyperfine; then RUNS="${RUNS:-10}"; else RUNS="${RUNS:-5}"; fi
LINES=100000
BENCH_DIR=target/bench
INPUT="$BENCH_DIR/tweets100k.txt"
BIN=target/release/sentiq

log() { printf '%s\n' "$*" >&2; }

# --- inputs -----------------------------------------------------------------------------------
TWEETS=tests/data/vader/tweets_GroundTruth.txt
if [[ ! -f "$TWEETS" ]]; then
    TWEETS=../shared/corpus/vader-groundtruth/tweets_GroundTruth.txt
fi
[[ -f "$TWEETS" ]] || { log "error: tweets_GroundTruth.txt not found"; exit 2; }

REFERENCE="${VADER_REFERENCE:-}"
if [[ -z "$REFERENCE" ]]; then
    for cand in ../shared/tools/vader_reference.py /work/shared/tools/vader_reference.py; do
        if [[ -f "$cand" ]]; then REFERENCE="$cand"; break; fi
    done
fi
[[ -n "$REFERENCE" && -f "$REFERENCE" ]] || { log "error: vader_reference.py not found (set VADER_REFERENCE)"; exit 2; }

command -v taskset >/dev/null || { log "error: taskset (util-linux) is needed"; exit 2; }

# --- build and reference install ------------------------------------------------------------
log "== cargo build --release"
cargo build --release >&2

if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("vaderSentiment") != "3.3.2")' 2>/dev/null; then
    log "== pip install vaderSentiment==3.3.2"
    python3 -m pip install --quiet vaderSentiment==3.3.2 >&2
fi

# --- the 100k-line input ----------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
cut -f3- "$TWEETS" | tr -d '\r' |
    awk -v n="$LINES" '{ t[NR] = $0 } END { for (i = 0; i < n; i++) print t[i % NR + 1] }' \
        > "$INPUT.tmp"
mv "$INPUT.tmp" "$INPUT"
got=$(wc -l < "$INPUT")
[[ "$got" -eq "$LINES" ]] || { log "error: $INPUT has $got lines, expected $LINES"; exit 2; }

# Sanity: sentiq gives exactly one score line per input line.
out_lines=$("$BIN" --threads 1 score "$INPUT" | wc -l)
[[ "$out_lines" -eq "$LINES" ]] || { log "error: sentiq printed $out_lines lines for $LINES"; exit 2; }

# --- timing -----------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if have_hyperfine; then
    TIMER="hyperfine $(hyperfine --version | awk '{print $2}') (1 warm-up + $RUNS runs per round)"
else
    TIMER="date +%s.%N loop ($RUNS runs per round)"
fi

# Prints the median wall seconds of one sentiq round.
time_sentiq() {
    local cmd="taskset -c 0 $BIN --threads 1 score $INPUT > /dev/null"
    if have_hyperfine; then
        local json="$BENCH_DIR/hyperfine.json"
        hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$json" "$cmd" >&2
        python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$json"
    else
        local i t0 t1
        for ((i = 0; i < RUNS; i++)); do
            t0=$(date +%s.%N)
            taskset -c 0 "$BIN" --threads 1 score "$INPUT" > /dev/null
            t1=$(date +%s.%N)
            awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
        done | median
    fi
}

# Prints the reference's sentences_per_s for one run.
run_reference() {
    local err
    err=$(taskset -c 0 python3 "$REFERENCE" --bench --format lines "$INPUT" 2>&1 >/dev/null)
    log "   $err"
    local sps
    sps=$(sed -n 's/.*sentences_per_s=\([0-9.]*\).*/\1/p' <<<"$err" | tail -n 1)
    [[ -n "$sps" ]] || { log "error: no sentences_per_s in the reference output"; exit 2; }
    local n
    n=$(sed -n 's/.*sentences=\([0-9]*\).*/\1/p' <<<"$err" | tail -n 1)
    [[ "$n" -eq "$LINES" ]] || { log "error: the reference scored $n sentences, expected $LINES"; exit 2; }
    echo "$sps"
}

# Prints sentiq's own scoring-loop rate (score --bench), measured as the reference measures its own.
run_sentiq_loop() {
    local err
    err=$(taskset -c 0 "$BIN" --threads 1 score --bench "$INPUT" 2>&1 >/dev/null)
    log "   $err"
    sed -n 's/.*sentences_per_s=\([0-9.]*\).*/\1/p' <<<"$err" | tail -n 1
}

ref_rates=()
sq_secs=()
loop_rates=()
for ((r = 1; r <= ROUNDS; r++)); do
    log "== round $r/$ROUNDS: reference"
    ref_rates+=("$(run_reference)")
    log "== round $r/$ROUNDS: sentiq"
    sq_secs+=("$(time_sentiq)")
    loop_rates+=("$(run_sentiq_loop)")
done

# --- report -----------------------------------------------------------------------------------
ref_med=$(printf '%s\n' "${ref_rates[@]}" | median)
sq_med_s=$(printf '%s\n' "${sq_secs[@]}" | median)
sq_med=$(awk -v s="$sq_med_s" -v n="$LINES" 'BEGIN { printf "%.1f", n / s }')
ratio=$(awk -v a="$sq_med" -v b="$ref_med" 'BEGIN { printf "%.2f", a / b }')

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    commit="$commit+dirty"
fi

echo
echo "Scorer vs the Python reference (one core, taskset -c 0)"
echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:   $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "sentiq:    $commit, rustc $(rustc --version | awk '{print $2}')"
echo "reference: vaderSentiment $(python3 -c 'import importlib.metadata as m; print(m.version("vaderSentiment"))'), $(python3 --version)"
echo "input:     $INPUT ($LINES lines, $(wc -c < "$INPUT") bytes, from $TWEETS)"
echo "timer:     $TIMER"
echo
printf '| %-6s | %-26s | %-24s | %-18s |\n' round "reference sentences/s" "sentiq median s" "sentiq sentences/s"
printf '|-%s-|-%s-|-%s-|-%s-|\n' ------ -------------------------- ------------------------ ------------------
for ((r = 0; r < ROUNDS; r++)); do
    printf '| %-6s | %26.1f | %24.4f | %18.1f |\n' "$((r + 1))" "${ref_rates[r]}" "${sq_secs[r]}" \
        "$(awk -v s="${sq_secs[r]}" -v n="$LINES" 'BEGIN { print n / s }')"
done
printf '| %-6s | %26.1f | %24.4f | %18.1f |\n' median "$ref_med" "$sq_med_s" "$sq_med"
echo
loop_med=$(printf '%s\n' "${loop_rates[@]}" | median)
loop_ratio=$(awk -v a="$loop_med" -v b="$ref_med" 'BEGIN { printf "%.2f", a / b }')
echo "sentiq scoring loop (score --bench), per round: ${loop_rates[*]}"
echo
echo "reference_sentences_per_s=$ref_med sentiq_sentences_per_s=$sq_med ratio=$ratio"
echo "ratio sentiq/reference: ${ratio}x (sentiq: whole process; reference: scoring loop only)"
echo "sentiq_loop_sentences_per_s=$loop_med loop_ratio=$loop_ratio"
echo "ratio sentiq/reference, scoring loop against scoring loop: ${loop_ratio}x"

if awk -v r="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(r + 0 < m + 0) }'; then
    echo "FAIL: ratio ${ratio}x is under MIN_RATIO=${MIN_RATIO}" >&2
    exit 1
fi
