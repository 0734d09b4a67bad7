"""The keys file is re-read when it changes, at most once per check interval, on a clock the
test moves: no real seconds slept."""

import hashlib
import json

from handlers.auth import KeysFile
from tests.fakes.clock import FakeClock


def write(path, *keys: str) -> None:
    entries = [
        {"name": key, "sha256": hashlib.sha256(key.encode()).hexdigest(), "projects": ["*"]}
        for key in keys
    ]
    path.write_text(json.dumps({"keys": [{**e, "role": "read"} for e in entries]}))


async def test_a_changed_keys_file_is_picked_up_after_the_check_interval(tmp_path):
    path = tmp_path / "keys.json"
    write(path, "old-key")
    clock = FakeClock()
    keys = KeysFile(path, check_interval_s=1.0, monotonic=clock.monotonic)
    write(path, "old-key", "a-longer-new-key")  # another size: a change whatever the mtime
    await clock.advance(0.5)
    assert keys.ring().authenticate("a-longer-new-key") is None  # not checked yet
    await clock.advance(0.5)
    assert keys.ring().authenticate("a-longer-new-key") is not None


async def test_a_broken_keys_file_keeps_the_keys_loaded(tmp_path):
    path = tmp_path / "keys.json"
    write(path, "key")
    clock = FakeClock()
    keys = KeysFile(path, check_interval_s=1.0, monotonic=clock.monotonic)
    path.write_text("{not json")
    await clock.advance(1.0)
    assert keys.ring().authenticate("key") is not None
