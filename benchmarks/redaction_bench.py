"""What redacting credentials costs on the hot path, measured in one run.

One run publishing `--events` text deltas (token-sized, as a model streams them) and a
tool result of `--result-bytes` every 100 deltas, one subscriber, through the run service on
the memory backend; its project has 0 credentials (the baseline: nothing is scanned), then
1, then 50 (each 40 characters, so some 450 forms to match). Figures: gateway CPU per 1,000
events (this process, from /proc via time.process_time) and the ratio to the baseline,
events/s, and how many values were masked (the agent prints one every 1,000 deltas, split
across two deltas).

Run: .venv/bin/python benchmarks/redaction_bench.py [--events 50000] [--repeats 3]"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.aes_gcm import AesGcmKeyRing
from adapters.memory import (
    LocalRunControl,
    MemoryCredentialStore,
    MemoryEventHub,
    MemoryRunQueue,
    MemoryRunStore,
)
from domain.clock import SystemClock
from domain.credentials import Credentials
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    Capabilities,
    Outcome,
    OutputEvent,
    OutputType,
)
from domain.redaction import Redactor
from domain.registry import ProviderRegistry
from domain.runs import RunService, Storage

WORDS = ("the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs ", "and ", "it ")


class PrintingAgent:
    """Streams deltas; every 1,000th pair of deltas carries a credential split in two."""

    def __init__(self, count: int, result_bytes: int) -> None:
        self.count = count
        self.result = ("x" * 79 + "\n") * (result_bytes // 80)

    def capabilities(self) -> Capabilities:
        return Capabilities(available=True)

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str]
    ) -> PrintingRun:
        return PrintingRun(self, next(iter(secret_env.values()), None))


class PrintingRun:
    def __init__(self, agent: PrintingAgent, value: str | None) -> None:
        self._agent = agent
        self._value = value

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        value = self._value
        for i in range(self._agent.count):
            content = WORDS[i % len(WORDS)]
            if value and i % 1000 == 0:
                content = f"token {value[:17]}"
            elif value and i % 1000 == 1:
                content = f"{value[17:]} end "
            yield OutputEvent(OutputType.TEXT, content)
            if i % 100 == 99:
                yield OutputEvent(OutputType.TOOL_RESULT, self._agent.result)
            if i % 64 == 0:
                await asyncio.sleep(0)  # a real agent's output arrives in chunks
        yield AgentResult(Outcome(exit_code=0))

    async def send(self, agent_input: object) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None


async def one_run(events: int, result_bytes: int, values: list[str]) -> dict[str, float]:
    hub = MemoryEventHub(retain_events=400_000, max_pending=400_000)
    storage = Storage(hub, MemoryRunStore(), LocalRunControl(), MemoryRunQueue())
    store = Credentials(MemoryCredentialStore(), AesGcmKeyRing.ephemeral(), SystemClock())
    for n, value in enumerate(values):
        await store.put("bench", f"TOKEN_{n}", value, None)
    registry = ProviderRegistry()
    registry.register("bench", PrintingAgent(events, result_bytes))  # type: ignore[arg-type]
    service = RunService(registry, storage, credentials=store)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run = await service.start(AgentRequest.create("bench", "print"))
    delivered = masked = 0
    async for batch in await service.open_stream("bench", run.stream_id):
        for item in batch:
            delivered += 1
            masked += getattr(item.event, "content", "").count("***")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "cpu_ms_per_1000": cpu * 1e6 / delivered,
        "events_per_s": delivered / wall,
        "masked": masked,
        "redactions": service.stats.redactions,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--result-bytes", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.events} deltas + a {args.result_bytes}-byte tool result every 100, one run")
    print("credentials  CPU ms/1000 events  ratio  events/s   masked")
    baseline = None
    compiles = []
    for credentials in (0, 1, 50):
        # A project's values stay the same from run to run: its matcher is compiled once
        # (measured apart here) and shared by its runs.
        values = [secrets.token_urlsafe(30) for _ in range(credentials)]
        cpu0 = time.process_time()
        Redactor(values)
        compiles.append((credentials, (time.process_time() - cpu0) * 1000))
        runs = [await one_run(args.events, args.result_bytes, values) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["cpu_ms_per_1000"])  # the least disturbed repeat
        baseline = baseline or best["cpu_ms_per_1000"]
        print(
            f"{credentials:>11}  {best['cpu_ms_per_1000']:>18.2f}  "
            f"{best['cpu_ms_per_1000'] / baseline:>5.2f}  {best['events_per_s']:>9.0f}  "
            f"{best['masked']:>6.0f}"
        )
    for credentials, ms in compiles[1:]:
        print(f"compiling the matcher of {credentials} credential(s): {ms:.1f} ms CPU, once")
    chunk = ("x" * 79 + "\n") * 1000
    for credentials in (1, 50):
        redactor = Redactor([secrets.token_urlsafe(30) for _ in range(credentials)])
        cpu0 = time.process_time()
        for _ in range(20):
            redactor.text(chunk)
        ns = (time.process_time() - cpu0) * 1e9 / (20 * len(chunk))
        print(f"scanning tool output, {credentials} credential(s): {ns:.0f} ns per character")


if __name__ == "__main__":
    asyncio.run(main())
