"""One stream, 1,000 subscribers split across two replicas sharing Redis, against the
same 1,000 subscribers on one replica with the memory backend (the baseline, same run).

The fake agent (benchmarks/fake_agent.py) stamps each line with CLOCK_MONOTONIC; the
subscribers (raw sockets in this process) read the same clock on arrival.

    python benchmarks/replica_bench.py [--subscribers 1000] [--lines 300] [--rate 50]"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stream_bench import Result, Scenario, free_port, post, start_gateway, subscribe, summary

from tests.fakes.redis_server import RedisServer


async def fan_out(ports: list[int], scenario: Scenario) -> Result:
    result = Result()
    started = post(
        ports[0],
        "/projects/bench/claude",
        {"prompt": f"{scenario.wait_s} {scenario.lines} {scenario.rate}"},
    )
    await asyncio.gather(
        *[
            subscribe(
                ports[i % len(ports)], started["stream_url"], b"event: done", scenario.lines, result
            )
            for i in range(scenario.subscribers)
        ]
    )
    return result


def measure(
    backend: str, replicas: int, scenario: Scenario, workspace: str, redis_url: str | None
) -> dict:
    flags = ["--subscriber-max-pending", "100000"]
    if backend == "redis":
        flags += ["--event-backend", "redis", "--redis-url", redis_url or ""]
    ports = [free_port() for _ in range(replicas)]
    servers = [start_gateway(port, workspace, *flags) for port in ports]
    try:
        result = asyncio.run(fan_out(ports, scenario))
    finally:
        for server in servers:
            server.terminate()
            server.wait(60)
    return summary(result, scenario)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50)
    args = parser.parse_args()
    scenario = Scenario("fan-out", 1, args.subscribers, args.lines, args.rate, 4.0)
    with tempfile.TemporaryDirectory() as folder:
        redis = RedisServer(Path(folder)).start()
        try:
            rows = {
                "memory, 1 replica": measure("memory", 1, scenario, folder, None),
                "redis, 2 replicas": measure("redis", 2, scenario, folder, redis.url),
            }
        finally:
            redis.stop()
    print(f"1 stream, {args.subscribers} subscribers, {args.lines} lines at {args.rate}/s")
    for name, row in rows.items():
        print(
            f"{name:18}  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
            f"  {row['events_per_s']:9.0f} events/s  complete {row['complete']}"
        )
    memory, redis_row = rows["memory, 1 replica"], rows["redis, 2 replicas"]
    print(
        f"ratio redis/memory: events/s {redis_row['events_per_s'] / memory['events_per_s']:.2f}"
        f", p99 {redis_row['p99_ms'] / memory['p99_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
