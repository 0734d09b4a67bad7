import asyncio

import pytest

from domain.background import serve_together


async def swallows_one_cancel(ended: list[str]) -> None:
    """As a library call that turns a cancellation into a return value does."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass
    try:
        await asyncio.sleep(3600)  # the next round of its loop
    finally:
        ended.append("stubborn")


async def plain(ended: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        ended.append("plain")


async def test_a_loop_that_swallowed_a_cancellation_is_still_stopped():
    ended: list[str] = []
    served = asyncio.ensure_future(serve_together(swallows_one_cancel(ended), plain(ended)))
    await asyncio.sleep(0.01)
    served.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await served
    assert sorted(ended) == ["plain", "stubborn"]


async def test_a_failing_loop_stops_the_others_and_its_error_is_raised():
    ended: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("backend gone for good")

    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="gone for good"):
            await serve_together(fails(), plain(ended))
    assert ended == ["plain"]
