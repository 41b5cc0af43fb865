#!/usr/bin/env python3
"""Submit-to-succeeded latency of one-sentence jobs against a running sentiq.

For each of N jobs: POST /api/jobs {"text": ...} over a kept-alive connection, then poll
GET /api/jobs/{id} as fast as the connection allows until the status is final. The time from
sending the POST to reading the first final status is the job's latency. Prints the median,
p90 and p99 in milliseconds and the count of jobs that did not succeed.

Usage: bench_http_latency.py HOST:PORT [N]
With BENCH_AUTHORIZATION in the environment, every request sends it as `Authorization`.
"""
import http.client
import json
import os
import statistics
import sys
import time


def main():
    addr = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"text": "The service was fast and the staff were lovely!"})
    auth = os.environ.get("BENCH_AUTHORIZATION")
    headers = {"Authorization": auth} if auth else {}
    latencies, failed = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/api/jobs", body, {"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        job = json.loads(r.read())
        if r.status != 202:
            sys.exit(f"POST /api/jobs answered {r.status}: {job}")
        url = job["status_url"]
        while True:
            conn.request("GET", url, headers=headers)
            r = conn.getresponse()
            status = json.loads(r.read())["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
        latencies.append((time.perf_counter() - t0) * 1000)
        failed += status != "succeeded"
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
    print(f"jobs={n} failed={failed} median_ms={statistics.median(latencies):.2f} "
          f"p90_ms={q(0.90):.2f} p99_ms={q(0.99):.2f}")


if __name__ == "__main__":
    main()
