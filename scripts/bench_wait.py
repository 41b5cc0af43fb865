#!/usr/bin/env python3
"""Waiting (`Prefer: wait`) against polling, and many long-polls at once, against a running sentiq.

roundtrip ADDR N [N_RETRY_AFTER]
    One-sentence jobs, one client, kept-alive connections, the ways interleaved job by job so a
    slow phase of the machine hits each alike. Each job's round trip runs from sending the POST
    to holding the final job:
      wait      POST with `Prefer: wait=5` (expects 200 with the final job);
      poll100   POST, then GET the status every 100 ms until final;
      tight     POST, then GET the status back to back until final;
      retry     POST, then GET after each answer's Retry-After (1 s) until final (N_RETRY_AFTER
                jobs, default N / 10).
    Prints p50 and p99 in ms and the requests per job of each.

longpoll ADDR PID N WAIT
    Submits N one-sentence jobs and waits until each is final (queued, when no worker runs
    them: the server's /metrics counts no start), then opens N connections at once, each `GET /api/jobs/{id}` with its current ETag in `If-None-Match` and
    `Prefer: wait=WAIT`, so each is held WAIT seconds and answered 304. Prints the server's RSS
    (process PID) before, while they wait and after, its CPU time while they wait, and how the
    answers came (statuses, earliest and latest).
"""
import asyncio
import http.client
import json
import sys
import time

TEXT = json.dumps({"text": "The service was fast and the staff were lovely!"})
FINAL = ("succeeded", "failed", "cancelled")


def request(conn, method, url, body=None, headers=None):
    conn.request(method, url, body, headers or {})
    r = conn.getresponse()
    return r, r.read()


def submit(conn, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return request(conn, "POST", "/api/jobs", TEXT, h)


def by_waiting(conn):
    r, body = submit(conn, {"Prefer": "wait=5"})
    if r.status != 200:
        sys.exit(f"Prefer: wait=5 answered {r.status}: {body[:200]}")
    return 1


def by_polling(conn, pause):
    r, body = submit(conn)
    if r.status != 202:
        sys.exit(f"POST /api/jobs answered {r.status}: {body[:200]}")
    url, requests = json.loads(body)["status_url"], 1
    delay = pause(r)
    while True:
        if delay:
            time.sleep(delay)
        r, body = request(conn, "GET", url)
        requests += 1
        if json.loads(body)["status"] in FINAL:
            return requests
        delay = pause(r)


WAYS = {
    "wait": by_waiting,
    "poll100": lambda c: by_polling(c, lambda r: 0.1),
    "tight": lambda c: by_polling(c, lambda r: 0),
    "retry": lambda c: by_polling(c, lambda r: float(r.getheader("Retry-After") or 1)),
}


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(p * len(sorted_ms)))]


def roundtrip(addr, n, n_retry):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times = {w: [] for w in WAYS}
    requests = {w: 0 for w in WAYS}
    for i in range(n):
        for way, run in WAYS.items():
            if way == "retry" and i % max(1, n // n_retry) != 0:
                continue
            t0 = time.perf_counter()
            requests[way] += run(conn)
            times[way].append((time.perf_counter() - t0) * 1000)
    for way, ms in times.items():
        ms.sort()
        print(f"{way:<8} jobs={len(ms):<4} p50_ms={pct(ms, 0.5):8.2f} p99_ms={pct(ms, 0.99):8.2f} "
              f"requests_per_job={requests[way] / len(ms):.1f}")


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
    return rss_kb / 1024, cpu_s


async def held_get(host, port, path, etag, wait):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: {etag}\r\n"
                  f"Prefer: wait={wait}\r\nConnection: close\r\n\r\n").encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    answered = time.perf_counter()
    await reader.read()
    writer.close()
    return status, answered


async def longpoll(addr, pid, n, wait):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    urls = [json.loads(submit(conn)[1])["status_url"] for _ in range(n)]
    time.sleep(1)
    metrics = request(conn, "GET", "/metrics")[1].decode()
    settled = FINAL if "sentiq_jobs_started_total{" in metrics else FINAL + ("queued",)
    etags = []
    for url in urls:
        while True:
            r, body = request(conn, "GET", url)
            if json.loads(body)["status"] in settled:
                etags.append(r.getheader("ETag"))
                break
            time.sleep(0.05)
    conn.close()
    time.sleep(1)
    rss_before, _ = proc_stats(pid)
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(held_get(host, int(port), u, e, wait)) for u, e in zip(urls, etags)]
    await asyncio.sleep(wait / 2)
    rss_during, cpu_mid = proc_stats(pid)
    await asyncio.sleep(wait / 4)
    rss_during2, cpu_late = proc_stats(pid)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    answered = [r for r in results if not isinstance(r, Exception)]
    statuses = {}
    for s, _ in answered:
        statuses[s] = statuses.get(s, 0) + 1
    times = sorted(t - t0 for _, t in answered)
    time.sleep(1)
    rss_after, _ = proc_stats(pid)
    waiting_cpu = (cpu_late - cpu_mid) / (wait / 4)
    print(f"long-polls={n} wait={wait}s statuses={statuses} errors={len(errors)} "
          f"answered_after_s=[{times[0]:.2f} .. {times[-1]:.2f}]" if times else f"errors={errors[:3]}")
    print(f"server RSS MB: before={rss_before:.1f} during={rss_during:.1f}/{rss_during2:.1f} "
          f"after={rss_after:.1f}; per long-poll {(max(rss_during, rss_during2) - rss_before) * 1024 / n:.1f} KB")
    print(f"server CPU while they wait: {waiting_cpu * 100:.1f} % of one core")


def main():
    cmd, addr = sys.argv[1], sys.argv[2]
    if cmd == "roundtrip":
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
        n_retry = int(sys.argv[4]) if len(sys.argv) > 4 else max(1, n // 10)
        roundtrip(addr, n, n_retry)
    elif cmd == "longpoll":
        asyncio.run(longpoll(addr, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
