"""Agent processes inside project pods, through the Kubernetes exec API.

Execs are WebSockets on the event loop (exec_transport): no thread per run. The official
client's blocking calls (pod lookups, the reachability probe) are short and share a small
pool of threads."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from adapters.kubernetes.exec_transport import (
    STATUS,
    STDOUT,
    V4_PROTOCOL,
    ExecClient,
    ExecFailed,
    ExecLost,
    ExecSocket,
    Target,
    parse_status,
)
from adapters.kubernetes.pods import PodLocator, PodLookups
from adapters.kubernetes.process import AFTER_AGENT, STOP_SCRIPT, TAG_VARIABLE, ExecProcess
from domain.errors import AgentStartFailed
from domain.model import Completed
from domain.templates import KubePlacement

log = logging.getLogger(__name__)

# Variables the runner forwards into the pod as `env` arguments, which end up in the exec
# request (its URL, which API servers log) and in `ps`: nothing secret.
FORWARDED = ("IS_SANDBOX",)
OPEN_TIMEOUT_S = 30.0
# How long what the API server answered (or did not) stands before it is asked again: more
# often while it cannot be reached, so /providers shows it back soon after it is.
PROBE_EVERY_S = {True: 30.0, False: 3.0}  # by reachable
PROBE_TIMEOUT_S = 5.0
# A stop script that cannot be started (the API server is restarting) is tried again for
# this long before the run's processes are given up on.
STOP_RETRY_S = 30.0

# On an API server that speaks only v4.channel.k8s.io, stdin cannot be closed: the agent
# then reads its stdin through `head -c <length>`, which ends it after exactly that much.
V4_STDIN = 'head -c "$1" | { shift; exec "$@"; }'

# Secret variables and files travel on the exec's stdin, ahead of the agent's own input: a
# count line, then one `NAME=base64(value)` line each; again for files, `path=base64(content)`.
# This launcher (argv: sh -c LAUNCHER name argv...) reads exactly those lines (a shell reads
# a pipe byte by byte, so the rest stays for the agent), exports the variables, writes the
# files and execs the agent. Builtins only, but `base64 -d`, which gets a value on its
# stdin, and `mkdir -p` of a file's folder: no value is ever in an argv.
# Its own variables start with AGENT_GATEWAY_, which no credential may (domain/credentials);
# a value keeps its trailing newlines thanks to the `x` appended and taken off again.
LAUNCHER = r"""
IFS= read -r AGENT_GATEWAY_N || exit 125
AGENT_GATEWAY_I=0
while [ "$AGENT_GATEWAY_I" -lt "$AGENT_GATEWAY_N" ]; do
  IFS= read -r AGENT_GATEWAY_LINE || exit 125
  AGENT_GATEWAY_VALUE=$(printf '%s\n' "${AGENT_GATEWAY_LINE#*=}" | base64 -d && echo x) \
    || exit 125
  export "${AGENT_GATEWAY_LINE%%=*}=${AGENT_GATEWAY_VALUE%x}"
  AGENT_GATEWAY_I=$((AGENT_GATEWAY_I + 1))
done
IFS= read -r AGENT_GATEWAY_N || exit 125
AGENT_GATEWAY_I=0
AGENT_GATEWAY_UMASK=$(umask)
umask 077
while [ "$AGENT_GATEWAY_I" -lt "$AGENT_GATEWAY_N" ]; do
  IFS= read -r AGENT_GATEWAY_LINE || exit 125
  AGENT_GATEWAY_PATH=${AGENT_GATEWAY_LINE%%=*}
  mkdir -p -- "${AGENT_GATEWAY_PATH%/*}" || exit 125
  printf '%s\n' "${AGENT_GATEWAY_LINE#*=}" | base64 -d > "$AGENT_GATEWAY_PATH" || exit 125
  AGENT_GATEWAY_I=$((AGENT_GATEWAY_I + 1))
done
umask "$AGENT_GATEWAY_UMASK"
unset AGENT_GATEWAY_N AGENT_GATEWAY_I AGENT_GATEWAY_LINE AGENT_GATEWAY_VALUE AGENT_GATEWAY_PATH \
  AGENT_GATEWAY_UMASK
exec "$@"
"""


def framed(secret_env: Mapping[str, str], files: Mapping[str, bytes]) -> bytes:
    lines = [f"{len(secret_env)}"]
    lines += [f"{name}={base64.b64encode(v.encode()).decode()}" for name, v in secret_env.items()]
    lines.append(f"{len(files)}")
    lines += [f"{path}={base64.b64encode(data).decode()}" for path, data in files.items()]
    return ("\n".join(lines) + "\n").encode()


class KubernetesExecRunner:
    """ProcessRunner that execs agents in the project's pod."""

    def __init__(
        self,
        configuration: client.Configuration,
        locator: PodLocator,
        interrupt_grace_s: float = 5.0,
        terminate_grace_s: float = 5.0,
        max_execs: int = 1000,
        ping_interval_s: float = 20.0,
    ) -> None:
        self._configuration = configuration
        self._locator = locator
        self._grace = [str(round(interrupt_grace_s)), str(round(terminate_grace_s))]
        self._stop_timeout_s = OPEN_TIMEOUT_S + interrupt_grace_s + terminate_grace_s
        self._max_execs = max_execs
        self._calls = ThreadPoolExecutor(8, thread_name_prefix="kube-api")
        self._api = client.CoreV1Api(client.ApiClient(configuration))
        self._pods = PodLookups(self._api, self._calls)
        self._exec = ExecClient(configuration, ping_interval_s)
        self._running: set[ExecProcess] = set()
        self._v4_only = False  # learnt from the first exec the API server answered with v4
        self._unreachable: str | None = None  # why the API server did not answer, if not
        self._probed_at = -float("inf")
        self._probing = False

    def check(self, program: str) -> str | None:
        """Whether the API server answers, as last probed (the pod's image is checked when
        a run starts). Called on the event loop, so it never waits: a probe that is due
        runs in the background and its answer is what the next call says."""
        due = time.monotonic() - self._probed_at > PROBE_EVERY_S[self._unreachable is None]
        if due and not self._probing:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self._unreachable  # outside the gateway's loop: nothing to run it on
            self._probing = True
            loop.run_in_executor(self._calls, self._probe)
        return self._unreachable

    def _probe(self) -> None:
        try:
            # Its answer is not read: that it answers is the question.
            client.VersionApi(self._api.api_client).get_code(
                _request_timeout=PROBE_TIMEOUT_S, _preload_content=False
            )
            self._unreachable = None
        except ApiException as exc:  # it answered: the API server is there
            self._unreachable = None if exc.status else f"Kubernetes API: {exc.reason}"
        except (HTTPError, OSError) as exc:
            self._unreachable = f"Kubernetes API server unreachable: {exc}"
        finally:
            self._probed_at = time.monotonic()
            self._probing = False

    async def start(
        self,
        project_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes = b"",
        keep_stdin_open: bool = False,
        secret_env: Mapping[str, str] | None = None,
        files: Mapping[str, bytes] | None = None,
        placement: KubePlacement | None = None,
    ) -> ExecProcess:
        if len(self._running) >= self._max_execs:
            raise AgentStartFailed(f"{self._max_execs} execs are running, the most allowed")
        forwarded = [f"{k}={env[k]}" for k in FORWARDED if k in env]
        command = [*argv]
        if secret_env or files:
            command = ["sh", "-c", LAUNCHER, "agent-gateway-launcher", *command]
            stdin = framed(secret_env or {}, files or {}) + stdin
        # What the agent leaves behind is stopped in the same exec, once the agent has ended.
        after = ["sh", "-c", AFTER_AGENT, "agent-gateway-run", STOP_SCRIPT, *self._grace]
        target, tag, socket = await self._open_in_pod(
            project_id, placement, forwarded + after, command, stdin, keep_stdin_open
        )
        process = ExecProcess(socket, lambda: self._stop_in_pod(target, tag), keep_stdin_open)
        self._running.add(process)
        process.exited.add_done_callback(lambda _: self._running.discard(process))
        return process

    async def run(
        self,
        project_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes = b"",
        placement: KubePlacement | None = None,
        timeout_s: float = 30.0,
        max_output: int = 1024 * 1024,
    ) -> Completed:
        """`env` is not forwarded: the command sees the container's environment."""
        target, tag, socket = await self._open_in_pod(project_id, placement, [], [*argv], stdin)
        stdout, status = bytearray(), bytearray()
        try:
            async with asyncio.timeout(timeout_s):
                async for channel, data in socket.frames():
                    if channel == STDOUT:
                        stdout += data
                        if len(stdout) > max_output:
                            raise AgentStartFailed(f"{argv[0]!r} printed over {max_output} bytes")
                    elif channel == STATUS:
                        status += data
        except (AgentStartFailed, ExecLost, TimeoutError) as exc:
            await self._stop_in_pod(target, tag)
            if isinstance(exc, AgentStartFailed):
                raise
            raise AgentStartFailed(f"{argv[0]!r} in pod {target}: {exc or 'timed out'}") from exc
        except asyncio.CancelledError:  # the command goes on in the pod unless stopped
            await asyncio.shield(self._stop_in_pod(target, tag))
            raise
        finally:
            await socket.close()  # a cancel too
        code, failure = parse_status(bytes(status))
        if code is None:
            raise AgentStartFailed(f"{argv[0]!r} in pod {target}: {failure}")
        return Completed(code, bytes(stdout))

    async def _open_in_pod(
        self,
        project_id: str,
        placement: KubePlacement | None,
        outer: list[str],
        command: list[str],
        stdin: bytes,
        keep_stdin_open: bool = False,
    ) -> tuple[Target, str, ExecSocket]:
        """Opens `command` in the project's pod under a new run tag: its target, its tag and
        its socket. `outer` (`env` variables, then a wrapper) goes around `command` and its
        stdin's framing, so a wrapper waits for all of them."""
        locator = self._locator_for(placement)
        pod, container = await self._pods.find(locator, project_id)
        target = Target(locator.namespace, pod, container)
        try:
            tag, socket = await self._open(target, outer, command, stdin, keep_stdin_open)
        except ExecFailed as exc:
            self._pods.forget(locator, project_id)  # the pod may be gone: look again next time
            raise AgentStartFailed(str(exc)) from exc
        return target, tag, socket

    def _locator_for(self, placement: KubePlacement | None) -> PodLocator:
        """The runner's pod locator, with what the project's template or overrides chose."""
        locator = self._locator
        if placement is not None:
            chosen = {
                "namespace": placement.namespace,
                "pod_template": placement.pod,
                "selector_template": placement.selector,
                "container": placement.container,
            }
            if placement.pod is not None and placement.selector is None:
                locator = replace(locator, selector_template=None)  # a pod named here wins
            locator = replace(locator, **{k: v for k, v in chosen.items() if v is not None})
        return locator

    async def _open(
        self,
        target: Target,
        outer: list[str],
        command: list[str],
        stdin: bytes,
        keep_stdin_open: bool,
    ) -> tuple[str, ExecSocket]:
        """Opens the exec under a new tag and writes `stdin`, closed after it unless
        `keep_stdin_open`: the tag and the socket."""
        tag = secrets.token_hex(16)
        prefix = ["env", f"{TAG_VARIABLE}={tag}", *outer]
        if self._v4_only:
            if keep_stdin_open:
                raise ExecFailed(
                    f"the API server speaks only {V4_PROTOCOL}: an interactive run needs "
                    "v5.channel.k8s.io (Kubernetes 1.30 or later) to close stdin"
                )
            command = ["sh", "-c", V4_STDIN, "agent-gateway-stdin", str(len(stdin)), *command]
        socket = await self._exec.open(target, prefix + command, True, OPEN_TIMEOUT_S)
        if socket.protocol == V4_PROTOCOL and not self._v4_only:
            # The process waits for a stdin that cannot be closed: stop it, and from now on
            # frame stdin by its length.
            await socket.close()
            await self._stop_in_pod(target, tag)
            self._v4_only = True
            # Under a new tag: the first exec's own stop may still be looking for its tag.
            return await self._open(target, outer, command, stdin, keep_stdin_open)
        try:
            await socket.write(stdin)
            if not keep_stdin_open and not self._v4_only:
                await socket.close_stdin()
        except ExecFailed:
            await socket.close()
            raise
        return tag, socket

    async def _stop_in_pod(self, target: Target, tag: str) -> None:
        """Runs the stop script in the pod; tried again while it cannot be started."""
        command = ["sh", "-c", STOP_SCRIPT, "sh", tag, *self._grace]
        deadline = time.monotonic() + STOP_RETRY_S
        delay = 0.25
        while True:
            try:
                failure = await self._exec.run(target, command, self._stop_timeout_s)
                if failure is not None:
                    log.warning("stop script in pod %s: %s", target, failure)
                return
            except ExecFailed as exc:
                if time.monotonic() + delay > deadline:
                    log.warning("could not stop the run's processes in pod %s: %s", target, exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
