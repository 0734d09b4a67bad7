"""One suite for every CredentialStore (memory, Redis, PostgreSQL), driven through the
Credentials use case with the real AES-GCM key ring: what is stored opens only for its
project and name, rotation re-seals under the first key, and an old key is then no longer
needed (and a ring without the key that sealed a value says so)."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as redis

from adapters.aes_gcm import AesGcmKeyRing
from adapters.memory import MemoryCredentialStore
from adapters.postgres import PostgresBackend, PostgresCredentialStore
from adapters.redis_store import RedisCredentialStore
from domain.credentials import Credentials
from domain.errors import CredentialsUnavailable, CredentialUnreadable
from tests.fakes.clock import FakeClock

OLD = ("old", os.urandom(32))
NEW = ("new", os.urandom(32))
VALUE = "s3cret-value-0123456789"


def ring(*keys: tuple[str, bytes]) -> AesGcmKeyRing:
    text = ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in keys)
    return AesGcmKeyRing.from_setting(text)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def store(request):
    if request.param == "memory":
        yield MemoryCredentialStore()
        return
    if request.param == "postgres":
        backend = PostgresBackend(request.getfixturevalue("database_url"), history_days=30)
        await backend.start()
        yield PostgresCredentialStore(backend.store.pool)
        await backend.close()
        return
    client = redis.from_url(request.getfixturevalue("redis_server").url)
    yield RedisCredentialStore(client, prefix=f"t{uuid.uuid4().hex}")
    await client.aclose()


async def test_put_list_delete_and_values_open_for_runs(store):
    credentials = Credentials(store, ring(OLD), FakeClock())
    await credentials.put("demo", "B_TOKEN", VALUE, None)
    await credentials.put("demo", "A_KEY", VALUE + "-a", "REGISTRY_KEY")
    await credentials.put("other", "B_TOKEN", VALUE + "-other", None)
    listed = await credentials.list_for_project("demo")
    assert [(c.name, c.env) for c in listed] == [("A_KEY", "REGISTRY_KEY"), ("B_TOKEN", "B_TOKEN")]
    assert all(VALUE.encode() not in c.sealed for c in listed)
    given = await credentials.for_run("demo")
    assert given.env == {"REGISTRY_KEY": VALUE + "-a", "B_TOKEN": VALUE}
    assert given.names == ("A_KEY", "B_TOKEN")
    assert await credentials.delete("demo", "A_KEY") is True
    assert await credentials.delete("demo", "A_KEY") is False
    assert (await credentials.for_run("demo")).env == {"B_TOKEN": VALUE}
    assert (await credentials.for_run("nobody")).env == {}


async def test_a_ciphertext_moved_to_another_project_or_name_does_not_open(store):
    credentials = Credentials(store, ring(OLD), FakeClock())
    sealed = await credentials.put("demo", "TOKEN", VALUE, None)
    await store.put(replace(sealed, project_id="other"))
    with pytest.raises(CredentialUnreadable, match="another project"):
        await credentials.for_run("other")
    await store.put(replace(sealed, name="RENAMED"))
    with pytest.raises(CredentialUnreadable):
        await credentials.for_run("demo")


async def test_rotation_re_seals_under_the_first_key_and_the_old_one_can_go(store):
    old_only = Credentials(store, ring(OLD), FakeClock())
    await old_only.put("demo", "TOKEN", VALUE, None)
    await old_only.put("other", "TOKEN", VALUE + "-2", None)
    both = Credentials(store, ring(NEW, OLD), FakeClock())
    assert (await both.for_run("demo")).env == {"TOKEN": VALUE}  # all keys open
    assert await both.rotate() == 2
    assert await both.rotate() == 0  # nothing is left under the old key
    new_only = Credentials(store, ring(NEW), FakeClock())
    assert (await new_only.for_run("demo")).env == {"TOKEN": VALUE}
    assert (await new_only.for_run("other")).env == {"TOKEN": VALUE + "-2"}
    with pytest.raises(CredentialUnreadable, match="'new', which is not in the ring"):
        await old_only.for_run("demo")  # after rotation the old key opens nothing


async def test_without_a_key_ring_nothing_is_stored(store):
    credentials = Credentials(store, None, FakeClock())
    with pytest.raises(CredentialsUnavailable, match="AGENT_GATEWAY_CREDENTIAL_KEYS"):
        await credentials.put("demo", "TOKEN", VALUE, None)
    assert await credentials.list_for_project("demo") == []


async def test_a_ciphertext_moved_to_another_variable_or_cut_short_does_not_open(store):
    credentials = Credentials(store, ring(OLD), FakeClock())
    sealed = await credentials.put("demo", "TOKEN", VALUE, None)
    await store.put(replace(sealed, env="LD_PRELOAD"))
    with pytest.raises(CredentialUnreadable):
        await credentials.for_run("demo")
    await store.put(replace(sealed, sealed=sealed.sealed[:20]))
    with pytest.raises(CredentialUnreadable, match="truncated"):
        await credentials.for_run("demo")


def test_a_key_ring_with_two_keys_of_one_id_is_refused():
    with pytest.raises(ValueError, match="differ"):
        ring(OLD, ("old", os.urandom(32)))
