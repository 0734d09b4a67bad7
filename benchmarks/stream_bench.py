"""Agent-line-to-client latency and delivered events/s: the gateway against a bare relay.

Both servers run the same fake agent (benchmarks/fake_agent.py), which stamps each
stream-json line with CLOCK_MONOTONIC; subscribers (raw sockets in one asyncio loop, in this
process) read the same clock on arrival. The baseline is benchmarks/relay.py, the leanest
pipe-to-SSE relay on uvicorn, measured in the same run, so ratios survive a noisy machine.

    python benchmarks/stream_bench.py                 # every scenario
    python benchmarks/stream_bench.py --quick         # a small smoke run

Scenarios: "throughput" (20 runs x 5 subscribers flooding lines as fast as they can),
"latency" (100 concurrent runs, one line each 10 ms; "latency-light": each 20 ms) and
"starts" (300 runs started at once, one line each). Each prints p50/p99 latency,
delivered events/s, whether every subscriber got every event in order, the server's peak
RSS and its own CPU time (user + system, from /proc) per 1,000 delivered events and per
run (from its start to its end; "per start" is the CPU of the start burst alone): the
steadiest figure on a noisy machine, so it is the one to compare first."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENT = shlex.join([sys.executable, str(ROOT / "benchmarks" / "fake_agent.py")])
STAMP = re.compile(rb"T(\d{10,})")


@dataclass
class Scenario:
    name: str
    runs: int
    subscribers: int
    lines: int
    rate: float  # lines per second per run; 0 = as fast as possible
    wait_s: float


@dataclass
class Result:
    latencies_ns: list[int] = field(default_factory=list)
    events: int = 0
    complete: int = 0
    first_ns: int | None = None
    last_ns: int = 0
    peak_rss_kib: int = 0
    cpu_s: float = 0.0  # the server's CPU time while the scenario ran
    start_cpu_s: float = 0.0  # the server's CPU time from the first start to the last answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    """This environment without gateway settings, which would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENT_GATEWAY_")}


def start_server(kind: str, port: int, workspace: str) -> subprocess.Popen:
    if kind == "relay":
        argv = [
            sys.executable,
            str(ROOT / "benchmarks" / "relay.py"),
            "--port",
            str(port),
            "--command",
            AGENT,
        ]
        return launch(argv, clean_env(), port)
    return start_gateway(port, workspace, "--max-runs", "1000")


def start_gateway(port: int, workspace: str, *flags: str, command: str = AGENT) -> subprocess.Popen:
    """`agent-gateway serve` with the fake agent (or `command`) as its only provider."""
    argv = [
        sys.executable,
        "-m",
        "handlers.cli",
        "serve",
        "--port",
        str(port),
        "--claude-command",
        command,
        "--workspace-root",
        workspace,
        "--providers",
        "claude-code",
        "--log-level",
        "warning",
        *flags,
    ]
    return launch(argv, clean_env(), port)


def launch(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    """Starts a server process and returns once its port accepts connections."""
    server = subprocess.Popen(argv, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"{argv[:4]} did not start")


def post(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


async def subscribe(port: int, path: str, end_marker: bytes, expected: int, result: Result):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    buffer = b""
    stamps: list[int] = []
    ended = False
    while chunk := await reader.read(256 * 1024):
        now = time.monotonic_ns()
        buffer += chunk
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            continue
        complete, buffer = buffer[: cut + 2], buffer[cut + 2 :]
        for match in STAMP.finditer(complete):
            sent = int(match.group(1))
            stamps.append(sent)
            result.latencies_ns.append(now - sent)
        if stamps:
            result.first_ns = min(result.first_ns or now, now)
            result.last_ns = max(result.last_ns, now)
        if end_marker in complete:
            ended = True
            break
    writer.close()
    result.events += len(stamps)
    if ended and len(stamps) == expected and stamps == sorted(stamps):
        result.complete += 1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(kind: str, port: int, scenario: Scenario, pid: int) -> Result:
    result = Result()
    cpu_before = cpu_seconds(pid)
    prompt = f"{scenario.wait_s} {scenario.lines} {scenario.rate}"
    loop = asyncio.get_running_loop()
    if kind == "relay":
        starts = [
            loop.run_in_executor(None, post, port, "/runs", {"prompt": prompt})
            for _ in range(scenario.runs)
        ]
        marker = b"event: end"
    else:
        starts = [
            loop.run_in_executor(
                None, post, port, f"/projects/bench-{i}/claude", {"prompt": prompt}
            )
            for i in range(scenario.runs)
        ]
        marker = b"event: done"
    urls = [started["stream_url"] for started in await asyncio.gather(*starts)]
    result.start_cpu_s = cpu_seconds(pid) - cpu_before
    await asyncio.gather(
        *[
            subscribe(port, url, marker, scenario.lines, result)
            for url in urls
            for _ in range(scenario.subscribers)
        ]
    )
    result.cpu_s = cpu_seconds(pid) - cpu_before
    return result


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(kind: str, scenario: Scenario) -> Result:
    port = free_port()
    with tempfile.TemporaryDirectory() as workspace:
        server = start_server(kind, port, workspace)
        try:
            result = asyncio.run(drive(kind, port, scenario, server.pid))
            result.peak_rss_kib = peak_rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    return result


def summary(result: Result, scenario: Scenario) -> dict:
    latencies = sorted(result.latencies_ns)
    elapsed = max((result.last_ns - (result.first_ns or 0)) / 1e9, 1e-9)
    return {
        "p50_ms": statistics.median(latencies) / 1e6 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] / 1e6 if latencies else float("nan"),
        "events_per_s": result.events / elapsed,
        "complete": f"{result.complete}/{scenario.runs * scenario.subscribers}",
        "peak_rss_mib": result.peak_rss_kib / 1024,
        # after the start burst: what streaming costs
        "cpu_ms_per_1000": (result.cpu_s - result.start_cpu_s) * 1e6 / max(result.events, 1),
        "start_cpu_ms": result.start_cpu_s * 1000 / scenario.runs,
        "run_cpu_ms": result.cpu_s * 1000 / scenario.runs,  # everything, start to end
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--only", choices=["throughput", "latency", "latency-light", "starts"], help="one scenario"
    )
    args = parser.parse_args()
    if args.quick:
        scenarios = [
            Scenario("throughput", 4, 2, 1000, 0, 1.0),
            Scenario("latency", 10, 1, 40, 100, 1.5),
            Scenario("starts", 20, 1, 1, 0, 2.0),
        ]
    else:
        scenarios = [
            Scenario("throughput", 20, 5, 1000, 0, 3.0),
            Scenario("latency", 100, 1, 500, 100, 5.0),
            # The same at half the rate: on 2 cores the one above saturates the machine
            # (100 agent processes, the subscribers and the server), this one does not.
            Scenario("latency-light", 100, 1, 250, 50, 5.0),
            Scenario("starts", 300, 1, 1, 0, 15.0),
        ]
    for scenario in scenarios:
        if args.only and scenario.name != args.only:
            continue
        print(
            f"\n== {scenario.name}: {scenario.runs} runs x {scenario.subscribers} subscribers,"
            f" {scenario.lines} lines/run at {scenario.rate or 'max'} lines/s"
        )
        rows = {}
        for attempt in range(args.repeat):
            for kind in ("relay", "gateway"):  # the baseline first, in the same run
                rows[(kind, attempt)] = summary(measure(kind, scenario), scenario)
        for (kind, attempt), row in rows.items():
            print(
                f"{kind:8} #{attempt}  p50 {row['p50_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms"
                f"  {row['events_per_s']:10.0f} events/s  complete {row['complete']:>7}"
                f"  peak RSS {row['peak_rss_mib']:6.1f} MiB"
                f"  CPU {row['cpu_ms_per_1000']:6.2f} ms/1000 events,"
                f" {row['start_cpu_ms']:5.2f} ms/start, {row['run_cpu_ms']:6.2f} ms/run"
            )
        for attempt in range(args.repeat):
            relay, gateway = rows[("relay", attempt)], rows[("gateway", attempt)]
            print(
                f"ratio #{attempt}: events/s gateway/relay = "
                f"{gateway['events_per_s'] / relay['events_per_s']:.2f}; "
                f"p99 gateway/relay = {gateway['p99_ms'] / relay['p99_ms']:.2f}; "
                f"CPU per event gateway/relay = "
                f"{gateway['cpu_ms_per_1000'] / relay['cpu_ms_per_1000']:.2f}; "
                f"CPU per run gateway/relay = {gateway['run_cpu_ms'] / relay['run_cpu_ms']:.2f}"
            )


if __name__ == "__main__":
    main()
