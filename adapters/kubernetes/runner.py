"""Agent processes inside project pods, through the Kubernetes exec API.

The official client is blocking, so each exec is pumped by a worker thread of a bounded
pool; output crosses to the event loop through a bounded queue, which also holds a flooding
agent back. Closing an exec connection does not stop the process in the container
(kubernetes/kubernetes #89031, kubectl #1076): stopping is a second exec that signals every
process carrying the run's tag, then the first exec reports the exit status."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import V5_CHANNEL_PROTOCOL, WSClient, _IgnoredIO
from websocket import WebSocketException

from domain.errors import ProcessLost, ProviderUnavailable
from ports.process_runner import Channel

log = logging.getLogger(__name__)

TAG_VARIABLE = "AGENT_GATEWAY_PROCESS_TAG"
# Variables the runner forwards into the pod (as `env` arguments, which end up in the exec
# request): nothing secret. Credentials belong in the pod's own spec (a Secret).
FORWARDED = ("IS_SANDBOX",)
STATUS_CHANNEL = 3
OPEN_TIMEOUT_S = 30.0
STDIN_FRAME_BYTES = 32 * 1024

# Runs inside the pod with the tag and the grace periods as positional arguments (never
# spliced into the script): interrupt, terminate, then kill every process whose environment
# carries the tag, including descendants that left the process group (the claude CLI starts
# tools with setsid) or were orphaned.
STOP_SCRIPT = r"""
tag="AGENT_GATEWAY_PROCESS_TAG=$1"
tagged() {
  for environ in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$environ" 2>/dev/null | grep -qxF "$tag"; then
      pid=${environ#/proc/}; echo "${pid%/environ}"
    fi
  done
}
signal_all() { for pid in $(tagged); do kill -"$1" "$pid" 2>/dev/null; done; }
wait_gone() {
  deadline=$(( $(date +%s) + $1 ))
  while [ -n "$(tagged)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
}
[ -z "$(tagged)" ] && exit 0
signal_all INT; wait_gone "$2"
signal_all TERM; wait_gone "$3"
signal_all KILL; wait_gone 5
[ -z "$(tagged)" ]
"""


def load_kube_configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or
    ~/.kube/config, or the given path) and context."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and kubeconfig is None and context is None:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return configuration


@dataclass(frozen=True, slots=True)
class PodLocator:
    """Which pod and container serve a project: a name template or a label selector
    template (`{project}` replaced), in one namespace."""

    namespace: str
    pod_template: str = "{project}-agent-0"
    selector_template: str | None = None
    container: str | None = None


class KubernetesExecRunner:
    """ProcessRunner that execs agents in the project's pod."""

    def __init__(
        self,
        configuration: client.Configuration,
        locator: PodLocator,
        interrupt_grace_s: float = 5.0,
        terminate_grace_s: float = 5.0,
        max_threads: int = 128,
        ping_interval_s: float = 30.0,
    ) -> None:
        self._configuration = configuration
        self._locator = locator
        self._grace = (interrupt_grace_s, terminate_grace_s)
        self._ping_interval_s = ping_interval_s
        # Pumps hold a thread for a whole run; lookups, exec opens and stop scripts are short
        # and get threads of their own, so running agents can never starve a new start.
        self._max_pumps = max_threads
        self._pumps = ThreadPoolExecutor(max_threads, thread_name_prefix="kube-exec-pump")
        self._calls = ThreadPoolExecutor(16, thread_name_prefix="kube-api")
        self._running: set[ExecProcess] = set()

    def check(self, program: str) -> str | None:
        return None  # the pod's image is checked when a run starts

    async def start(
        self, project_id: str, argv: Sequence[str], env: Mapping[str, str], stdin: bytes = b""
    ) -> ExecProcess:
        if len(self._running) >= self._max_pumps:
            raise ProviderUnavailable(
                "claude-code", f"{self._max_pumps} execs are running: no thread left to pump one"
            )
        loop = asyncio.get_running_loop()
        pod, container = await loop.run_in_executor(self._calls, self._find_pod, project_id)
        tag = secrets.token_hex(16)
        forwarded = [f"{k}={env[k]}" for k in FORWARDED if k in env]
        command = ["env", f"{TAG_VARIABLE}={tag}", *forwarded, *argv]
        target = Target(self._configuration, self._locator.namespace, pod, container)
        try:
            connection = await asyncio.wait_for(
                loop.run_in_executor(self._calls, target.exec_with_stdin, command, stdin),
                OPEN_TIMEOUT_S,
            )
        except TimeoutError:
            # The worker thread stays blocked until the socket gives up; the run fails now.
            raise ProviderUnavailable(
                "claude-code", f"exec in pod {target.namespace}/{pod} did not open in time"
            ) from None
        process = ExecProcess(target, tag, connection, self._calls, self._grace)
        self._running.add(process)
        # In the caller's context: what the pump logs names the run it works for.
        context = contextvars.copy_context()
        pump = self._pumps.submit(context.run, process.pump, self._ping_interval_s)
        pump.add_done_callback(lambda _: loop.call_soon_threadsafe(self._running.discard, process))
        return process

    def _find_pod(self, project_id: str) -> tuple[str, str]:
        """(pod name, container) for the project, or ProviderUnavailable saying why."""
        locator = self._locator
        api = client.CoreV1Api(client.ApiClient(self._configuration))
        try:
            if locator.selector_template:
                selector = locator.selector_template.format(project=project_id)
                pods = api.list_namespaced_pod(locator.namespace, label_selector=selector).items
                pod = next((p for p in pods if _running_and_ready(p)), None)
                if pod is None:
                    raise ProviderUnavailable(
                        "claude-code",
                        f"no Running, Ready pod matches selector {selector!r} in namespace "
                        f"{locator.namespace!r} ({len(pods)} found)",
                    )
            else:
                name = locator.pod_template.format(project=project_id)
                pod = api.read_namespaced_pod(name, locator.namespace)
                if pod.status is None or pod.status.phase != "Running":
                    phase = pod.status.phase if pod.status else "unknown"
                    raise ProviderUnavailable(
                        "claude-code",
                        f"pod {name!r} in namespace {locator.namespace!r} is {phase}, not Running",
                    )
        except ApiException as exc:
            if exc.status == 404:
                raise ProviderUnavailable(
                    "claude-code",
                    f"no pod {locator.pod_template.format(project=project_id)!r} in namespace "
                    f"{locator.namespace!r}",
                ) from exc
            raise ProviderUnavailable("claude-code", f"Kubernetes API: {exc.reason}") from exc
        except (OSError, WebSocketException, ValueError) as exc:
            raise ProviderUnavailable("claude-code", f"Kubernetes API unreachable: {exc}") from exc
        container = locator.container or pod.spec.containers[0].name
        return pod.metadata.name, container


def _running_and_ready(pod: Any) -> bool:
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


@dataclass(frozen=True, slots=True)
class Target:
    configuration: client.Configuration
    namespace: str
    pod: str
    container: str

    def exec_with_stdin(self, command: list[str], stdin: bytes) -> WSClient:
        """Starts the command and writes `stdin` to it, then closes stdin: that needs the
        v5 subprotocol (Kubernetes 1.30+); v4 has no way to close one channel."""
        connection = self.exec(command, with_stdin=True)
        try:
            if connection.subprotocol != V5_CHANNEL_PROTOCOL:
                raise ProviderUnavailable(
                    "claude-code",
                    f"the API server offered {connection.subprotocol!r} for exec; closing "
                    f"stdin needs {V5_CHANNEL_PROTOCOL} (Kubernetes 1.30 or later)",
                )
            for offset in range(0, len(stdin), STDIN_FRAME_BYTES):
                connection.write_channel(0, stdin[offset : offset + STDIN_FRAME_BYTES])
            connection.close_channel(0)
        except (WebSocketException, OSError) as exc:
            connection.close()
            raise ProviderUnavailable(
                "claude-code", f"exec in pod {self.namespace}/{self.pod} failed: {exc}"
            ) from exc
        except ProviderUnavailable:
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
            raise ProviderUnavailable(
                "claude-code", f"exec in pod {self.namespace}/{self.pod} failed: {exc}"
            ) from exc


class ExecProcess:
    """AgentProcess for one exec. A worker thread (`pump`) reads frames and hands them to
    the loop."""

    QUEUE_CHUNKS = 64

    def __init__(
        self,
        target: Target,
        tag: str,
        connection: WSClient,
        calls: ThreadPoolExecutor,  # for the stop script's exec
        grace: tuple[float, float],
    ) -> None:
        self._target = target
        self._tag = tag
        self._connection = connection
        self._calls = calls
        self._grace = grace
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[Channel, bytes] | None] = asyncio.Queue(self.QUEUE_CHUNKS)
        self._exited: asyncio.Future[int | None] = self._loop.create_future()
        self._failure: str | None = None
        self._stop_lock = asyncio.Lock()
        self._stopped = False
        self._closing = threading.Event()
        # The client keeps a copy of all output for read_all() unless told otherwise, and
        # stream() cannot tell it: drop that copy so a long run does not grow memory.
        connection._all = _IgnoredIO()

    def pump(self, ping_interval_s: float) -> None:
        """Runs in a worker thread until the exec ends: frames in, status out."""
        connection = self._connection
        status = bytearray()
        last_ping = time.monotonic()
        try:
            while connection.is_open():
                connection.update(timeout=1)
                self._drain(status)
                if time.monotonic() - last_ping > ping_interval_s:
                    connection.sock.ping()  # keeps proxies from closing a silent exec
                    last_ping = time.monotonic()
        except (WebSocketException, OSError) as exc:
            log.warning("exec in %s/%s lost: %s", self._target.namespace, self._target.pod, exc)
        finally:
            connection.close()
            self._drain(status)  # what the last update() buffered, after the close
            code, self._failure = parse_status(bytes(status))
            self._hand_over(None)
            self._loop.call_soon_threadsafe(self._set_exit, code)

    def _drain(self, status: bytearray) -> None:
        # read_channel() may itself call update() and buffer frames of other channels, so
        # drain until a pass finds nothing.
        while True:
            stdout = self._connection.read_channel(1)
            stderr = self._connection.read_channel(2)
            extra = self._connection.read_channel(STATUS_CHANNEL)
            if stdout:
                self._hand_over(("stdout", stdout))
            if stderr:
                self._hand_over(("stderr", stderr))
            status += extra or b""
            if not (stdout or stderr or extra):
                return

    def _hand_over(self, item: tuple[Channel, bytes] | None) -> None:
        """Blocks this worker thread while the queue is full: back-pressure on the pod."""
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while not self._closing.is_set():
            try:
                future.result(timeout=1)
                return
            except TimeoutError:
                continue
        future.cancel()

    def _set_exit(self, code: int | None) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]:
        try:
            while (item := await self._queue.get()) is not None:
                yield item
        finally:
            self._closing.set()  # the consumer is gone: never block the pump again

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        if code is None:
            raise ProcessLost(self._failure or "exit status unknown")
        return code

    async def stop(self) -> None:
        """Stops every process of the run in the pod, then waits for the exec's status."""
        async with self._stop_lock:
            if self._stopped:
                return
            interrupt_grace, terminate_grace = self._grace
            command = [
                "sh",
                "-c",
                STOP_SCRIPT,
                "sh",
                self._tag,
                str(round(interrupt_grace)),
                str(round(terminate_grace)),
            ]
            try:
                await self._loop.run_in_executor(
                    self._calls, lambda: self._target.exec(command, preload=True)
                )
            except ProviderUnavailable as exc:
                log.warning("could not stop run processes in the pod: %s", exc)
            if not self._exited.done():
                try:
                    await asyncio.wait_for(asyncio.shield(self._exited), 10)
                except TimeoutError:
                    log.warning("exec did not report a status after stop; closing it")
                    self._connection.close()
                    await asyncio.shield(self._exited)
            self._stopped = True


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
