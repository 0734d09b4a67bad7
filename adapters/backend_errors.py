"""A backend's library errors become the domain's BackendUnavailable (answered 503) at the
adapter's edge, once: each backend's adapters share one translation."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

from domain.errors import BackendUnavailable

P = ParamSpec("P")
T = TypeVar("T")


class ErrorTranslation:
    def __init__(self, backend: str, errors: tuple[type[BaseException], ...]) -> None:
        self._backend = backend
        self._errors = errors

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise BackendUnavailable(self._backend, str(exc) or type(exc).__name__) from exc

    def method(self, method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """An async method whose backend errors are BackendUnavailable."""

        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.around():
                return await method(*args, **kwargs)

        return wrapper
