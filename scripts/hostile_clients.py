"""Hostile clients for scripts/bench-hostile.sh, for SECONDS seconds against ADDR (host:port):
IDLE connections that never send a byte (reopened when the server closes them), STREAMS event
streams of job JOB held open, SLOW submissions whose body comes a byte a second. Prints what
the server did with each kind.

Usage: python3 scripts/hostile_clients.py ADDR SECONDS IDLE STREAMS SLOW JOB
"""
import asyncio
import collections
import sys

host, port = sys.argv[1].rsplit(":", 1)
seconds, idle, streams, slow = (float(sys.argv[2]), *map(int, sys.argv[3:6]))
job = sys.argv[6]
seen = collections.Counter()


async def idle_client(stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            seen["idle: connect failed"] += 1
            await asyncio.sleep(0.5)
            continue
        seen["idle: opened"] += 1
        closed = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait([closed, asyncio.ensure_future(stop.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        if closed in done:
            seen["idle: closed by the server"] += 1
        writer.close()


async def stream_client(stop):
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /api/jobs/{job}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).decode().split(" ")[1:2]
        seen[f"stream: {status[0] if status else 'no answer'}"] += 1
        reading = asyncio.ensure_future(reader.read(-1))
        await asyncio.wait([reading, asyncio.ensure_future(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        writer.close()
    except OSError as e:
        seen[f"stream: {type(e).__name__}"] += 1


async def slow_client(stop):
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        answer = asyncio.ensure_future(reader.readline())
        while not answer.done() and not stop.is_set():
            writer.write(b"a")
            await writer.drain()
            await asyncio.wait([answer], timeout=1)
        status = answer.result().decode().split(" ")[1:2] if answer.done() else ["none yet"]
        seen[f"slow body: {status[0] if status else 'closed'}"] += 1
        writer.close()
    except OSError as e:
        seen[f"slow body: {type(e).__name__}"] += 1


async def main():
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(f(stop)) for f, n in
             [(idle_client, idle), (stream_client, streams), (slow_client, slow)] for _ in range(n)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    for k, v in sorted(seen.items()):
        print(f"  {k}: {v}")


asyncio.run(main())
