#!/usr/bin/env bash
# Regenerate the reference scores in tests/data/vader/ from the original Python VADER
# (PyPI vaderSentiment==3.3.2):
#   hard_cases.txt                                 (rewritten by scripts/make_hard_cases.py)
#   hard_cases.reference.jsonl
#   tweets_GroundTruth.reference.jsonl
#   amazonReviewSnippets_GroundTruth.reference.jsonl
#
# Usage: bash scripts/regen-reference.sh        (from any directory)
#
# Environment:
#   PYTHON                 interpreter to use (default: python3). Must be CPython < 3.12:
#                          from 3.12 on, sum() of floats is compensated, which changes the
#                          sign of some near-zero compounds (see tests/data/vader/README.md).
#   VADER_REFERENCE_TOOL   path of vader_reference.py (default: ../shared/tools/ next to the repo)
#   ALLOW_ANY_PYTHON=1     skip the interpreter version check
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
TOOL="${VADER_REFERENCE_TOOL:-$ROOT/../shared/tools/vader_reference.py}"
DATA="tests/data/vader"

if [[ ! -f "$TOOL" ]]; then
    echo "error: reference tool not found: $TOOL (set VADER_REFERENCE_TOOL)" >&2
    exit 1
fi

if [[ "${ALLOW_ANY_PYTHON:-0}" != 1 ]]; then
    "$PYTHON" - <<'EOF'
import platform, sys
if platform.python_implementation() != "CPython" or not (3, 8) <= sys.version_info[:2] < (3, 12):
    sys.exit("error: need CPython 3.8-3.11 for the reference (found %s %s); "
             "set PYTHON, or ALLOW_ANY_PYTHON=1 to go on anyway"
             % (platform.python_implementation(), platform.python_version()))
EOF
fi

if ! "$PYTHON" -c 'import importlib.metadata as m, sys; sys.exit(m.version("vaderSentiment") != "3.3.2")' 2>/dev/null; then
    echo "installing vaderSentiment==3.3.2 for $PYTHON" >&2
    "$PYTHON" -m pip install --quiet "vaderSentiment==3.3.2"
fi

"$PYTHON" scripts/make_hard_cases.py "$DATA/hard_cases.txt"

# Score one input file into OUT, through a temporary file so a failure leaves no half file.
score() {
    local format="$1" input="$2" out="$3"
    "$PYTHON" "$TOOL" --format "$format" "$input" > "$out.tmp"
    mv "$out.tmp" "$out"
}

score lines "$DATA/hard_cases.txt" "$DATA/hard_cases.reference.jsonl"
score tsv "$DATA/tweets_GroundTruth.txt" "$DATA/tweets_GroundTruth.reference.jsonl"
score tsv "$DATA/amazonReviewSnippets_GroundTruth.txt" "$DATA/amazonReviewSnippets_GroundTruth.reference.jsonl"

# One result per input line (hard cases: every line, blank ones too).
"$PYTHON" - "$DATA" <<'EOF'
import sys
data = sys.argv[1]

def count_lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines

def check(inp, out, blank_lines_count):
    lines = count_lines(f"{data}/{inp}")
    want = len(lines) if blank_lines_count else sum(1 for l in lines if l.strip())
    got = len(count_lines(f"{data}/{out}"))
    if got != want:
        sys.exit(f"error: {out} has {got} lines, expected {want}")
    print(f"{out}: {got} results", file=sys.stderr)

check("hard_cases.txt", "hard_cases.reference.jsonl", True)
check("tweets_GroundTruth.txt", "tweets_GroundTruth.reference.jsonl", False)
check("amazonReviewSnippets_GroundTruth.txt", "amazonReviewSnippets_GroundTruth.reference.jsonl", False)
EOF
