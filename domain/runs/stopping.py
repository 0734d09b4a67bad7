"""Stopping runs: on cancel, on timeout, at shutdown; locally or through another replica."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from domain.errors import OwnerUnreachable
from domain.logcontext import working_for
from domain.model import Run
from domain.runs.active import ActiveRun, ActiveRuns, StopReason
from ports.clock import Clock
from ports.event_hub import EventHub
from ports.run_control import RunControl

log = logging.getLogger(__name__)


class RunStopper:
    """Asks agents to stop and waits until they have. The drive task of each run publishes
    its `done` (domain/runs/lifecycle.py); this module only starts the stop and waits."""

    ASK_AGAIN_S = 2.0

    def __init__(
        self,
        active: ActiveRuns,
        hub: EventHub,
        control: RunControl,
        clock: Clock,
        remote_wait_s: float = 60.0,
    ) -> None:
        self._active = active
        self._hub = hub
        self._control = control
        self._clock = clock
        self._remote_wait_s = remote_wait_s

    def request(self, active: ActiveRun, reason: StopReason) -> None:
        """Asks the agent to stop; the first reason wins."""
        if active.stop_reason is not None or active.finished.is_set():
            return
        active.stop_reason = reason
        active.stop_requested_at = self._clock.monotonic()
        log.info("stopping the agent: %s", reason.value)
        active.stopping = asyncio.create_task(self._stop(active))

    @staticmethod
    async def _stop(active: ActiveRun) -> None:
        try:
            await active.execution.stop()
        except Exception:  # the drive task still ends the run when the agent's events end
            log.exception("run %s: stopping the agent failed", active.run.run_id)

    async def cancel(self, run: Run) -> None:
        """Returns once the run's agent has stopped. A run owned by another replica is asked
        to stop through the run control; its `done` on the shared stream confirms it."""
        active = self._active.get(run.run_id)
        if active is not None:
            self.request(active, StopReason.CANCELLED)
            # The stop goes on even if the caller goes away: a cancel is never half done.
            await asyncio.shield(active.finished.wait())
            return
        if run.status.finished:
            return
        asking = None
        if not self._active.ask_cancel(run.run_id):  # not starting here: another replica's
            await self._control.request_cancel(run.run_id)
            # Asked again until `done`: a replica that was still taking the run from the
            # queue when the first request went out may not have known it yet.
            asking = asyncio.create_task(self._ask_again(run.run_id))
        try:
            async with asyncio.timeout(self._remote_wait_s):
                async for _ in self._hub.subscribe(run.stream_id):
                    pass  # the stream ends after `done`
        except TimeoutError:
            raise OwnerUnreachable(run.run_id) from None
        finally:
            if asking is not None:
                asking.cancel()

    async def _ask_again(self, run_id: str) -> None:
        while True:
            await self._clock.sleep(self.ASK_AGAIN_S)
            try:
                await self._control.request_cancel(run_id)
            except Exception:  # the wait for `done` decides; this was only a reminder
                log.exception("run %s: cannot repeat the cancel request", run_id)

    async def cancel_if_owned(self, run_id: str) -> None:
        """A cancel request from another replica: acted on if this one drives the run."""
        active = self._active.get(run_id)
        if active is not None:
            with working_for(run_id, active.run.project_id):
                self.request(active, StopReason.CANCELLED)
        else:
            self._active.ask_cancel(run_id)  # its agent may be starting here

    async def stop_all(self, grace_s: float) -> None:
        """Stops every running agent and returns once all have published `done`. Agents
        still running after `grace_s` are killed by cancelling their drive task."""
        actives = list(self._active)
        if not actives:
            return
        for active in actives:
            with working_for(active.run.run_id, active.run.project_id):
                self.request(active, StopReason.SHUTDOWN)
        all_finished = asyncio.ensure_future(
            asyncio.gather(*(active.finished.wait() for active in actives))
        )
        grace = asyncio.ensure_future(self._clock.sleep(grace_s))
        waiters: list[asyncio.Future[Any]] = [all_finished, grace]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        grace.cancel()
        if not all_finished.done():
            left = [a for a in actives if not a.finished.is_set()]
            log.warning("%d runs still running after %.1fs; killing them", len(left), grace_s)
            for active in left:
                if active.driver is not None:
                    active.driver.cancel()
            await all_finished
