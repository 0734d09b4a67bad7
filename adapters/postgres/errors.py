"""PostgreSQL's errors become the domain's BackendUnavailable here, once, for every
PostgreSQL adapter."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from adapters.backend_errors import ErrorTranslation

_POSTGRES = ErrorTranslation("PostgreSQL", (psycopg.OperationalError, PoolTimeout, OSError))
postgres_errors = _POSTGRES.around
translated = _POSTGRES.method
