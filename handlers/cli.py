"""The `agent-gateway` command: serve, run, follow."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

import httpx
import uvicorn
from httpx_sse import ServerSentEvent, SSEError, connect_sse

from handlers.settings import ENV_PREFIX, Settings, SettingsError, load_settings

log = logging.getLogger("agent_gateway")
DEFAULT_URL = "http://127.0.0.1:8080"


# --- serve ---------------------------------------------------------------------------------


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
    from sse_starlette.sse import AppStatus

    from handlers.api import create_app
    from handlers.bootstrap import build_gateway
    from handlers.limits import head_timeout_protocol
    from handlers.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if not _is_loopback(settings.host) and settings.api_keys_file is None:
        print(
            f"error: {ENV_PREFIX}HOST={settings.host}: without {ENV_PREFIX}API_KEYS_FILE "
            "(auth off) the gateway only listens on loopback",
            file=sys.stderr,
        )
        return 2
    gateway = build_gateway(settings)
    # Streams end on their own once their run is done; we drain runs before uvicorn stops.
    AppStatus.disable_automatic_graceful_drain()

    async def drain() -> None:
        log.info("stopping: cancelling %d running agents", gateway.service.active_count)
        await gateway.service.shutdown(settings.shutdown_grace_s)
        AppStatus.should_exit = True  # end any stream still open (for instance a frozen client)

    config = uvicorn.Config(
        create_app(gateway),
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
    keys = gateway.access.keys
    GatewayServer(config, drain, keys.reload if keys else None).run()
    return 0


# --- run and follow ------------------------------------------------------------------------


class StreamFollower:
    """Follows an event stream to `done`, resuming with Last-Event-ID after a drop."""

    def __init__(
        self, client: httpx.Client, url: str, max_retries: int = 8, out: Any = sys.stdout
    ) -> None:
        self._client = client
        self._url = url
        self._max_retries = max_retries
        self._out = out
        self.last_id: str | None = None
        self.done: dict[str, Any] | None = None
        self._at_line_start = True

    def follow(self) -> dict[str, Any]:
        failures = 0
        while self.done is None:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            progressed = False
            try:
                with connect_sse(self._client, "GET", self._url, headers=headers) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        raise SystemExit(_http_error(source.response))
                    for event in source.iter_sse():
                        progressed = True
                        self._show(event)
                        if event.event == "done":
                            break
            except (httpx.TransportError, SSEError) as exc:
                log.debug("stream dropped: %s", exc)
            if self.done is not None:
                break
            failures = 0 if progressed else failures + 1
            if failures > self._max_retries:
                raise SystemExit(f"error: the stream dropped {failures} times; giving up")
            time.sleep(min(0.25 * 2**failures, 8.0))
        return self.done

    def _show(self, event: ServerSentEvent) -> None:
        if event.id:
            self.last_id = event.id
        data = json.loads(event.data) if event.data else {}
        if event.event == "output" and data.get("type") in ("text", "thinking"):
            self._write(data.get("content", ""))
        elif event.event == "output" and data.get("type") == "system":
            if data.get("subtype") == "init":  # status chatter stays out of the way
                self._line(f"[session] {data.get('session_id')} model {data.get('model')}")
        elif event.event == "output":
            self._line(f"[{data.get('type')}] {_summary(data)}")
        elif event.event == "error":
            self._line(f"[error] {data.get('message')}")
        elif event.event == "gap":
            self._line(f"[gap] events before {data.get('first_available')} are gone")
        elif event.event == "done":
            self.done = data
            fields = ("status", "exit_code", "duration_ms", "input_tokens", "output_tokens")
            self._line("[done] " + " ".join(f"{k}={data.get(k)}" for k in fields))

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
        if text:
            self._at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        self._write(("" if self._at_line_start else "\n") + text + "\n")


def _summary(data: dict[str, Any]) -> str:
    if data.get("type") == "tool_use":
        return f"{data.get('tool')} {json.dumps(data.get('input'), ensure_ascii=False)[:200]}"
    return str(data.get("content", ""))[:200]


def _http_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"error: {response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"error: HTTP {response.status_code}"


def _exit_code(done: dict[str, Any]) -> int:
    if done.get("status") == "succeeded":
        return 0
    code = done.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


def _client(base_url: str, api_key: str | None) -> httpx.Client:
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(10, read=60))


def run_command(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"prompt": args.prompt}
    if args.provider:
        body["provider"] = args.provider
    with _client(args.url, args.api_key) as client:
        try:
            response = client.post(f"/projects/{args.project}/runs", json=body)
        except httpx.TransportError as exc:
            raise SystemExit(f"error: cannot reach the gateway at {args.url}: {exc}") from None
        if response.status_code != 202:
            raise SystemExit(_http_error(response))
        return _exit_code(StreamFollower(client, response.json()["stream_url"]).follow())


def follow_command(args: argparse.Namespace) -> int:
    with _client(args.url, args.api_key) as client:
        return _exit_code(StreamFollower(client, args.stream_url).follow())


# --- argument parsing ------------------------------------------------------------------------


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=f"{field.description or ''} (env {ENV_PREFIX}{name.upper()})".strip(),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gateway")
    _add_setting_flags(serve_parser)
    for name, help_text in (("run", "start a run and follow it"), ("follow", "follow a stream")):
        sub = commands.add_parser(name, help=help_text)
        if name == "run":
            sub.add_argument("project")
            sub.add_argument("prompt")
            sub.add_argument("--provider", action="append", help="repeat for a fallback chain")
        else:
            sub.add_argument("stream_url")
        sub.add_argument("--url", default=DEFAULT_URL, help=f"gateway URL (default {DEFAULT_URL})")
        sub.add_argument("--api-key", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        overrides = {name: getattr(args, name) for name in Settings.model_fields}
        try:
            settings = load_settings(**overrides)
            return serve(settings)
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.command == "run":
        return run_command(args)
    return follow_command(args)


if __name__ == "__main__":
    sys.exit(main())
