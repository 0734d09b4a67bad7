"""Token latency of the `anthropic` provider: from the fake Messages API writing a text
delta to an SSE client of the gateway reading it.

The fake (tests/fakes/fake_anthropic.py, `[stamps N R]`) stamps each delta with
CLOCK_MONOTONIC as it writes it; the client reads the same clock on arrival. The gateway
runs as `agent-gateway serve` with the real SDK pointed at the fake.

    python benchmarks/anthropic_bench.py [--deltas 10000] [--rate 1000]"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_bench import clean_env, free_port, launch, post

ROOT = Path(__file__).resolve().parent.parent
STAMP = re.compile(rb"T(\d{10,})")


async def follow(port: int, path: str) -> list[int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    latencies, buffer = [], b""
    while chunk := await reader.read(65536):
        now = time.monotonic_ns()
        buffer += chunk
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            continue
        complete, buffer = buffer[: cut + 2], buffer[cut + 2 :]
        for event in complete.split(b"\n\n"):
            if b"event: done" in event:  # its `result` repeats every stamp
                writer.close()
                return latencies
            latencies += [now - int(m.group(1)) for m in STAMP.finditer(event)]
    writer.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000, help="deltas per second")
    args = parser.parse_args()
    fake_port, gateway_port = free_port(), free_port()
    env = clean_env()
    fake = launch(
        [sys.executable, "-m", "tests.fakes.fake_anthropic", "--port", str(fake_port)],
        env,
        fake_port,
    )
    env.update(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{fake_port}", ANTHROPIC_API_KEY="bench")
    with tempfile.TemporaryDirectory() as workspace:
        gateway = launch(
            [
                sys.executable,
                "-m",
                "handlers.cli",
                "serve",
                "--port",
                str(gateway_port),
                "--providers",
                "anthropic",
                "--workspace-root",
                workspace,
                "--log-level",
                "warning",
            ],
            env,
            gateway_port,
        )
        try:
            started = post(
                gateway_port,
                "/projects/bench/runs",
                {"prompt": f"[stamps {args.deltas} {args.rate}]"},
            )
            latencies = sorted(asyncio.run(follow(gateway_port, started["stream_url"])))
        finally:
            gateway.terminate()
            fake.terminate()
            gateway.wait(30)
            fake.wait(30)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"{len(latencies)} deltas at {args.rate:.0f}/s: p50 "
        f"{statistics.median(latencies) / 1e6:.2f} ms, p99 {p99 / 1e6:.2f} ms, "
        f"max {latencies[-1] / 1e6:.2f} ms"
    )


if __name__ == "__main__":
    main()
