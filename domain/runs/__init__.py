"""The use cases, one job a module:

- lifecycle.py: start a run (through a fallback chain), drive its events, finish it
- outcome.py: its final status, record and `done` from one outcome
- stopping.py: cancel, timeout and shutdown stops, here or on another replica
- queueing.py: the queue: enqueue, start when room frees, positions, queue timeouts
- interaction.py: interactive runs: pending requests, answers, follow-ups, input and idle timeouts
- leases.py: replica leases, cancel requests between replicas, orphaned runs
- subscribers.py: admitting and counting stream followers
- readiness.py: whether the backends answer
- service.py: RunService, which wires them for the handlers
"""

from domain.runs.interaction import InteractionLimits
from domain.runs.lifecycle import RunLimits
from domain.runs.service import RunService, Storage

__all__ = ["InteractionLimits", "RunLimits", "RunService", "Storage"]
