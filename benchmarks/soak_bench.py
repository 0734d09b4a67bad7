"""Soak and flood figures for the gateway (`agent-gateway serve`, memory backend, local runner).

    python benchmarks/soak_bench.py            # every scenario
    python benchmarks/soak_bench.py --only frozen

- cycles: 10,000 SSE connects and disconnects on a live stream (half read the first event,
  half hang up at once); the gateway's descriptors, RSS and open subscribers before/after.
- frozen: 100 readers of one stream (3,000 lines of 2 KiB at 300/s), without and then with
  a client that connects and never reads; the readers' p99 latency in both (the first is
  the baseline of the ratio) and whether the frozen one was cut off.
- flood: an agent writing ~300 MiB as fast as it can, as lines, then as one line without
  a newline; the gateway's peak RSS against its RSS at rest, measured in the same run.
- cancels: 100 running agents cancelled at once; answer times and agent processes left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_bench import AGENT, ROOT, Result, free_port, post, start_gateway, subscribe

FLOOD_LINES = f"{sys.executable} -c \"import sys; sys.stdin.read(); w = sys.stdout.write; [w('x' * 1023 + '\\n') for _ in range(300 * 1024)]\""  # noqa: E501
FLOOD_ONE_LINE = f"{sys.executable} -c \"import sys; sys.stdin.read(); w = sys.stdout.buffer.write; [w(b'y' * 1048576) for _ in range(300)]\""  # noqa: E501


@contextmanager
def gateway(workspace: str, *flags: str, command: str = AGENT) -> Iterator[tuple[int, int]]:
    port = free_port()
    server = start_gateway(port, workspace, *flags, command=command)
    try:
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(60)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def p99_ms(latencies_ns: list[int]) -> float:
    ordered = sorted(latencies_ns)
    return ordered[int(len(ordered) * 0.99) - 1] / 1e6


# --- scenarios --------------------------------------------------------------------------------


async def connect_and_drop(port: int, path: str, read_first: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    if read_first:
        received = b""
        while b"event: output" not in received:
            chunk = await reader.read(65536)
            if not chunk:
                break
            received += chunk
    writer.close()


def cycles(workspace: str, count: int = 10_000, parallel: int = 8) -> None:
    with gateway(workspace) as (port, pid):
        stream = post(port, "/projects/soak/claude", {"prompt": "0 100000 2"})["stream_url"]
        time.sleep(1)

        async def run_cycles(n: int) -> None:
            queue = iter(range(n))

            async def worker() -> None:
                for i in queue:
                    await connect_and_drop(port, stream, read_first=i % 2 == 0)

            await asyncio.gather(*(worker() for _ in range(parallel)))

        asyncio.run(run_cycles(200))  # warm up
        time.sleep(1)
        before = fds(pid), status_kib(pid, "VmRSS")
        began = time.monotonic()
        asyncio.run(run_cycles(count))
        elapsed = time.monotonic() - began
        time.sleep(2)  # let the last disconnects land
        after = fds(pid), status_kib(pid, "VmRSS")
        subscribers = metric(port, "agent_gateway_sse_subscribers")
    print(
        f"cycles: {count} SSE connect/disconnect in {elapsed:.1f} s ({count / elapsed:.0f}/s); "
        f"gateway descriptors {before[0]} -> {after[0]}; RSS {before[1] / 1024:.1f} -> "
        f"{after[1] / 1024:.1f} MiB; open subscribers after: {subscribers:.0f}"
    )


async def readers_with_frozen(port: int, frozen: bool) -> tuple[Result, bool | None]:
    started = post(port, "/projects/soak/claude", {"prompt": "2 3000 300 2048"})
    path = started["stream_url"]
    stuck = None
    if frozen:
        import socket

        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    result = Result()
    await asyncio.gather(*(subscribe(port, path, b"event: done", 3000, result) for _ in range(100)))
    cut = None
    if stuck is not None:  # drain what the kernel holds: does the stream end without done?
        stuck.settimeout(30)
        received = b""
        while chunk := stuck.recv(1 << 20):
            received += chunk
        cut = b"event: done" not in received
        stuck.close()
    return result, cut


def frozen(workspace: str) -> None:
    with gateway(workspace, "--send-timeout-s", "2") as (port, _):
        baseline, _ = asyncio.run(readers_with_frozen(port, frozen=False))
        with_frozen, cut = asyncio.run(readers_with_frozen(port, frozen=True))
    base, stressed = p99_ms(baseline.latencies_ns), p99_ms(with_frozen.latencies_ns)
    print(
        f"frozen: 100 readers x 3000 lines; p99 without a frozen client {base:.2f} ms, with one "
        f"{stressed:.2f} ms (ratio {stressed / base:.2f}; target <= 2); complete "
        f"{baseline.complete}/100 and {with_frozen.complete}/100; frozen client cut off: {cut}"
    )


def flood(workspace: str, command: str, label: str) -> None:
    with gateway(workspace, command=command) as (port, pid):
        time.sleep(1)
        at_rest = status_kib(pid, "VmRSS")
        began = time.monotonic()
        run = post(port, "/projects/flood/claude", {"prompt": "flood"})
        while True:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/projects/flood/runs/{run['run_id']}", timeout=10
            ) as response:
                if b'"status":"running"' not in response.read():
                    break
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        peak = status_kib(pid, "VmHWM")
        published = metric(port, "agent_gateway_events_published_total")
    print(
        f"flood ({label}): ~300 MiB in {elapsed:.1f} s, {published:.0f} events; gateway RSS at "
        f"rest {at_rest / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
        f"(+{(peak - at_rest) / 1024:.1f} MiB; retention: 10,000 events / 64 MiB per stream)"
    )


def cancels(workspace: str) -> None:
    with gateway(workspace, "--max-runs-per-project", "100") as (port, _):
        runs = [post(port, "/projects/soak/claude", {"prompt": "1000 1 1"}) for _ in range(100)]
        time.sleep(2)
        agents = len(agent_processes(workspace))

        async def cancel_all() -> list[float]:
            loop = asyncio.get_running_loop()

            def timed(url: str) -> float:
                began = time.monotonic()
                post(port, url, {})
                return time.monotonic() - began

            return await asyncio.gather(
                *(loop.run_in_executor(None, timed, run["cancel_url"]) for run in runs)
            )

        began = time.monotonic()
        times = sorted(asyncio.run(cancel_all()))
        total = time.monotonic() - began
        left = len(agent_processes(workspace))
    print(
        f"cancels: 100 at once ({agents} agent processes running) answered in {total:.2f} s; "
        f"each p50 {statistics.median(times):.2f} s, max {times[-1]:.2f} s; "
        f"agent processes left: {left}"
    )


def agent_processes(workspace: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/cwd").startswith(workspace):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cycles", "frozen", "flood", "cancels"])
    args = parser.parse_args()
    os.chdir(ROOT)
    scenarios = {
        "cycles": cycles,
        "frozen": frozen,
        "flood": lambda w: (
            flood(w, FLOOD_LINES, "1 KiB lines"),
            flood(w, FLOOD_ONE_LINE, "one line, no newline"),
        ),
        "cancels": cancels,
    }
    for name, scenario in scenarios.items():
        if args.only in (None, name):
            with tempfile.TemporaryDirectory() as workspace:
                scenario(workspace)


if __name__ == "__main__":
    main()
