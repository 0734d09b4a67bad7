import pytest

from domain.model import (
    DoneEvent,
    ErrorEvent,
    GapEvent,
    Outcome,
    OutputEvent,
    OutputType,
    RunStatus,
    SequencedEvent,
)
from handlers import sse

DONE = DoneEvent(
    RunStatus.SUCCEEDED, Outcome(0, "ok", "s1", None, 1, 2, None), 12, "claude-code", None
)


@pytest.mark.parametrize(
    ("item", "wire"),
    [
        (
            SequencedEvent(1, OutputEvent(OutputType.TEXT, "Hello")),
            b'id: 1\nevent: output\ndata: {"type":"text","content":"Hello"}\n\n',
        ),
        (
            SequencedEvent(2, OutputEvent(OutputType.TEXT, "a\nb")),
            b'id: 2\nevent: output\ndata: {"type":"text","content":"a\\nb"}\n\n',
        ),
        (
            SequencedEvent(3, ErrorEvent("boom", "par")),
            b'id: 3\nevent: error\ndata: {"message":"boom","partial_content":"par"}\n\n',
        ),
        (
            SequencedEvent(4, GapEvent(9)),
            b'id: 4\nevent: gap\ndata: {"first_available":9}\n\n',
        ),
    ],
)
def test_events_on_the_wire(item, wire):
    assert sse.encode_event(item) == wire


def test_done_carries_nulls_for_what_the_provider_did_not_report():
    wire = sse.encode_event(SequencedEvent(7, DONE)).decode()
    assert wire.startswith("id: 7\nevent: done\ndata: {")
    assert '"cost_usd":null' in wire and '"status":"succeeded"' in wire


def test_a_batch_is_the_concatenation_of_its_events():
    batch = [SequencedEvent(i, OutputEvent(OutputType.TEXT, str(i))) for i in range(1, 4)]
    assert sse.encode_batch(batch) == b"".join(sse.encode_event(e) for e in batch)


def test_unsequenced_events_have_no_id_and_ping_is_a_comment():
    assert sse.encode_unsequenced("run", {"a": 1}) == b'event: run\ndata: {"a":1}\n\n'
    assert sse.PING == b": ping\n\n"


def test_encodings_are_shared_by_object_and_never_confused_between_streams():
    first = SequencedEvent(1, OutputEvent(OutputType.TEXT, "stream A"))
    second = SequencedEvent(1, OutputEvent(OutputType.TEXT, "stream B"))  # same seq
    assert sse.encode_batch([first]) == sse.encode_event(first)
    assert sse.encode_batch([second]) == sse.encode_event(second)
    assert sse.encode_batch([first, second]) == sse.encode_event(first) + sse.encode_event(second)
