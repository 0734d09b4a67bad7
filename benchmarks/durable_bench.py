"""What PostgreSQL costs, measured in one run against the in-memory baseline.

1. The durable event write: one run publishing `--events` text deltas as fast as its agent
   yields them, one subscriber, through the run service; the memory hub alone versus the
   memory hub + the PostgreSQL archive, versus PostgreSQL alone (EVENT_BACKEND=postgres:
   the database numbers every event, a round trip per event of a run). Figures: events/s,
   publish-to-subscriber latency p50/p99, and CPU per 1,000 events of this process and of
   the PostgreSQL server (from /proc), with the ratio to the baseline.
2. The queue's start rate: `--queued` runs waiting in PostgreSQL, taken and started by two
   replicas (two run services with their own pools, instant fake agents), in runs/s; the
   memory queue with one replica as the baseline.

Run: .venv/bin/python benchmarks/durable_bench.py [--events 50000] [--queued 10000]
It starts its own PostgreSQL cluster (Debian's, as `make test` installs it)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.memory import LocalRunControl, MemoryEventHub, MemoryRunQueue, MemoryRunStore
from adapters.postgres import PostgresBackend, PostgresEventArchive
from domain.archived_hub import ArchivedEventHub
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    Capabilities,
    Outcome,
    OutputEvent,
    OutputType,
)
from domain.registry import ProviderRegistry
from domain.runs import RunLimits, RunService, Storage
from ports.run_queue import RunQueue
from tests.fakes.postgres_server import PostgresServer

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process (its connections included)."""
    return {pid: cpu_seconds([pid]) for pid in postgres_pids()}


def postgres_cpu_since(before: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu().items())


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class FloodAgent:
    """Yields `count` deltas, each stamped with the moment it was yielded."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent_at: dict[str, float] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(available=True)

    async def start(self, run_id: str, request: AgentRequest, secret_env: object) -> FloodRun:
        return FloodRun(self)


class FloodRun:
    def __init__(self, agent: FloodAgent) -> None:
        self._agent = agent

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        for i in range(self._agent.count):
            content = f"token {i} "
            self._agent.sent_at[content] = time.perf_counter()
            yield OutputEvent(OutputType.TEXT, content)
            if i % 64 == 0:
                await asyncio.sleep(0)  # a real agent's output arrives in chunks
        yield AgentResult(Outcome(exit_code=0))

    async def send(self, agent_input: object) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None


class InstantAgent(FloodAgent):
    def __init__(self) -> None:
        super().__init__(0)


def service(agent: object, storage: Storage, max_runs: int | None = None) -> RunService:
    registry = ProviderRegistry()
    registry.register("bench", agent)  # type: ignore[arg-type]
    return RunService(registry, storage, limits=RunLimits(max_runs=max_runs))


async def one_flood(
    storage: Storage, count: int, archive: PostgresEventArchive | None = None
) -> dict[str, float]:
    """`archive`: flushed before the clock stops, so its writes are all counted."""
    agent = FloodAgent(count)
    runs = service(agent, storage)
    cpu0, pg0, wall0 = time.process_time(), postgres_cpu(), time.perf_counter()
    run = await runs.start(AgentRequest.create("bench", "flood"))
    latencies = []
    async for batch in await runs.open_stream("bench", run.stream_id):
        now = time.perf_counter()
        for item in batch:
            sent = agent.sent_at.get(getattr(item.event, "content", ""))
            if sent is not None:
                latencies.append(now - sent)
    if archive is not None:
        await archive.flush()
    wall = time.perf_counter() - wall0
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "events_per_s": count / wall,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "cpu_ms_per_1000": (time.process_time() - cpu0) * 1e6 / count,
        "postgres_cpu_ms_per_1000": postgres_cpu_since(pg0) * 1e6 / count,
    }


async def drain_queue(
    services: list[RunService], front: RunService, queue: RunQueue, queued: int
) -> float:
    """`front` takes the runs (it has no room: they all wait in `queue`), `services` start
    them; runs/s from the first start to the last finish."""
    for i in range(queued):
        await front.start(AgentRequest.create(f"p{i % 20}", "go"))
    began = time.perf_counter()
    serving = [asyncio.create_task(s.serve_control()) for s in services]
    while await queue.count() or any(s.active_count for s in services):  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # polled from outside, as a dashboard would
    elapsed = time.perf_counter() - began
    for task in serving:
        task.cancel()
    await asyncio.gather(*serving, return_exceptions=True)
    return queued / elapsed


def memory_storage() -> Storage:
    hub = MemoryEventHub(retain_events=200_000, max_pending=200_000)
    return Storage(hub, MemoryRunStore(max_runs=100_000), LocalRunControl(), MemoryRunQueue())


async def main(events: int, queued: int) -> None:
    server = PostgresServer().start()
    backends: list[PostgresBackend] = []
    url = server.new_database()
    try:
        print(f"1. one run, {events:,} deltas as fast as the agent yields them, one subscriber")
        base = await one_flood(memory_storage(), events)
        db = PostgresBackend(url, history_days=30)
        await db.start()
        backends.append(db)
        live = MemoryEventHub(retain_events=200_000, max_pending=200_000)
        archived = Storage(ArchivedEventHub(live, db.archive), db.store, db.control, db.queue)
        durable = await one_flood(archived, events, db.archive)
        alone = Storage(db.hub, db.store, db.control, db.queue)  # EVENT_BACKEND=postgres
        numbered = await one_flood(alone, events)
        for name, figures in (
            ("memory", base),
            ("memory + PostgreSQL", durable),
            ("PostgreSQL alone", numbered),
        ):
            print(
                f"   {name:20} {figures['events_per_s']:>9,.0f} events/s"
                f"  p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
                f"  gateway CPU {figures['cpu_ms_per_1000']:6.1f} ms/1000"
                f"  postgres CPU {figures['postgres_cpu_ms_per_1000']:6.1f} ms/1000"
            )
        for name, figures in (("memory + PostgreSQL", durable), ("PostgreSQL alone", numbered)):
            ratio = {key: figures[key] / base[key] for key in base if base[key]}
            print(
                f"   {name} / memory: events/s {ratio['events_per_s']:.2f}, p99"
                f" {ratio['p99_ms']:.2f}, gateway CPU per event {ratio['cpu_ms_per_1000']:.2f}"
            )

        print(f"2. {queued:,} queued runs taken and started")
        shared = memory_storage()
        front = service(InstantAgent(), shared, max_runs=0)  # takes requests; runs nothing
        worker = service(InstantAgent(), shared, max_runs=50)
        memory_rate = await drain_queue([worker], front, shared.queue, queued)
        replicas = []
        for _ in range(3):
            b = PostgresBackend(url, history_days=30)
            await b.start()
            backends.append(b)
            hub = ArchivedEventHub(MemoryEventHub(retain_events=1000), b.archive)
            replicas.append(Storage(hub, b.store, b.control, b.queue))
        pg_front = service(InstantAgent(), replicas[0], max_runs=0)
        workers = [service(InstantAgent(), s, max_runs=50) for s in replicas[1:]]
        pg_rate = await drain_queue(workers, pg_front, replicas[0].queue, queued)
        print(f"   memory queue, 1 replica       {memory_rate:>8,.0f} runs/s")
        print(
            f"   PostgreSQL queue, 2 replicas  {pg_rate:>8,.0f} runs/s"
            f" ({pg_rate / memory_rate:.2f}x the memory queue)"
        )
    finally:
        for b in backends:
            await b.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--queued", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.queued))
