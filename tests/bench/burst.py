#!/usr/bin/env python3
"""A truly simultaneous burst: opens N connections first, then sends one GET on each at once.

Usage: burst.py HOST PORT PATH N
Prints: "<ok> <p50 ms> <max ms>" (ok = responses with status 200; times from the common start).
"""
import asyncio
import sys
import time


async def main(host, port, path, n):
    connected = 0
    all_connected = asyncio.Event()
    go = asyncio.Event()
    start = 0.0
    results = []

    async def one():
        nonlocal connected
        reader, writer = await asyncio.open_connection(host, port)
        connected += 1
        if connected == n:
            all_connected.set()
        await go.wait()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        results.append((data.split(b" ", 2)[1], (time.perf_counter() - start) * 1000))
        writer.close()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    try:
        await asyncio.wait_for(all_connected.wait(), timeout=30)
    except asyncio.TimeoutError:
        sys.exit(f"only {connected} of {n} connections opened")
    start = time.perf_counter()
    go.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    times = sorted(t for _, t in results)
    ok = sum(1 for status, _ in results if status == b"200")
    print(f"{ok} {times[(len(times) - 1) // 2]:.0f} {times[-1]:.0f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
