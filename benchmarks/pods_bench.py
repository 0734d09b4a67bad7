"""Many agents in pods at once: the Kubernetes exec runner against the local runner.

The same fake agent (benchmarks/fake_agent.py) runs N times at once, one run per project:
once through the exec runner against the fake API server (tests/fakes/kube_apiserver.py,
in a process of its own, one pod per project; its commands run as local processes), once
on the local runner, in the same run so that ratios survive a noisy machine. Each run
sleeps until every subscriber is connected, then prints LINES deltas, one each INTERVAL.

    python benchmarks/pods_bench.py                  # 500 runs x 50 deltas 100 ms apart
    python benchmarks/pods_bench.py --runs 100 --quick

Printed for each runner: delta latency p50/p99/max (agent write -> subscriber read),
/healthz p50/p99 while the runs are being started, how long the start burst took, refused
starts, the gateway's own CPU (from /proc) per run start and per 1,000 delivered events,
its peak RSS and peak thread count. Run as root, each fake pod has a PID namespace of its
own (unshare, nsenter), as pods in a cluster do. Both gateways run with MAX_RUNS 1000 (the
default 200 would queue the rest) and otherwise default settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_bench import (
    AGENT,
    ROOT,
    Result,
    clean_env,
    cpu_seconds,
    free_port,
    launch,
    peak_rss_kib,
    subscribe,
)

# Each fake pod gets a PID namespace of its own, as in a cluster, where we may make them
# (root): otherwise a stop script's scan of /proc in one pod reads every pod's processes.
PID_NAMESPACES = os.geteuid() == 0


@dataclass
class Figures:
    result: Result = field(default_factory=Result)
    health_ms: list[float] = field(default_factory=list)
    burst_s: float = 0.0
    refused: int = 0
    peak_threads: int = 0
    fake_cpu_s: float = 0.0  # the fake API server's, for the exec runner


def kubeconfig(url: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def start(port: int, prompt: str, project: str) -> str | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/projects/{project}/claude",
        json.dumps({"prompt": prompt}).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["stream_url"]
    except urllib.error.HTTPError as exc:
        print(f"  start refused: {exc.code} {exc.read()[:200]!r}")
        return None


async def health_probe(port: int, stop: asyncio.Event, figures: Figures) -> None:
    """GET /healthz every 20 ms on a connection of its own, until told to stop."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while not stop.is_set():
        began = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        figures.health_ms.append((time.monotonic() - began) * 1000)
        await asyncio.sleep(0.02)
    writer.close()


async def watch_threads(pid: int, stop: asyncio.Event, figures: Figures) -> None:
    while not stop.is_set():
        figures.peak_threads = max(figures.peak_threads, threads(pid))
        await asyncio.sleep(0.1)


async def drive(port: int, pid: int, runs: int, prompt: str, lines: int) -> Figures:
    figures = Figures()
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    watcher = asyncio.ensure_future(watch_threads(pid, ended, figures))
    burst_over = asyncio.Event()
    probe = asyncio.ensure_future(health_probe(port, burst_over, figures))
    cpu_before = cpu_seconds(pid)
    began = time.monotonic()
    # 16 clients starting runs at once, as a CI fleet would.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as starters:
        urls = await asyncio.gather(
            *[loop.run_in_executor(starters, start, port, prompt, f"p{i}") for i in range(runs)]
        )
    figures.burst_s = time.monotonic() - began
    figures.result.start_cpu_s = cpu_seconds(pid) - cpu_before
    burst_over.set()
    await probe
    figures.refused = sum(url is None for url in urls)
    await asyncio.gather(
        *[subscribe(port, url, b"event: done", lines, figures.result) for url in urls if url]
    )
    figures.result.cpu_s = cpu_seconds(pid) - cpu_before
    ended.set()
    await watcher
    return figures


def measure(runner: str, runs: int, prompt: str, lines: int, work: Path) -> Figures:
    port = free_port()
    env = clean_env()
    fake = None
    flags = ["--runner", runner, "--max-runs", "1000"]
    if runner == "kubernetes":
        fake_port = free_port()
        fake = launch(
            [
                sys.executable,
                "-m",
                "tests.fakes.kube_apiserver",
                "--port",
                str(fake_port),
                "--pods",
                str(runs),
                "--root",
                str(work / "pods"),
                *(["--pid-namespaces"] if PID_NAMESPACES else []),
            ],
            env,
            fake_port,
        )
        config = work / "kubeconfig.json"
        config.write_text(json.dumps(kubeconfig(f"http://127.0.0.1:{fake_port}")))
        env["KUBECONFIG"] = str(config)
    argv = [
        sys.executable,
        "-m",
        "handlers.cli",
        "serve",
        "--port",
        str(port),
        "--claude-command",
        AGENT,
        "--workspace-root",
        str(work / "workspace"),
        "--providers",
        "claude-code",
        "--log-level",
        "warning",
        *flags,
    ]
    server = launch(argv, env, port)
    try:
        fake_cpu = cpu_seconds(fake.pid) if fake else 0.0
        figures = asyncio.run(drive(port, server.pid, runs, prompt, lines))
        figures.result.peak_rss_kib = peak_rss_kib(server.pid)
        figures.fake_cpu_s = cpu_seconds(fake.pid) - fake_cpu if fake else 0.0
    finally:
        server.terminate()
        server.wait(60)
        if fake is not None:
            fake.terminate()
            fake.wait(30)
    return figures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(math.ceil(len(ordered) * fraction), len(ordered)) - 1]


def row(figures: Figures, runs: int) -> dict:
    latencies = [n / 1e6 for n in figures.result.latencies_ns]
    events = max(figures.result.events, 1)
    return {
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "health_p50_ms": statistics.median(figures.health_ms) if figures.health_ms else 0,
        "health_p99_ms": percentile(figures.health_ms, 0.99),
        "burst_s": figures.burst_s,
        "refused": figures.refused,
        "complete": f"{figures.result.complete}/{runs}",
        "start_cpu_ms": figures.result.start_cpu_s * 1000 / runs,
        "cpu_per_1000": (figures.result.cpu_s - figures.result.start_cpu_s) * 1e6 / events,
        "cpu_per_1000_all": figures.result.cpu_s * 1e6 / events,
        "rss_mib": figures.result.peak_rss_kib / 1024,
        "threads": figures.peak_threads,
        "fake_cpu_s": figures.fake_cpu_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument(
        "--wait-s",
        type=float,
        help="how long each agent waits for its reader (default: scaled)",
    )
    parser.add_argument("--quick", action="store_true", help="10 deltas, for a smoke run")
    args = parser.parse_args()
    lines = 10 if args.quick else args.lines
    wait_s = args.wait_s if args.wait_s is not None else 5 + args.runs * 0.04
    prompt = f"{wait_s} {lines} {1000 / args.interval_ms}"
    print(
        f"== {args.runs} concurrent runs, {lines} deltas each {args.interval_ms:g} ms apart,"
        f" one subscriber each; agents wait {wait_s:g} s for it; fake pods have"
        f" {'a PID namespace each' if PID_NAMESPACES else 'one PID namespace (not root)'}"
    )
    rows = {}
    for runner in ("local", "kubernetes"):  # the baseline first
        with tempfile.TemporaryDirectory() as work:
            rows[runner] = row(measure(runner, args.runs, prompt, lines, Path(work)), args.runs)
        r = rows[runner]
        print(
            f"{runner:10}  latency p50 {r['p50_ms']:7.1f}  p99 {r['p99_ms']:7.1f}"
            f"  max {r['max_ms']:7.1f} ms | /healthz in the burst p50 {r['health_p50_ms']:6.1f}"
            f"  p99 {r['health_p99_ms']:6.1f} ms | burst {r['burst_s']:5.1f} s,"
            f" refused {r['refused']}, complete {r['complete']} | CPU {r['start_cpu_ms']:5.2f}"
            f" ms/start, {r['cpu_per_1000']:6.1f} ms/1000 events after it"
            f" ({r['cpu_per_1000_all']:6.1f} with it) | peak RSS {r['rss_mib']:6.1f} MiB,"
            f" threads {r['threads']}"
            + (f" | fake API server CPU {r['fake_cpu_s']:.1f} s" if r["fake_cpu_s"] else "")
        )
    local, kube = rows["local"], rows["kubernetes"]
    print(
        f"ratio exec/local: latency p50 {kube['p50_ms'] / local['p50_ms']:.2f}"
        f"  p99 {kube['p99_ms'] / local['p99_ms']:.2f}"
        f"  CPU per start {kube['start_cpu_ms'] / local['start_cpu_ms']:.2f}"
        f"  CPU per 1000 events {kube['cpu_per_1000'] / local['cpu_per_1000']:.2f}"
    )


if __name__ == "__main__":
    os.chdir(ROOT)  # `-m tests.fakes.kube_apiserver` is found from here
    main()
