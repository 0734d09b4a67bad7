"""Fixtures of the tests against the real `opencode serve`: one fake OpenAI-compatible API
and one server per test module (starting opencode takes seconds)."""

from __future__ import annotations

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.opencode_server import OPENCODE, OpenCodeServer
from tests.fakes.servers import RunningServer


@pytest.fixture(scope="module")
def fake_api():
    fake = FakeOpenAI()
    with RunningServer(fake.app) as server:
        yield fake, server.url


@pytest.fixture(scope="module")
def opencode(fake_api, tmp_path_factory):
    assert OPENCODE.exists(), "opencode is missing: `make test` installs it into tests/agents"
    with OpenCodeServer(tmp_path_factory.mktemp("opencode"), fake_api[1]) as server:
        yield server
