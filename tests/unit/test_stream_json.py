"""The stream-json parser on lines captured from the real claude CLI 2.1.197."""

from pathlib import Path

from hypothesis import given, settings
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
    assert result.result == text and result.is_error is False
    assert result.input_tokens == 25 and result.output_tokens == 5
    assert result.session_id and result.cost_usd is not None


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
    assert init.fields["session_id"] == parser.agent_result(0).session_id


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
    assert result.exit_code == 143
    assert result.input_tokens is None and result.cost_usd is None and result.result is None


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
