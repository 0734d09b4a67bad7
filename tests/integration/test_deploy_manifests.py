"""The kustomize manifests render offline and are valid Kubernetes objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32.0"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def render(overlay: str) -> list[dict]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("overlay", ["base", "example-project", "redis", "postgres"])
def test_manifests_render_and_validate_against_the_schemas(overlay):
    documents = render(overlay)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents if doc["kind"] != "ConfigMap"}


def settings_of(documents: list[dict]) -> dict[str, str]:
    maps = [d for d in documents if d["kind"] == "ConfigMap"]
    return next(d for d in maps if d["metadata"]["name"].startswith("agent-gateway-settings"))[
        "data"
    ]


def test_the_role_grants_exactly_pod_lookup_and_exec():
    role = by_kind(render("base"))["Role"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
    ]


def test_the_deployment_probes_runs_as_non_root_and_uses_its_service_account():
    documents = by_kind(render("base"))
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == documents["ServiceAccount"]["metadata"]["name"]
    binding = documents["RoleBinding"]
    assert binding["roleRef"]["name"] == documents["Role"]["metadata"]["name"]
    assert binding["subjects"][0]["name"] == documents["ServiceAccount"]["metadata"]["name"]
    settings = settings_of(render("base"))
    assert settings["AGENT_GATEWAY_RUNNER"] == "kubernetes"
    secret_volume = pod["volumes"][0]["secret"]["secretName"]
    assert secret_volume == "agent-gateway-api-keys"
    templates = next(v for v in pod["volumes"] if v["name"] == "templates")["configMap"]["name"]
    assert templates.startswith("agent-gateway-templates")  # kustomize adds a hash
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["templates"] == settings["AGENT_GATEWAY_TEMPLATES_DIR"]
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    ring = env["AGENT_GATEWAY_CREDENTIAL_KEYS"]["secretKeyRef"]  # never a literal value
    assert ring["name"] == "agent-gateway-credential-keys" and ring["optional"] is True


def test_the_example_pod_matches_the_default_pod_template():
    statefulset = by_kind(render("example-project"))["StatefulSet"]
    assert f"{statefulset['metadata']['name']}-0" == "{project}-agent-0".format(project="demo")


def test_the_redis_overlay_runs_two_replicas_on_redis():
    documents = render("redis")
    gateway = next(
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "agent-gateway"
    )
    assert gateway["spec"]["replicas"] == 2
    settings = settings_of(documents)
    assert settings["AGENT_GATEWAY_EVENT_BACKEND"] == "redis"
    service = next(
        d
        for d in documents
        if d["kind"] == "Service" and d["metadata"]["name"] == "agent-gateway-redis"
    )
    assert settings["AGENT_GATEWAY_REDIS_URL"].startswith(f"redis://{service['metadata']['name']}:")


def test_the_postgres_overlay_takes_the_database_url_from_a_secret():
    documents = render("postgres")
    gateway = next(
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "agent-gateway"
    )
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    reference = env["AGENT_GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "agent-gateway-database", "key": "url"}
    assert "AGENT_GATEWAY_STREAM_TOKEN_SECRET" in env  # the base's env is kept
    settings = settings_of(documents)
    assert settings["AGENT_GATEWAY_EVENT_BACKEND"] == "redis"  # live fan-out across replicas
    assert not any("DATABASE_URL" in key for key in settings)  # never in a ConfigMap
