"""Redis's errors become the domain's BackendUnavailable here, once, for every Redis adapter."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

from redis.exceptions import RedisError

from domain.errors import BackendUnavailable

P = ParamSpec("P")
T = TypeVar("T")


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise BackendUnavailable("Redis", str(exc) or type(exc).__name__) from exc


def translated(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """An async method whose Redis errors are BackendUnavailable."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with redis_errors():
            return await method(*args, **kwargs)

    return wrapper
