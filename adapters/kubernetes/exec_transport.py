"""The exec API spoken on the event loop: one WebSocket per exec, no thread per stream.

The official client stays the source of where the API server is and how to reach it: its
Configuration (in-cluster token, kubeconfig, exec credential plugins behind its refresh
hook) gives the address, the TLS settings and the Authorization header. This module opens
`pods/<pod>/exec` with them and speaks the channel subprotocol: one channel byte ahead of
each binary frame (0 stdin, 1 stdout, 2 stderr, 3 status JSON; 255 closes a channel, in v5
only). Its errors (handshake refused, connection lost, OS errors) become ExecFailed or
ExecLost here and nowhere else."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kubernetes import client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
)

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255
STDIN_FRAME_BYTES = 32 * 1024
# A bearer token read this long ago is used again without asking the client's refresh hook,
# which may run an exec credential plugin (a subprocess) when the token has expired.
CREDENTIALS_REUSE_S = 10.0


class ExecFailed(Exception):
    """An exec could not be opened or written to (why in the message)."""


class ExecLost(Exception):
    """An open exec's connection broke before the exit status came (why in the message)."""


@dataclass(frozen=True, slots=True)
class Target:
    namespace: str
    pod: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}"


class ExecSocket:
    """One open exec."""

    def __init__(self, connection: ClientConnection, target: Target) -> None:
        self._connection = connection
        self.target = target

    @property
    def protocol(self) -> str:
        return str(self._connection.subprotocol)

    async def write(self, data: bytes) -> None:
        """Writing to a process that has ended (the exec closed cleanly) does nothing."""
        try:
            for offset in range(0, len(data), STDIN_FRAME_BYTES):
                await self._connection.send(
                    bytes([STDIN]) + data[offset : offset + STDIN_FRAME_BYTES]
                )
        except ConnectionClosedOK:
            return
        except (ConnectionClosedError, OSError) as exc:
            raise ExecFailed(f"writing to the exec in pod {self.target} failed: {exc}") from exc

    async def close_stdin(self) -> None:
        """End of input for the process (v5 only: v4 has no way to close one channel)."""
        if self.protocol != V5_PROTOCOL:
            raise ExecFailed(
                f"the API server offered {self.protocol!r} for exec; closing stdin needs "
                f"{V5_PROTOCOL} (Kubernetes 1.30 or later)"
            )
        try:
            await self._connection.send(bytes([CLOSE, STDIN]))
        except ConnectionClosedOK:
            return
        except (ConnectionClosedError, OSError) as exc:
            raise ExecFailed(f"writing to the exec in pod {self.target} failed: {exc}") from exc

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, data) until the API server closes the exec; ExecLost if the connection
        breaks first (a reset, or no pong within the ping timeout)."""
        try:
            async for message in self._connection:
                if isinstance(message, bytes) and message:
                    yield message[0], message[1:]
        except ConnectionClosedError as exc:
            raise ExecLost(_lost_reason(exc)) from exc
        except OSError as exc:
            raise ExecLost(str(exc)) from exc

    async def close(self) -> None:
        await self._connection.close()

    def abort(self) -> None:
        """Drops the connection at once, without a closing handshake."""
        self._connection.transport.abort()


def _lost_reason(exc: ConnectionClosedError) -> str:
    if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1011:
        return "no answer to keepalive pings"  # websockets closes with 1011 on a ping timeout
    if exc.rcvd is not None:
        return f"closed by the API server with code {exc.rcvd.code} {exc.rcvd.reason!r}".strip()
    return "connection lost"


@functools.lru_cache(maxsize=64)
def _query_value(text: str) -> str:
    """`text` as a query value. Cached: the runner's scripts (kilobytes) go with every exec."""
    return urllib.parse.quote_plus(text)


class ExecClient:
    """Opens execs with the client Configuration's address, TLS settings and credentials."""

    def __init__(self, configuration: client.Configuration, ping_interval_s: float) -> None:
        self._configuration = configuration
        host = configuration.host.rstrip("/")
        scheme, _, rest = host.partition("://")
        self._base = ("wss" if scheme == "https" else "ws") + "://" + rest
        self._tls = _tls_context(configuration) if scheme == "https" else None
        self._server_hostname = configuration.tls_server_name or None
        # Pings every half interval and a pong awaited as long: a connection that went silent
        # (a network cut, an API server gone without a reset) is noticed within the interval.
        self._ping_every_s = ping_interval_s / 2
        self._credentials: tuple[float, dict[str, str]] | None = None  # (read at, headers)
        self._refresh = asyncio.Lock()

    async def open(
        self, target: Target, command: list[str], stdin: bool, timeout_s: float
    ) -> ExecSocket:
        query = "&".join(
            [f"command={_query_value(part)}" for part in command]
            + [
                f"container={_query_value(target.container)}",
                f"stdin={'true' if stdin else 'false'}",
                "stdout=true&stderr=true&tty=false",
            ]
        )
        path = (
            f"/api/v1/namespaces/{urllib.parse.quote(target.namespace, safe='')}"
            f"/pods/{urllib.parse.quote(target.pod, safe='')}/exec"
        )
        headers = await self._headers()
        extra: dict[str, object] = {}
        if self._tls is not None:
            extra["ssl"] = self._tls
            if self._server_hostname:
                extra["server_hostname"] = self._server_hostname
        try:
            connection = await connect(
                f"{self._base}{path}?{query}",
                subprotocols=[V5_PROTOCOL, V4_PROTOCOL],  # type: ignore[list-item]
                additional_headers=headers,
                compression=None,  # the API server does not compress; never spend CPU on it
                proxy=self._configuration.proxy or None,
                open_timeout=timeout_s,
                ping_interval=self._ping_every_s,
                ping_timeout=self._ping_every_s,
                close_timeout=1,  # after a lost pong too: the run's failure waits on it
                max_size=None,  # the kubelet's frames are 32 KiB; the status is small
                user_agent_header="agent-gateway",
                **extra,  # type: ignore[arg-type]
            )
        except InvalidStatus as exc:
            raise ExecFailed(f"exec in pod {target} refused: {_refusal(exc)}") from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise ExecFailed(f"exec in pod {target} failed: {exc or type(exc).__name__}") from exc
        if connection.subprotocol not in (V5_PROTOCOL, V4_PROTOCOL):
            await connection.close()
            raise ExecFailed(
                f"the API server offered {connection.subprotocol!r} for exec in pod {target}"
            )
        return ExecSocket(connection, target)

    async def run(self, target: Target, command: list[str], timeout_s: float) -> str | None:
        """Runs a command without stdin to its end: None if it exited 0, else why not."""
        socket = await self.open(target, command, stdin=False, timeout_s=timeout_s)
        status = bytearray()
        try:
            async with asyncio.timeout(timeout_s):
                async for channel, data in socket.frames():
                    if channel == STATUS:
                        status += data
        except (ExecLost, TimeoutError) as exc:
            return f"exec in pod {target} lost: {exc or 'timed out'}"
        finally:
            await socket.close()
        code, failure = parse_status(bytes(status))
        return None if code == 0 else failure or f"exit code {code}"

    async def _headers(self) -> dict[str, str]:
        if self._credentials is None or self._credentials_stale():
            async with self._refresh:  # one refresh at a time; other opens wait for it
                if self._credentials is None or self._credentials_stale():
                    try:
                        headers = await asyncio.to_thread(self._read_credentials)
                    except Exception as exc:  # a credential plugin can fail in many ways
                        raise ExecFailed(f"cluster credentials: {exc}") from exc
                    self._credentials = (time.monotonic(), headers)
        return self._credentials[1]

    def _credentials_stale(self) -> bool:
        assert self._credentials is not None
        return time.monotonic() - self._credentials[0] > CREDENTIALS_REUSE_S

    def _read_credentials(self) -> dict[str, str]:
        configuration = self._configuration
        token = configuration.get_api_key_with_prefix("authorization")  # runs the refresh hook
        if token:
            return {"Authorization": token}
        if configuration.username or configuration.password:
            return {"Authorization": configuration.get_basic_auth_token()}
        return {}


def _tls_context(configuration: client.Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    return context


def _refusal(exc: InvalidStatus) -> str:
    """The API server's Status message for a refused exec (404 pod, 403 RBAC...)."""
    response = exc.response
    try:
        message = json.loads(response.body or b"").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")


def parse_status(raw: bytes) -> tuple[int | None, str | None]:
    """Channel 3 -> (exit code, failure message). Success is 0, NonZeroExitCode its code;
    anything else is no exit code with the message; nothing at all means the connection
    was lost before the status came."""
    if not raw.strip():
        return None, "exit status unknown: the exec connection closed without a status"
    try:
        status = json.loads(raw)
    except ValueError:
        return None, f"unreadable exec status: {raw[:200]!r}"
    if not isinstance(status, dict):
        return None, f"unreadable exec status: {raw[:200]!r}"
    if status.get("status") == "Success":
        return 0, None
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message")), None
                except (TypeError, ValueError):
                    break
    return None, str(status.get("message") or status.get("reason") or "exec failed")
