"""Background loops of a replica (leases, the queue, webhooks), run side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

STOP_POLL_S = 0.1


async def serve_together(*loops: Coroutine[Any, Any, None]) -> None:
    """Runs the loops until cancelled, or until one fails (the others are then stopped and
    its error raised). Stopping cancels a loop again and again until it has ended: a library
    call that swallows one cancellation (seen with redis-py under load: the loop went on to
    its next sleep) would otherwise keep that loop, and so the shutdown, alive forever, as
    a TaskGroup cancels its tasks only once."""
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        await _stop(tasks)
    for task in done:  # no cancellation came, so a loop failed or returned
        task.result()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    cancelled = False
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        try:
            await asyncio.wait(pending, timeout=STOP_POLL_S)
        except asyncio.CancelledError:  # asked again: the loops are being stopped already
            cancelled = True
    for task in tasks:  # retrieved, so that none is reported as never retrieved
        if not task.cancelled():
            task.exception()
    if cancelled:
        raise asyncio.CancelledError
