"""Redaction of credential values: whole strings, nested values, encodings, and text split
into deltas at every offset."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.redaction import MASK, Redactor, forms_of

SECRET = "ghp_S3cr3t+Value/with=odd&chars"
OTHER = "xoxb-another-token-1234"


def test_a_value_and_its_encodings_are_masked():
    redactor = Redactor([SECRET])
    for form in (
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
    ):
        redacted = redactor.text(f"before {form} after")
        # Of base64, the last character and the padding carry the bits of nothing but a
        # few of the value's: they may stay.
        assert redacted.startswith(f"before {MASK}") and form not in redacted
        assert len(redacted) <= len(f"before {MASK}== after") + 1


def test_base64_of_the_value_inside_a_longer_text_is_masked_at_every_alignment():
    redactor = Redactor([SECRET])
    for prefix in ("", "a", "ab", "abc", "TOKEN="):
        encoded = base64.b64encode(f"{prefix}{SECRET} and more".encode()).decode()
        redacted = redactor.text(encoded)
        assert MASK in redacted
        for form in forms_of(SECRET):
            assert form not in redacted


def test_nested_values_and_keys_are_masked_and_counted():
    redactor = Redactor([SECRET, OTHER])
    value = {"env": [f"TOKEN={SECRET}", ("x", OTHER)], SECRET: 3, "n": 1}
    assert redactor.value(value) == {"env": [f"TOKEN={MASK}", ("x", MASK)], MASK: 3, "n": 1}
    assert redactor.count == 3


def test_no_values_changes_nothing():
    redactor = Redactor([])
    assert not redactor.active
    assert redactor.text(SECRET) == SECRET
    stream = redactor.stream()
    assert stream.feed("abc") == "abc" and stream.flush() == ""


def test_text_that_only_begins_like_a_value_goes_out_whole():
    stream = Redactor([SECRET]).stream()
    assert stream.feed("look: ghp_S3c") == "look: "  # could be the value: held back
    assert stream.feed("ret?") == "ghp_S3cret?"  # it was not
    assert stream.flush() == ""


def streamed(redactor: Redactor, text: str, cuts: list[int]) -> str:
    stream, out, last = redactor.stream(), [], 0
    for cut in sorted(set(cuts)):
        out.append(stream.feed(text[last:cut]))
        last = cut
    out.append(stream.feed(text[last:]))
    out.append(stream.flush())
    return "".join(out)


def test_a_value_split_in_two_at_every_offset_never_goes_out():
    redactor = Redactor([SECRET])
    text = f"the token is {SECRET}, done"
    for cut in range(len(text) + 1):
        out = streamed(redactor, text, [cut])
        assert out == f"the token is {MASK}, done", cut


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=12),
    which=st.sampled_from([SECRET, OTHER]),
)
def test_values_split_into_any_deltas_never_go_out(before, after, cuts, which):
    redactor = Redactor([SECRET, OTHER])
    text = f"{before}{which}{after}"
    out = streamed(redactor, text, [c for c in cuts if c <= len(text)])
    assert SECRET not in out and OTHER not in out
    assert out == redactor.text(text)  # the same as redacting the whole text at once


def test_a_long_value_such_as_a_pem_key_is_masked_whole_and_split():
    value = "-----BEGIN KEY-----\n" + "A1b2C3d4" * 500 + "\n-----END KEY-----\n"
    redactor = Redactor([value])
    assert redactor.text(f"key: {value} end") == f"key: {MASK} end"
    assert streamed(redactor, f"key: {value} end", list(range(0, 5000, 7))) == f"key: {MASK} end"


def test_a_split_value_stays_held_across_stderr_and_status_lines():
    from domain.model import OutputEvent, OutputType
    from domain.redaction import EventRedaction

    redaction = EventRedaction(Redactor([SECRET]))
    events = [
        OutputEvent(OutputType.TEXT, "key: " + SECRET[:9]),
        OutputEvent(OutputType.STDERR, "a warning"),
        OutputEvent(OutputType.SYSTEM, "status"),
        OutputEvent(OutputType.THINKING, "hmm"),
        OutputEvent(OutputType.TEXT, SECRET[9:] + " done"),
        OutputEvent(OutputType.TOOL_USE, "Bash"),
    ]
    out = [e for event in events for e in redaction.event(event)]
    texts = "".join(e.content for e in out if e.type is OutputType.TEXT)
    assert texts == f"key: {MASK} done" and SECRET[:9] not in texts
    assert [e.type for e in out][-1] is OutputType.TOOL_USE  # held text went out before it
