import hashlib

import pytest

from domain.access import KeyRing, Role, StreamTokens


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


RING = KeyRing.from_document(
    {
        "keys": [
            {"name": "ci", "sha256": sha("ci-key"), "projects": ["demo"], "role": "run"},
            {"name": "dash", "sha256": sha("dash-key").upper(), "projects": ["*"], "role": "read"},
        ]
    }
)


def test_keys_are_found_by_their_hash_and_scoped_to_projects():
    ci = RING.authenticate("ci-key")
    assert ci is not None and ci.name == "ci" and ci.role is Role.RUN
    assert ci.allows("demo") and not ci.allows("other")
    dash = RING.authenticate("dash-key")
    assert dash is not None and dash.allows("anything") and dash.role is Role.READ
    assert RING.authenticate("nope") is None
    assert RING.authenticate("") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "keys"),
        ({"keys": [{"sha256": "xyz", "projects": ["a"], "role": "run"}]}, "sha256"),
        ({"keys": [{"sha256": "a" * 64, "projects": "a", "role": "run"}]}, "projects"),
        ({"keys": [{"sha256": "a" * 64, "projects": ["a"], "role": "owner"}]}, "role"),
    ],
)
def test_invalid_keys_files_say_what_is_wrong(document, message):
    with pytest.raises(ValueError, match=message):
        KeyRing.from_document(document)


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_stream_tokens_are_bound_to_one_stream_and_expire():
    clock = Clock()
    tokens = StreamTokens(b"secret", ttl_s=60, clock=clock)
    token = tokens.issue("demo", "s1")
    assert tokens.verify(token, "demo", "s1")
    assert not tokens.verify(token, "demo", "s2")
    assert not tokens.verify(token, "other", "s1")
    assert not StreamTokens(b"another secret", 60, clock).verify(token, "demo", "s1")
    expires, _, mac = token.partition(".")
    assert not tokens.verify(f"{int(expires) + 1000}.{mac}", "demo", "s1")  # forged expiry
    assert not tokens.verify("garbage", "demo", "s1")
    clock.now += 61
    assert not tokens.verify(token, "demo", "s1")
