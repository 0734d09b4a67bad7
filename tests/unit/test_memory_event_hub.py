"""What only the in-memory hub does: bounded backlogs per subscriber and eviction of
finished streams (the behaviour every hub shares is in tests/contract)."""

import asyncio
import contextlib
import gc
import pickle
from datetime import UTC, datetime

import pytest

from adapters.memory import MemoryEventHub
from adapters.memory.event_hub import PACK, _dumps
from domain.errors import StreamNotFound, SubscriberTooSlow
from domain.model import (
    DoneEvent,
    ErrorEvent,
    GapEvent,
    Outcome,
    OutputEvent,
    OutputType,
    Run,
    RunChangedEvent,
    RunStatus,
    SequencedEvent,
    StatusEvent,
    approximate_size,
)


def text(i: int) -> OutputEvent:
    return OutputEvent(OutputType.TEXT, str(i))


async def collect(batches, count: int | None = None) -> list:
    seen = []
    async for batch in batches:
        seen += batch
        if count is not None and len(seen) >= count:
            break
    return seen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_slow_subscriber_is_dropped_and_others_and_publisher_are_not():
    hub = MemoryEventHub(max_pending=5)
    await hub.create("s")
    slow = hub.subscribe("s")
    fast = hub.subscribe("s")
    fast_task = asyncio.ensure_future(collect(fast))
    for i in range(20):  # never blocks: publish is not awaited on subscribers
        await hub.publish("s", text(i))
        await asyncio.sleep(0)
    await hub.close("s")
    assert [e.seq for e in await fast_task] == list(range(1, 21))
    with pytest.raises(SubscriberTooSlow):
        await collect(slow)
    # it resumes from where it was without losing anything
    assert [e.seq for e in await collect(hub.subscribe("s", 0))] == list(range(1, 21))


async def test_subscribers_are_released_when_they_stop():
    hub = MemoryEventHub()
    await hub.create("s")
    batches = hub.subscribe("s")
    await hub.publish("s", text(1))
    await anext(batches)
    assert hub._streams["s"].readers == 1
    await batches.aclose()
    assert hub._streams["s"].readers == 0


async def test_closed_streams_are_evicted_after_retention():
    clock = FakeClock()
    hub = MemoryEventHub(retention_s=60, monotonic=clock)
    await hub.create("s")
    await hub.publish("s", text(1))
    await hub.close("s")
    clock.now += 59
    assert await hub.exists("s")
    clock.now += 2
    assert not await hub.exists("s")
    with pytest.raises(StreamNotFound):
        hub.subscribe("s")


async def test_open_streams_are_never_evicted():
    clock = FakeClock()
    hub = MemoryEventHub(retention_s=1, monotonic=clock)
    await hub.create("s")
    clock.now += 10_000
    assert await hub.exists("s")


async def test_retention_keeps_the_byte_budget_and_always_the_last_event():
    hub = MemoryEventHub(retain_events=1000, retain_bytes=10_000)
    await hub.create("s")
    for i in range(50):
        await hub.publish("s", OutputEvent(OutputType.TEXT, str(i % 10) * 1000))
    retained = await _retained(hub, "s")
    assert retained[0].event == GapEvent(first_available=retained[1].seq)
    kept = retained[1:]
    assert [e.seq for e in kept] == list(range(kept[0].seq, 51))  # the newest, contiguous
    assert sum(approximate_size(e.event) for e in kept) <= 10_000
    assert len(kept) >= 10_000 * 15 // 16 // 1100  # trimmed in slices: 15/16 of it is kept
    await hub.publish("s", OutputEvent(OutputType.TEXT, "x" * 50_000))  # alone over budget
    retained = await _retained(hub, "s")
    assert [e.seq for e in retained[1:]] == [51]


async def _retained(hub, stream_id):
    """The replay a new subscriber gets first."""
    subscription = hub.subscribe(stream_id)
    try:
        return await subscription.__anext__()
    finally:
        await subscription.aclose()


async def test_a_replay_overtaken_by_trimming_is_cut_not_handed_other_events():
    hub = MemoryEventHub(retain_events=32, max_pending=1000)
    await hub.create("s")
    for i in range(32):
        await hub.publish("s", text(i))
    replay = hub.subscribe("s")
    assert [e.seq for e in await anext(replay)] == list(range(1, 33))  # all retained
    for i in range(32, 100):  # trimmed past where the reader stands
        await hub.publish("s", text(i))
    with pytest.raises(SubscriberTooSlow):
        await anext(replay)


async def test_older_events_are_packed_and_replay_as_published():
    hub = MemoryEventHub(retain_events=1000, max_pending=1000)
    await hub.create("s", after_seq=7)  # packs start where the stream does
    published = [text(i) for i in range(3000)]
    published[100] = OutputEvent(OutputType.TEXT, "-", fields={"f": lambda: None})  # no pickle
    for event in published:
        await hub.publish("s", event)
    await hub.close("s")
    stream = hub._streams["s"]
    assert stream.packed and len(stream.events) < 2 * PACK  # the newest stay objects
    replay = await collect(hub.subscribe("s"))
    assert replay[0].event == GapEvent(first_available=replay[1].seq)
    kept = replay[1:]
    assert 1000 <= len(kept) < 1000 + PACK  # trimming keeps at least retain_events
    assert [e.seq for e in kept] == list(range(3008 - len(kept), 3008))
    assert [e.event for e in kept] == published[-len(kept) :]
    # a resume inside a pack, and one right at the newest objects
    middle = kept[len(kept) // 2].seq
    assert [e.seq for e in await collect(hub.subscribe("s", middle))] == list(
        range(middle + 1, 3008)
    )
    assert [e.seq for e in await collect(hub.subscribe("s", 3000))] == list(range(3001, 3008))


async def test_an_event_that_cannot_be_pickled_stays_retained():
    hub = MemoryEventHub()
    await hub.create("s")
    odd = OutputEvent(OutputType.TEXT, "-", fields={"f": lambda: None})
    for i in range(4 * PACK):
        await hub.publish("s", odd if i == 3 else text(i))
    await hub.close("s")
    events = [e.event for e in await collect(hub.subscribe("s"))]
    assert events[3] is odd and events[4] == text(4) and len(events) == 4 * PACK


async def test_retained_events_are_not_left_for_the_garbage_collector_to_scan():
    # The cyclic collector's passes cost time in proportion to the container objects
    # alive; a long stream's retained events must not be among them.
    hub = MemoryEventHub()
    await hub.create("s")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(20_000):
        await hub.publish("s", OutputEvent(OutputType.TEXT, f"line {i}"))
    gc.collect()
    assert len(gc.get_objects()) - before < 4 * PACK + 100
    assert len(await collect(hub.subscribe("s"), 20_000)) == 20_000


async def test_readers_that_leave_an_idle_stream_leave_nothing_behind():
    hub = MemoryEventHub()
    await hub.create("s")
    for _ in range(50):
        reader = asyncio.ensure_future(anext(hub.subscribe("s")))
        await asyncio.sleep(0)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    assert hub._streams["s"].waiters == []
    staying = asyncio.ensure_future(anext(hub.subscribe("s")))
    await asyncio.sleep(0)
    await hub.publish("s", OutputEvent(OutputType.TEXT, "x"))
    assert [e.seq for e in await staying] == [1]


def test_a_pack_is_the_events_themselves_once_unpacked():
    """Packs are pickled by field values: every event type of the model comes back equal."""
    now = datetime.now(UTC)
    run = Run(
        "r",
        "p",
        "s",
        "claude-code",
        RunStatus.RUNNING,
        now,
        ("x: y",),
        now,
        None,
        metadata={"k": "v"},
        settings={"model": "m"},
        credentials=("TOKEN",),
    )
    events = [
        SequencedEvent(
            1, OutputEvent(OutputType.TOOL_USE, "t", {"input": {"a": [1]}}, raw={"r": 1})
        ),
        SequencedEvent(2, ErrorEvent("bad", "partial")),
        SequencedEvent(3, StatusEvent(RunStatus.QUEUED, 2)),
        SequencedEvent(4, GapEvent(first_available=9)),
        SequencedEvent(
            5, DoneEvent(RunStatus.SUCCEEDED, Outcome(0, "ok", "s", "m", 1, 2, 0.5), 5, "p", None)
        ),
        SequencedEvent(6, RunChangedEvent(run)),
    ]
    assert pickle.loads(_dumps(events)) == events
