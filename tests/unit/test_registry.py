import threading

import pytest

from domain.errors import InvalidRequest, UnknownProvider
from domain.registry import ProviderRegistry
from tests.fakes.agents import FakeCodeAgent


def test_first_registered_provider_is_the_default_and_order_is_kept():
    registry = ProviderRegistry()
    registry.register("b", FakeCodeAgent())
    registry.register("a", FakeCodeAgent(unavailable="down"))
    assert registry.default_name() == "b"
    described = registry.describe()
    assert [(name, default, caps.available) for name, default, caps in described] == [
        ("b", True, True),
        ("a", False, False),
    ]


def test_unknown_provider_error_lists_the_known_ones():
    registry = ProviderRegistry()
    registry.register("claude-code", FakeCodeAgent())
    with pytest.raises(UnknownProvider, match="known providers: claude-code"):
        registry.get("nope")


def test_registering_a_name_twice_is_refused():
    registry = ProviderRegistry()
    registry.register("x", FakeCodeAgent())
    with pytest.raises(InvalidRequest):
        registry.register("x", FakeCodeAgent())


def test_concurrent_registration_keeps_every_provider():
    registry = ProviderRegistry()
    threads = [
        threading.Thread(target=registry.register, args=(f"p{i}", FakeCodeAgent()))
        for i in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(registry.names()) == sorted(f"p{i}" for i in range(50))
