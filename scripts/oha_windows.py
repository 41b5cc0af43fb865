"""Print the p99 latency of each 250 ms of an oha run, from the per-request records that
`oha --db-url FILE` keeps (latency counted from each request's scheduled start).

Usage: python3 scripts/oha_windows.py FILE
"""
import sqlite3
import sys

rows = sqlite3.connect(sys.argv[1]).execute("SELECT start_latency_correction, end FROM oha").fetchall()
t0, windows = min(r[0] for r in rows), {}
for start, end in rows:
    windows.setdefault(int((start - t0) * 4), []).append((end - start) * 1000)
print("p99 (ms) of each 250 ms:",
      " ".join(f"{sorted(v)[max(0, int(len(v) * 0.99) - 1)]:.0f}" for _, v in sorted(windows.items())))
