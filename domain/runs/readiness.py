"""Readiness: can this replica reach what it stores runs and events in?"""

from __future__ import annotations

import asyncio

from ports.event_hub import EventHub
from ports.run_store import RunStore

PROBE_ID = "readiness-probe"  # no run or stream has this id: a cheap read of nothing


async def unreachable_backends(hub: EventHub, store: RunStore, timeout_s: float = 5) -> list[str]:
    """What cannot be reached among the event hub and the run store, with why."""
    problems = []
    for name, check in (("event hub", hub.exists), ("run store", store.get)):
        try:
            await asyncio.wait_for(check(PROBE_ID), timeout_s)
        except Exception as exc:
            problems.append(f"{name}: {exc or type(exc).__name__}")
    return problems
