"""Redis's errors become the domain's BackendUnavailable here, once, for every Redis adapter."""

from __future__ import annotations

from redis.exceptions import RedisError

from adapters.backend_errors import ErrorTranslation

_REDIS = ErrorTranslation("Redis", (RedisError, OSError))
redis_errors = _REDIS.around
translated = _REDIS.method
