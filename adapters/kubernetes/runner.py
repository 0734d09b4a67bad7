"""Agent processes inside project pods, through the Kubernetes exec API.

The official client is blocking, so each exec is pumped by a worker thread of a bounded
pool; output crosses to the event loop through a bounded queue, which also holds a flooding
agent back."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from adapters.kubernetes.exec_transport import ExecFailed, Target
from adapters.kubernetes.pods import PodLocator, find_pod
from adapters.kubernetes.process import TAG_VARIABLE, ExecProcess
from domain.errors import AgentStartFailed
from domain.templates import KubePlacement

# Variables the runner forwards into the pod as `env` arguments, which end up in the exec
# request (its URL, which API servers log) and in `ps`: nothing secret.
FORWARDED = ("IS_SANDBOX",)
OPEN_TIMEOUT_S = 30.0
# How long what the API server answered (or did not) stands before it is asked again: more
# often while it cannot be reached, so /providers shows it back soon after it is.
PROBE_EVERY_S = {True: 30.0, False: 3.0}  # by reachable
PROBE_TIMEOUT_S = 5.0

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
            client.VersionApi(client.ApiClient(self._configuration)).get_code(
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
        if len(self._running) >= self._max_pumps:
            raise AgentStartFailed(
                f"{self._max_pumps} execs are running: no thread left to pump one"
            )
        loop = asyncio.get_running_loop()
        locator = self._locator
        if placement is not None:  # the project's template or overrides pick its pod
            chosen = {
                "namespace": placement.namespace,
                "pod_template": placement.pod,
                "selector_template": placement.selector,
                "container": placement.container,
            }
            if placement.pod is not None and placement.selector is None:
                locator = replace(locator, selector_template=None)  # a pod named here wins
            locator = replace(locator, **{k: v for k, v in chosen.items() if v is not None})
        pod, container = await loop.run_in_executor(
            self._calls, find_pod, self._configuration, locator, project_id
        )
        tag = secrets.token_hex(16)
        forwarded = [f"{k}={env[k]}" for k in FORWARDED if k in env]
        command = ["env", f"{TAG_VARIABLE}={tag}", *forwarded]
        if secret_env or files:
            command += ["sh", "-c", LAUNCHER, "agent-gateway-launcher"]
            stdin = framed(secret_env or {}, files or {}) + stdin
        command += argv
        target = Target(self._configuration, locator.namespace, pod, container)
        try:
            connection = await asyncio.wait_for(
                loop.run_in_executor(
                    self._calls, target.exec_with_stdin, command, stdin, keep_stdin_open
                ),
                OPEN_TIMEOUT_S,
            )
        except TimeoutError:
            # The worker thread stays blocked until the socket gives up; the run fails now.
            raise AgentStartFailed(
                f"exec in pod {target.namespace}/{pod} did not open in time"
            ) from None
        except ExecFailed as exc:
            raise AgentStartFailed(str(exc)) from exc
        process = ExecProcess(target, tag, connection, self._calls, self._grace, keep_stdin_open)
        self._running.add(process)
        # In the caller's context: what the pump logs names the run it works for.
        context = contextvars.copy_context()
        pump = self._pumps.submit(context.run, process.pump, self._ping_interval_s)
        pump.add_done_callback(lambda _: loop.call_soon_threadsafe(self._running.discard, process))
        return process
