"""Which pod serves a project: a name or a label selector, in one namespace; looked up
through the official client and kept briefly, shared by the runs of a project."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from domain.errors import AgentStartFailed

# How long a lookup's answer serves further runs of the project: a burst of starts asks the
# API server once, and a recycled pod is found again within this time (an exec into a pod
# that is gone fails the run and drops the entry at once).
LOOKUP_REUSE_S = 5.0
LOOKUP_TIMEOUT_S = 10.0

Found = tuple[str, str]  # (pod, container)


@dataclass(frozen=True, slots=True)
class PodLocator:
    """Which pod and container serve a project: a name template or a label selector
    template (`{project}` replaced), in one namespace."""

    namespace: str
    pod_template: str = "{project}-agent-0"
    selector_template: str | None = None
    container: str | None = None


class PodLookups:
    """(pod, container) per project and locator, from the API server, reused for
    LOOKUP_REUSE_S; concurrent starts of one project share one request in flight."""

    def __init__(self, api: client.CoreV1Api, calls: ThreadPoolExecutor) -> None:
        self._api = api
        self._calls = calls
        self._found: dict[
            tuple[PodLocator, str], tuple[float, asyncio.Future[tuple[str, str]]]
        ] = {}

    async def find(self, locator: PodLocator, project_id: str) -> tuple[str, str]:
        key = (locator, project_id)
        now = time.monotonic()
        entry = self._found.get(key)
        if entry is None or now - entry[0] > LOOKUP_REUSE_S:
            if len(self._found) > 10_000:  # many projects: forget the stale answers
                self._found = {k: v for k, v in self._found.items() if now - v[0] <= LOOKUP_REUSE_S}
            loop = asyncio.get_running_loop()
            lookup = loop.run_in_executor(self._calls, find_pod, self._api, locator, project_id)
            entry = (now, lookup)
            self._found[key] = entry
        try:
            return await asyncio.shield(entry[1])
        except AgentStartFailed:
            self.forget(locator, project_id)  # an answer that says "no" is never reused
            raise

    def forget(self, locator: PodLocator, project_id: str) -> None:
        self._found.pop((locator, project_id), None)


def find_pod(api: client.CoreV1Api, locator: PodLocator, project_id: str) -> tuple[str, str]:
    """(pod name, container) for the project, or AgentStartFailed saying why. Pods are
    read as JSON (`_preload_content=False`): the client's model classes cost milliseconds
    per pod."""
    try:
        name = locator.pod_template.format(project=project_id)
        selector = locator.selector_template and locator.selector_template.format(
            project=project_id
        )
    except (KeyError, IndexError, ValueError) as exc:  # `{...}` other than {project}
        raise AgentStartFailed(f"pod or selector template: {exc!r}") from exc
    try:
        if selector:
            response = api.list_namespaced_pod(
                locator.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=LOOKUP_TIMEOUT_S,
            )
            pods = json.loads(response.data).get("items") or []
            pod = next((p for p in pods if _running_and_ready(p)), None)
            if pod is None:
                raise AgentStartFailed(
                    f"no Running, Ready pod matches selector {selector!r} in namespace "
                    f"{locator.namespace!r} ({len(pods)} found)",
                )
        else:
            response = api.read_namespaced_pod(
                name, locator.namespace, _preload_content=False, _request_timeout=LOOKUP_TIMEOUT_S
            )
            pod = json.loads(response.data)
            phase = (pod.get("status") or {}).get("phase") or "unknown"
            if phase != "Running":
                raise AgentStartFailed(
                    f"pod {name!r} in namespace {locator.namespace!r} is {phase}, not Running",
                )
    except ApiException as exc:
        if exc.status == 404:
            raise AgentStartFailed(
                f"no pod {name!r} in namespace {locator.namespace!r}",
            ) from exc
        raise AgentStartFailed(f"Kubernetes API: {exc.reason}") from exc
    except (OSError, HTTPError) as exc:
        raise AgentStartFailed(f"Kubernetes API unreachable: {exc}") from exc
    except (ValueError, AttributeError) as exc:
        raise AgentStartFailed(f"Kubernetes API: unreadable pod: {exc}") from exc
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    container = locator.container or containers[0].get("name") or ""
    return pod["metadata"]["name"], container


def _running_and_ready(pod: Any) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
