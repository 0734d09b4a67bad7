"""The exec API through the official client: open an exec, write its stdin, read its
status. The client's errors (ApiException, WebSocketException, OSError) become ExecFailed
here and nowhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import V5_CHANNEL_PROTOCOL, WSClient
from websocket import WebSocketException

STATUS_CHANNEL = 3
STDIN_FRAME_BYTES = 32 * 1024


class ExecFailed(Exception):
    """An exec could not be opened or written to (why in the message)."""


@dataclass(frozen=True, slots=True)
class Target:
    configuration: client.Configuration
    namespace: str
    pod: str
    container: str

    def exec_with_stdin(
        self, command: list[str], stdin: bytes, keep_open: bool = False
    ) -> WSClient:
        """Starts the command and writes `stdin` to it, then closes stdin (unless
        `keep_open`: an interactive agent reads more later): that needs the v5 subprotocol
        (Kubernetes 1.30+); v4 has no way to close one channel."""
        connection = self.exec(command, with_stdin=True)
        try:
            if connection.subprotocol != V5_CHANNEL_PROTOCOL:
                raise ExecFailed(
                    f"the API server offered {connection.subprotocol!r} for exec; closing "
                    f"stdin needs {V5_CHANNEL_PROTOCOL} (Kubernetes 1.30 or later)",
                )
            write_stdin(connection, stdin)
            if not keep_open:
                connection.close_channel(0)
        except (WebSocketException, OSError) as exc:
            connection.close()
            raise ExecFailed(f"exec in pod {self.namespace}/{self.pod} failed: {exc}") from exc
        except ExecFailed:
            connection.close()
            raise
        return connection

    def exec(self, command: list[str], preload: bool = False, with_stdin: bool = False) -> Any:
        # stream() swaps the ApiClient's call_api while it runs: one ApiClient per call.
        api = client.CoreV1Api(client.ApiClient(self.configuration))
        try:
            return stream(
                api.connect_get_namespaced_pod_exec,
                self.pod,
                self.namespace,
                command=command,
                container=self.container,
                stdin=with_stdin,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=preload,
                binary=True,
            )
        except (ApiException, OSError, WebSocketException) as exc:
            raise ExecFailed(f"exec in pod {self.namespace}/{self.pod} failed: {exc}") from exc


def write_stdin(connection: WSClient, data: bytes) -> None:
    for offset in range(0, len(data), STDIN_FRAME_BYTES):
        connection.write_channel(0, data[offset : offset + STDIN_FRAME_BYTES])


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
