#!/usr/bin/env bash
# Render time of the results page's items table on a job of ITEMS (1,000,000) rows, on the
# embedded default (SQLite): submits a CSV of that many reviews (id, rating, text from the VADER
# ground truth, cycled), waits for it to succeed, then asks for REQUESTS (1,200) pages over one
# kept-alive connection, one at a time: every order (input, most positive, most negative) with
# every label filter (all, positive, neutral, negative), each view's first and last page and
# random pages between. Prints p50, p90, p99 and max in milliseconds per order and in all.
# Then COLD (24) times: restarts the server and times its first page (a random view and page),
# which reads the job's index from the database instead of the web process's cache.
# Usage: scripts/bench-browse.sh   (BIN and NO_BUILD=1 measure a given binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ITEMS="${ITEMS:-1000000}"
REQUESTS="${REQUESTS:-1200}"
COLD="${COLD:-24}"
export MAX_BODY_BYTES="${MAX_BODY_BYTES:-536870912}"

# shellcheck source=scripts/embedded-serve.sh
source scripts/embedded-serve.sh

echo "sentiq $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%FT%TZ)"

python3 - "$WORK/reviews.csv" "$ITEMS" <<'PY'
import csv, sys
texts = []
for name in ("amazonReviewSnippets", "tweets"):
    for line in open(f"tests/data/vader/{name}_GroundTruth.txt", encoding="utf-8"):
        parts = line.rstrip("\r\n").split("\t", 2)
        if len(parts) == 3:
            texts.append((parts[1], parts[2]))
with open(sys.argv[1], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["review_id", "rating", "review"])
    for i in range(int(sys.argv[2])):
        rating, text = texts[i % len(texts)]
        w.writerow([f"r{i:07d}", rating, text])
PY
echo "input: $(du -m "$WORK/reviews.csv" | cut -f1) MB, $ITEMS rows"

ID=$(curl -fsS -H 'Content-Type: text/csv' --data-binary @"$WORK/reviews.csv" "http://$ADDR/api/jobs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1200); do
    STATUS=$(curl -fsS "http://$ADDR/api/jobs/$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ "$STATUS" == queued || "$STATUS" == running ]] || break
    sleep 0.5
done
[[ "$STATUS" == succeeded ]] || { echo "the job ended $STATUS" >&2; exit 1; }
echo "job $ID succeeded; database $(du -m "$WORK/bench.db" | cut -f1) MB"
curl -fsS -o /dev/null -w 'items.csv download: %{size_download} bytes in %{time_total} s\n' "http://$ADDR/api/jobs/$ID/items.csv"

python3 - "$ADDR" "$ID" "$REQUESTS" <<'PY'
import http.client, random, re, statistics, sys, time
addr, job, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
def get(path):
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    assert r.status == 200, (path, r.status, body[:300])
    return ms, body.decode()
views = [(s, l) for s in ("position", "score_desc", "score_asc") for l in ("all", "positive", "neutral", "negative")]
pages = {}
for s, l in views:
    _, body = get(f"/analyses/{job}?sort={s}&label={l}")
    m = re.search(r'name="page" min="1" max="(\d+)"', body)
    pages[(s, l)] = int(m.group(1)) if m else 1
    table = body[body.index('id="items-table"'):]
    assert table[:table.index("</tbody>")].count("<tr><td") == 50, (s, l)
random.seed(7)
plan = []
for s, l in views:
    plan += [(s, l, 1), (s, l, pages[(s, l)])]
while len(plan) < n:
    s, l = random.choice(views)
    plan.append((s, l, random.randint(1, pages[(s, l)])))
random.shuffle(plan)
by = {}
for s, l, p in plan:
    ms, body = get(f"/analyses/{job}?sort={s}&label={l}&page={p}")
    assert "id=\"items-table\"" in body
    by.setdefault(s, []).append(ms)
def line(name, xs):
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]
    print(f"{name:<11} n={len(xs):<5} p50 {q(.5):6.1f}  p90 {q(.9):6.1f}  p99 {q(.99):6.1f}  max {xs[-1]:6.1f} ms")
print("pages per view:", {f"{s}/{l}": p for (s, l), p in pages.items()})
for s in ("position", "score_desc", "score_asc"):
    line(s, by[s])
line("all", [x for xs in by.values() for x in xs])
PY

echo
echo "== first page after a restart (the index read from the database), $COLD restarts"
for i in $(seq "$COLD"); do
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    serve_embedded
    python3 - "$ADDR" "$ID" "$i" >> "$WORK/cold.txt" <<'PY'
import http.client, random, sys, time
addr, job, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(seed)
sort = random.choice(("position", "score_desc", "score_asc"))
label = random.choice(("all", "positive", "neutral", "negative"))
page = random.randint(1, 3413)
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
t0 = time.perf_counter()
conn.request("GET", f"/analyses/{job}?sort={sort}&label={label}&page={page}")
r = conn.getresponse(); r.read()
assert r.status == 200
print(f"{(time.perf_counter() - t0) * 1000:.1f}")
PY
done
sort -n "$WORK/cold.txt" | awk '{a[NR]=$1} END {printf "cold       n=%-5d p50 %6.1f  p90 %6.1f  max %6.1f ms\n", NR, a[int(NR*0.5)+1], a[int(NR*0.9)+1], a[NR]}'
