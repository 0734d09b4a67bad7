"""Replicas and their runs: each replica keeps leases on the runs it drives, acts on cancel
requests from the others, and finishes the runs of a replica that died."""

from __future__ import annotations

import logging

from domain.background import serve_together
from domain.logcontext import working_for
from domain.model import Outcome, RunStatus
from domain.runs.active import ActiveRuns
from domain.runs.lifecycle import record_end
from domain.runs.outcome import final_record
from domain.runs.stopping import RunStopper
from domain.stats import GatewayStats
from ports.clock import Clock
from ports.event_hub import EventHub
from ports.run_control import InputHandler, RunControl
from ports.run_store import RunStore

log = logging.getLogger(__name__)
OWNER_LOST = "owner lost: the replica running this run stopped without finishing it"


class LeaseKeeper:
    """Serves the run control for as long as the replica runs (`serve`)."""

    def __init__(
        self,
        active: ActiveRuns,
        stopper: RunStopper,
        hub: EventHub,
        store: RunStore,
        control: RunControl,
        stats: GatewayStats,
        clock: Clock,
        ttl_s: float,
        on_input: InputHandler,
    ) -> None:
        self._active = active
        self._stopper = stopper
        self._hub = hub
        self._store = store
        self._control = control
        self._stats = stats
        self._clock = clock
        self._ttl_s = ttl_s
        self._on_input = on_input  # an interactive run's input sent to another replica

    async def serve(self) -> None:
        await serve_together(
            self._control.serve(self._stopper.cancel_if_owned, self._on_input),
            self._keep_leases(),
        )

    async def _keep_leases(self) -> None:
        while True:
            await self._clock.sleep(self._ttl_s / 3)
            try:
                await self._control.renew(self._active.ids(), self._ttl_s)
                for run_id in await self._control.take_orphans():
                    await self.finish_orphan(run_id)
            except Exception:  # the store is unreachable: try again next round
                log.exception("cannot keep run leases")

    async def finish_orphan(self, run_id: str) -> None:
        """A run whose owner replica died: failed, with `done`, so no client waits forever."""
        run = await self._store.get(run_id)
        if run is None or run.status.finished:
            return
        with working_for(run_id, run.project_id):
            log.warning("run %s: %s", run_id, OWNER_LOST)
            final, done = final_record(
                run, RunStatus.FAILED, Outcome(), OWNER_LOST, self._clock.now(), None
            )
            await record_end(self._store, self._hub, self._stats, final, done)
