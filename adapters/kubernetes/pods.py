"""Which pod serves a project: a name or a label selector, in one namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from websocket import WebSocketException

from domain.errors import AgentStartFailed


@dataclass(frozen=True, slots=True)
class PodLocator:
    """Which pod and container serve a project: a name template or a label selector
    template (`{project}` replaced), in one namespace."""

    namespace: str
    pod_template: str = "{project}-agent-0"
    selector_template: str | None = None
    container: str | None = None


def find_pod(
    configuration: client.Configuration, locator: PodLocator, project_id: str
) -> tuple[str, str]:
    """(pod name, container) for the project, or ProviderUnavailable saying why."""
    api = client.CoreV1Api(client.ApiClient(configuration))
    try:
        if locator.selector_template:
            selector = locator.selector_template.format(project=project_id)
            pods = api.list_namespaced_pod(locator.namespace, label_selector=selector).items
            pod = next((p for p in pods if _running_and_ready(p)), None)
            if pod is None:
                raise AgentStartFailed(
                    f"no Running, Ready pod matches selector {selector!r} in namespace "
                    f"{locator.namespace!r} ({len(pods)} found)",
                )
        else:
            name = locator.pod_template.format(project=project_id)
            pod = api.read_namespaced_pod(name, locator.namespace)
            if pod.status is None or pod.status.phase != "Running":
                phase = pod.status.phase if pod.status else "unknown"
                raise AgentStartFailed(
                    f"pod {name!r} in namespace {locator.namespace!r} is {phase}, not Running",
                )
    except ApiException as exc:
        if exc.status == 404:
            raise AgentStartFailed(
                f"no pod {locator.pod_template.format(project=project_id)!r} in namespace "
                f"{locator.namespace!r}",
            ) from exc
        raise AgentStartFailed(f"Kubernetes API: {exc.reason}") from exc
    except (OSError, WebSocketException, ValueError) as exc:
        raise AgentStartFailed(f"Kubernetes API unreachable: {exc}") from exc
    except (KeyError, IndexError) as exc:  # `{...}` other than {project} in a template
        raise AgentStartFailed(f"pod or selector template: unknown field {exc}") from exc
    container = locator.container or pod.spec.containers[0].name
    return pod.metadata.name, container


def _running_and_ready(pod: Any) -> bool:
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
