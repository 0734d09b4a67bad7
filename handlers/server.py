"""`agent-gateway serve`: uvicorn around the app, draining runs before it exits."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn

from handlers.settings import ENV_PREFIX, Settings

log = logging.getLogger("agent_gateway")


class GatewayServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM/SIGINT first stops every run (each publishes
    its `done`) and only then lets uvicorn close connections and exit. A second signal
    exits at once."""

    def __init__(self, config: uvicorn.Config, drain: Any, on_hangup: Any = None) -> None:
        super().__init__(config)
        self._drain = drain
        self._on_hangup = on_hangup
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        if self._on_hangup is not None:
            self._loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._loop.call_soon_threadsafe(self._start_drain, sig)

    def _start_drain(self, sig: int) -> None:
        async def drain_then_exit() -> None:
            try:
                await self._drain()
            finally:
                super(GatewayServer, self).handle_exit(sig, None)

        self._drain_task = asyncio.ensure_future(drain_then_exit())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings) -> int:
    from handlers.api import create_app
    from handlers.bootstrap import build_gateway
    from handlers.limits import head_timeout_protocol
    from handlers.logs import configure_logging, redact_logs

    configure_logging(settings.log_level, settings.log_format)
    if not _is_loopback(settings.host) and settings.api_keys_file is None:
        print(
            f"error: {ENV_PREFIX}HOST={settings.host}: without {ENV_PREFIX}API_KEYS_FILE "
            "(auth off) the gateway only listens on loopback",
            file=sys.stderr,
        )
        return 2
    gateway = build_gateway(settings)
    redact_logs(gateway.service.values_in_use.text)
    app = create_app(gateway)

    async def drain() -> None:
        # Streams end on their own once their run is done: runs first, then what is left
        # (streams of other replicas' runs, a frozen client), before uvicorn stops.
        log.info("stopping: cancelling %d running agents", gateway.service.active_count)
        await gateway.service.shutdown(settings.shutdown_grace_s)
        app.state.streams.close_all()

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # configure_logging did it
        timeout_graceful_shutdown=5,
        lifespan="on",
        http=head_timeout_protocol(settings.head_timeout_s),
    )
    # Everything allocated so far lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall streaming by tens of milliseconds.
    gc.freeze()
    # A young pass runs once 700 more container objects are alive than at the last one
    # (CPython's default); streaming a hundred runs then made 40-50 passes of over 0.5 ms
    # each in 6 s, almost none collecting anything (what a run drops, reference counts
    # free). At 50,000 it made one. Cyclic garbage waits longer: a few MB at most.
    gc.set_threshold(50_000, 20, 10)
    keys = gateway.access.keys
    GatewayServer(config, drain, keys.reload if keys else None).run()
    return 0
