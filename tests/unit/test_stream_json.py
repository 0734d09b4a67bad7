"""The stream-json parser on lines captured from the real claude CLI 2.1.197."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.claude_code import StreamJsonParser
from domain.lines import LineDecoder
from domain.model import OutputType

DATA = Path(__file__).parent / "data"
HELLO = (DATA / "claude_hello.jsonl").read_bytes()
TOOL = (DATA / "claude_tool.jsonl").read_bytes()


def parse(chunks: list[bytes]) -> tuple[list, StreamJsonParser]:
    parser = StreamJsonParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.finish()
    return events, parser


def test_text_arrives_once_as_deltas_not_again_from_the_assistant_message():
    events, parser = parse([HELLO])
    text = "".join(e.content for e in events if e.type is OutputType.TEXT)
    assert text == "Hello from fake. You said: Say hi"
    assert len([e for e in events if e.type is OutputType.TEXT]) == 5  # one per delta
    result = parser.agent_result(0)
    assert result.outcome.result == text and result.is_error is False
    assert result.outcome.input_tokens == 25 and result.outcome.output_tokens == 5
    assert result.outcome.session_id and result.outcome.cost_usd is not None


def test_tool_round_trip_gives_tool_use_then_tool_result():
    events, parser = parse([TOOL])
    kinds = [e.type for e in events if e.type is not OutputType.SYSTEM]
    assert kinds == [OutputType.TOOL_USE, OutputType.TOOL_RESULT, OutputType.TEXT, OutputType.TEXT]
    tool_use = next(e for e in events if e.type is OutputType.TOOL_USE)
    assert tool_use.fields["tool"] == "Bash"
    assert tool_use.fields["input"]["command"] == "echo tool-ran"
    tool_result = next(e for e in events if e.type is OutputType.TOOL_RESULT)
    assert tool_result.content == "tool-ran" and tool_result.fields["is_error"] is False
    assert tool_result.fields["tool_use_id"] == tool_use.fields["id"]
    init = events[0]
    assert init.type is OutputType.SYSTEM and init.content == "init"
    assert init.fields["session_id"] == parser.agent_result(0).outcome.session_id


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_chunking_gives_the_same_events(data):
    stream = TOOL + HELLO
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse(chunks)[0] == parse([stream])[0]


def test_unreadable_lines_are_kept_verbatim_as_unparsed():
    events, _ = parse([b'not json\n{"type":"assistant","message":7}\n\xff\xfe broken\n[1]\n'])
    assert [(e.type, e.content) for e in events] == [
        (OutputType.UNPARSED, "not json"),
        (OutputType.UNPARSED, '{"type":"assistant","message":7}'),
        (OutputType.UNPARSED, "\ufffd\ufffd broken"),
        (OutputType.UNPARSED, "[1]"),
    ]


def test_unknown_types_keep_their_raw_object():
    events, _ = parse([b'{"type":"brand_new","x":1}\n'])
    assert events[0].type is OutputType.SYSTEM and events[0].raw == {"type": "brand_new", "x": 1}


def test_a_last_line_without_newline_is_not_lost():
    events, _ = parse([b'{"type":"system","subtype":"init","session_id":"s"}'])
    assert events[0].fields["session_id"] == "s"


def test_no_result_line_leaves_usage_unknown():
    _, parser = parse([HELLO.split(b'{"type":"result"')[0]])
    result = parser.agent_result(143)
    assert result.outcome.exit_code == 143
    assert (
        result.outcome.input_tokens is None
        and result.outcome.cost_usd is None
        and result.outcome.result is None
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 50), max_size=20))
def test_line_decoder_reassembles_any_split(payload, sizes):
    whole = LineDecoder()
    expected = whole.feed(payload) + whole.finish()
    split = LineDecoder()
    got: list[str] = []
    position = 0
    for size in sizes:
        got += split.feed(payload[position : position + size])
        position += size
    got += split.feed(payload[position:]) + split.finish()
    assert got == expected


def test_line_decoder_handles_a_character_split_across_chunks_and_long_lines():
    decoder = LineDecoder()
    encoded = ("é" * 100_000 + "\n").encode()
    lines = [line for i in range(0, len(encoded), 7) for line in decoder.feed(encoded[i : i + 7])]
    assert lines == ["é" * 100_000]


# --- hostile input: whatever the agent writes, the parser keeps it and never raises ----------

KNOWN_TYPES = ["system", "stream_event", "assistant", "user", "result", "rate_limit_event"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
SHAPED_OBJECTS = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)},
    optional={
        key: JSON_VALUES
        for key in ("subtype", "message", "event", "content", "session_id", "usage", "result")
    },
)


def _chunks(payload: bytes, sizes: list[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in sizes:
        chunks.append(payload[at : at + size])
        at += size
    return [*chunks, payload[at:]]


@settings(max_examples=300)
@given(st.binary(max_size=4000), st.lists(st.integers(1, 300), max_size=20))
def test_random_bytes_never_crash_the_parser_and_every_line_is_kept(payload, sizes):
    events, _ = parse(_chunks(payload, sizes))
    lines = [line for line in payload.decode("utf-8", "replace").split("\n") if line.strip()]
    unparsed = [e.content for e in events if e.type is OutputType.UNPARSED]
    # Random bytes are hardly ever JSON objects: each line comes back verbatim.
    assert len(unparsed) >= len([line for line in lines if not line.lstrip().startswith("{")])


# Drawing nested objects is slow on a cold, loaded machine (CI): that is no failure here.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPED_OBJECTS)
def test_json_of_a_known_type_but_any_shape_never_crashes_the_parser(obj):
    parser = StreamJsonParser()
    events = parser.feed(json.dumps(obj).encode() + b"\n")
    assert all(e.type in OutputType for e in events)
    parser.agent_result(0)  # a malformed result object must not break the final record


@given(st.data())
def test_truncated_or_corrupted_real_lines_become_unparsed_verbatim(data):
    lines = (HELLO + TOOL).splitlines()
    line = data.draw(st.sampled_from(lines))
    cut = data.draw(st.integers(1, len(line) - 1))
    noise = data.draw(st.binary(max_size=3).filter(lambda b: b"\n" not in b and b"\r" not in b))
    damaged = line[:cut] + noise
    events, _ = parse([damaged + b"\n"])
    text = damaged.decode("utf-8", "replace")
    try:
        json.loads(text)
    except ValueError:
        assert [(e.type, e.content) for e in events] == [(OutputType.UNPARSED, text)]


def test_nesting_deeper_than_the_stack_is_unparsed_not_a_crash():
    events, _ = parse([b"[" * 200_000 + b"\n", b'{"a":' * 100_000 + b"\n"])
    assert [e.type for e in events] == [OutputType.UNPARSED, OutputType.UNPARSED]


def test_ten_mib_lines_in_small_chunks_are_kept_whole():
    big_text = "é" * (5 * 1024 * 1024)  # 10 MiB of UTF-8, split mid-character by the chunks
    delta = {
        "type": "stream_event",
        "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": big_text}},
    }
    garbage = b"\xff\xfe not json " * (1024 * 1024)  # 12 MiB, invalid UTF-8
    payload = json.dumps(delta, ensure_ascii=False).encode() + b"\n" + garbage + b"\n"
    events, _ = parse([payload[i : i + 65536] for i in range(0, len(payload), 65536)])
    assert [e.type for e in events] == [OutputType.TEXT, OutputType.UNPARSED]
    assert events[0].content == big_text
    assert events[1].content == garbage.decode("utf-8", "replace")


def test_a_line_without_end_comes_out_in_pieces_of_the_maximum_size():
    decoder = LineDecoder(max_line_chars=1000)
    pieces = []
    for _ in range(25):  # 25 x 300 chars, never a newline
        pieces += decoder.feed(b"a" * 300)
    assert [len(p) for p in pieces] == [1000] * 7
    assert decoder.feed(b"b\nnext\n") == ["a" * 500 + "b", "next"]
    assert decoder.feed(b"c" * 2500 + b"\n") == ["c" * 2500]  # completed at once: whole
