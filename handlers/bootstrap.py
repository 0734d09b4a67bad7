"""The composition root: the one place that reads settings and picks adapters.

Adapters are imported only when the settings pick them (the SDKs weigh tens of MiB), and
every part can be handed in instead (tests and benchmarks): `build_gateway(settings,
agents=..., storage=..., runner=..., clock=...)`."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from domain.access import StreamTokens
from domain.clock import SystemClock
from domain.credentials import KEYS_SETTING, Credentials
from domain.errors import InvalidRequest
from domain.registry import ProviderRegistry
from domain.runs import InteractionLimits, RunLimits, RunService, Storage
from domain.templates import Template, TemplateCatalog, validate_name
from domain.webhooks import WebhookPolicy, Webhooks
from domain.woodpecker import PipelineTrigger
from handlers.auth import Access, KeysFile
from handlers.settings import ENV_PREFIX, Settings, SettingsError
from ports.clock import Clock
from ports.code_agent import CodeAgent
from ports.credential_store import CredentialStore
from ports.event_hub import EventHub
from ports.process_runner import ProcessRunner
from ports.project_store import ProjectStore
from ports.run_control import RunControl
from ports.run_queue import RunQueue
from ports.run_store import RunStore
from ports.secret_cipher import SecretCipher
from ports.template_store import TemplateStore
from ports.webhook_outbox import WebhookOutbox

log = logging.getLogger(__name__)


class Resource(Protocol):
    """A backend to open before the gateway serves and to close after (a database pool)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Gateway:
    settings: Settings
    registry: ProviderRegistry
    service: RunService
    access: Access
    credentials: Credentials
    catalog: TemplateCatalog
    webhooks: Webhooks
    resources: list[Resource] = field(default_factory=list)


def build_access(settings: Settings, clock: Clock) -> Access:
    keys = None
    if settings.api_keys_file is not None:
        try:
            keys = KeysFile(settings.api_keys_file, monotonic=clock.monotonic)
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"{ENV_PREFIX}API_KEYS_FILE={settings.api_keys_file}: {exc}"
            ) from exc
    # Without a configured secret, tokens are valid on this process only (one replica).
    secret = settings.stream_token_secret
    key = secret.encode() if secret else secrets.token_bytes(32)
    return Access(keys, StreamTokens(key, settings.stream_token_ttl_s))


def agent_environment() -> dict[str, str]:
    """The gateway's environment minus its own settings (which may name secrets)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def build_runner(settings: Settings) -> ProcessRunner:
    if settings.runner == "local":
        from adapters.local_process import LocalProcessRunner

        return LocalProcessRunner(
            settings.workspace_root,
            interrupt_grace_s=settings.interrupt_grace_s,
            terminate_grace_s=settings.terminate_grace_s,
        )
    from adapters.kubernetes import KubernetesExecRunner, PodLocator, load_kube_configuration

    try:
        configuration = load_kube_configuration(os.environ.get("KUBECONFIG"), settings.kube_context)
    except Exception as exc:  # the client raises several unrelated types for a bad config
        raise SettingsError(
            f"{ENV_PREFIX}RUNNER=kubernetes: cannot load cluster credentials (in-cluster, "
            f"KUBECONFIG or ~/.kube/config, {ENV_PREFIX}KUBE_CONTEXT): {exc}"
        ) from exc
    locator = PodLocator(
        namespace=settings.kube_namespace,
        pod_template=settings.kube_pod,
        selector_template=settings.kube_selector,
        container=settings.kube_container,
    )
    return KubernetesExecRunner(
        configuration,
        locator,
        interrupt_grace_s=settings.interrupt_grace_s,
        terminate_grace_s=settings.terminate_grace_s,
        max_execs=settings.kube_max_execs,
        ping_interval_s=settings.kube_ping_interval_s,
    )


@dataclass(frozen=True)
class PlatformStores:
    """Where credentials, templates and projects, and webhook deliveries live, beside the
    runs' Storage; `persistent`: they outlive the process (Redis, PostgreSQL)."""

    credentials: CredentialStore
    templates: TemplateStore
    projects: ProjectStore
    outbox: WebhookOutbox
    persistent: bool


def build_platform_stores(settings: Settings, storage: Storage | None) -> PlatformStores:
    """On the backend of the Storage the settings built (None: a Storage handed in, and
    these in memory): PostgreSQL on its pool, Redis on one client of their own."""
    if storage is not None and settings.database_url is not None:
        from adapters.postgres import (
            PostgresCatalog,
            PostgresCredentialStore,
            PostgresRunStore,
            PostgresWebhookOutbox,
        )

        assert isinstance(storage.store, PostgresRunStore)  # the database's own pool
        pool = storage.store.pool
        catalog = PostgresCatalog(pool)
        return PlatformStores(
            PostgresCredentialStore(pool), catalog, catalog, PostgresWebhookOutbox(pool), True
        )
    if storage is not None and settings.event_backend == "redis":
        from adapters.redis_store import open_platform_stores

        credentials, shared, outbox = open_platform_stores(settings.redis_url)
        return PlatformStores(credentials, shared, shared, outbox, True)
    from adapters.memory import MemoryCatalog, MemoryCredentialStore, MemoryWebhookOutbox

    memory = MemoryCatalog()
    return PlatformStores(MemoryCredentialStore(), memory, memory, MemoryWebhookOutbox(), False)


def build_cipher(settings: Settings, stores: PlatformStores) -> SecretCipher | None:
    """The key ring of credentials and session transcripts. Without a configured ring,
    what is in memory is sealed with a key of this process (it dies with it); persistent
    stores get none (credentials are then refused)."""
    from adapters.aes_gcm import AesGcmKeyRing

    if settings.credential_keys:
        try:
            return AesGcmKeyRing.from_setting(settings.credential_keys)
        except ValueError as exc:
            raise SettingsError(f"{KEYS_SETTING}: {exc}") from exc
    return None if stores.persistent else AesGcmKeyRing.ephemeral()


def load_template_files(folder: Path, clock: Clock) -> dict[str, Template]:
    """Every `*.yaml` of the folder as a template named after the file; a bad file stops
    start-up with its name and the field's path."""
    from pydantic import ValidationError

    from handlers.schemas import TemplateBody

    templates = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            validate_name("template", path.stem)
            body = TemplateBody.model_validate(yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError, InvalidRequest) as exc:
            raise SettingsError(f"{ENV_PREFIX}TEMPLATES_DIR: {path}: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"{ENV_PREFIX}TEMPLATES_DIR: {path}: {problems}") from exc
        templates[path.stem] = Template(path.stem, body.run_settings(), str(path), clock.now())
    return templates


def build_catalog(settings: Settings, stores: PlatformStores, clock: Clock) -> TemplateCatalog:
    """Templates and projects in the stores, plus those of AGENT_GATEWAY_TEMPLATES_DIR."""
    from_files = {}
    if settings.templates_dir is not None:
        from_files = load_template_files(settings.templates_dir, clock)
    return TemplateCatalog(
        stores.templates, stores.projects, clock, from_files, settings.webhook_allow_private
    )


def build_webhooks(
    settings: Settings, outbox: WebhookOutbox, credentials: Credentials, clock: Clock
) -> tuple[Webhooks, Resource]:
    """The webhooks use case over the outbox, sending over HTTP; the sender is a resource
    (its connections close with the gateway)."""
    from adapters.http_webhooks import HttpWebhookSender
    from handlers.schemas import webhook_body

    policy = WebhookPolicy(
        first_backoff_s=settings.webhook_first_backoff_s,
        give_up_after_s=settings.webhook_give_up_after_s,
        allow_private=settings.webhook_allow_private,
    )
    sender = HttpWebhookSender()
    return Webhooks(outbox, sender, credentials, clock, webhook_body, policy), sender


def build_storage(settings: Settings, clock: Clock) -> tuple[Storage, list[Resource]]:
    """The storage the settings pick, and what must be started before it serves."""
    if settings.database_url is not None:
        return build_postgres_storage(settings, clock)
    return build_storage_without_database(settings, clock), []


def build_postgres_storage(settings: Settings, clock: Clock) -> tuple[Storage, list[Resource]]:
    """PostgreSQL keeps runs, the queue, leases and every event. The live fan-out of
    streams is the event backend's: memory (this replica), Redis (every replica), or
    PostgreSQL itself (every replica, by NOTIFY)."""
    from adapters.postgres import PostgresBackend
    from domain.archived_hub import ArchivedEventHub

    url = settings.database_url
    assert url is not None
    if not url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(f"{ENV_PREFIX}DATABASE_URL must be a postgresql:// URL")
    database = PostgresBackend(url, settings.history_days, settings.database_max_connections)
    hub: EventHub = database.hub
    if settings.event_backend != "postgres":
        hub = ArchivedEventHub(build_live_hub(settings, clock), database.archive)
    return Storage(hub, database.store, database.control, database.queue), [database]


def build_storage_without_database(settings: Settings, clock: Clock) -> Storage:
    if settings.event_backend == "memory":
        from adapters.memory import LocalRunControl, MemoryRunQueue, MemoryRunStore

        hub = build_memory_hub(settings, clock)
        return Storage(hub, MemoryRunStore(), LocalRunControl(), MemoryRunQueue())
    return Storage(*open_configured_redis(settings))


def build_live_hub(settings: Settings, clock: Clock) -> EventHub:
    """The live fan-out in front of PostgreSQL's archive: this replica's, or Redis's."""
    if settings.event_backend == "memory":
        return build_memory_hub(settings, clock)
    return open_configured_redis(settings)[0]


def build_memory_hub(settings: Settings, clock: Clock) -> EventHub:
    from adapters.memory import MemoryEventHub

    return MemoryEventHub(
        retain_events=settings.retain_events,
        retain_bytes=settings.retain_bytes,
        max_pending=settings.subscriber_max_pending,
        retention_s=settings.stream_retention_s,
        monotonic=clock.monotonic,
    )


def open_configured_redis(settings: Settings) -> tuple[EventHub, RunStore, RunControl, RunQueue]:
    """Hub, store, control and queue on one Redis client (it connects on first use)."""
    from adapters.redis_store import open_redis

    try:
        return open_redis(
            settings.redis_url,
            settings.retain_events,
            settings.stream_retention_s,
            settings.subscriber_max_pending,
            settings.redis_max_connections,
        )
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}REDIS_URL={settings.redis_url!r}: {exc}") from exc


def build_agent(
    name: str,
    settings: Settings,
    store: RunStore,
    runner: ProcessRunner | None,
    cipher: SecretCipher | None,
) -> CodeAgent:
    """The provider `name` as the settings describe it (its adapter imported only now)."""
    if name == "claude-code":
        from adapters.claude_code import ClaudeCodeAgent, TranscriptKeeper

        command = shlex.split(settings.claude_command)
        if not command:
            raise SettingsError(f"{ENV_PREFIX}CLAUDE_COMMAND must not be empty")
        runner = runner or build_runner(settings)
        env = agent_environment()
        transcripts = None
        if settings.runner == "kubernetes":  # a pod's disk may not outlive the pod
            max_bytes = settings.session_transcript_max_bytes
            transcripts = TranscriptKeeper(runner, store, cipher, max_bytes, env)
        return ClaudeCodeAgent(runner, command, env, settings.claude_permission_mode, transcripts)
    if name == "anthropic":
        from adapters.anthropic_api import AnthropicAgent, AnthropicSettings

        anthropic_settings = AnthropicSettings(
            model=settings.anthropic_model,
            max_tokens=settings.anthropic_max_tokens,
            system=settings.anthropic_system,
            max_retries=settings.anthropic_max_retries,
            prices=settings.anthropic_prices,
        )
        return AnthropicAgent(anthropic_settings, store)
    if name == "opencode":
        from adapters.opencode import OpenCodeAgent, OpenCodeSettings

        return OpenCodeAgent(
            OpenCodeSettings(
                url_template=settings.opencode_url,
                username=settings.opencode_username,
                password=settings.opencode_password,
                model=settings.opencode_model,
                connect_timeout_s=settings.opencode_connect_timeout_s,
                read_timeout_s=settings.opencode_read_timeout_s,
                abort_wait_s=settings.opencode_abort_wait_s,
            )
        )
    raise SettingsError(
        f"{ENV_PREFIX}PROVIDERS: unknown provider {name!r}; known: claude-code, opencode, anthropic"
    )


def build_gateway(
    settings: Settings,
    *,
    agents: Mapping[str, CodeAgent] | None = None,
    storage: Storage | None = None,
    runner: ProcessRunner | None = None,
    clock: Clock | None = None,
) -> Gateway:
    """The gateway the settings describe; `agents` (in registry order), `storage`, `runner`
    and `clock` replace what the settings would pick."""
    clock = clock or SystemClock()
    resources: list[Resource] = []
    built: Storage | None = None
    if storage is None:
        storage, resources = build_storage(settings, clock)
        built = storage
    stores = build_platform_stores(settings, built)
    catalog = build_catalog(settings, stores, clock)
    cipher = build_cipher(settings, stores)
    if agents is None:
        agents = {
            name: build_agent(name, settings, storage.store, runner, cipher)
            for name in settings.provider_names()
        }
    registry = ProviderRegistry()
    for name, agent in agents.items():
        registry.register(name, agent)
    if not registry.names():
        raise SettingsError(f"{ENV_PREFIX}PROVIDERS: no usable provider in {settings.providers!r}")
    limits = RunLimits(
        max_runs=settings.max_runs,
        max_runs_per_project=settings.max_runs_per_project,
        max_queued=settings.max_queued,
        max_subscribers=settings.max_subscribers,
        max_subscribers_per_stream=settings.max_subscribers_per_stream,
    )
    interaction = InteractionLimits(settings.idle_timeout_s, settings.input_timeout_s)
    credentials = Credentials(stores.credentials, cipher, clock)
    webhooks, sender = build_webhooks(settings, stores.outbox, credentials, clock)
    resources.append(sender)
    from adapters.woodpecker import WoodpeckerClient

    service = RunService(
        registry,
        storage,
        limits=limits,
        interaction=interaction,
        lease_ttl_s=settings.lease_ttl_s,
        clock=clock,
        credentials=credentials,
        catalog=catalog,
        webhooks=webhooks,
        pipelines=PipelineTrigger(WoodpeckerClient(), credentials),
    )
    access = build_access(settings, clock)
    return Gateway(settings, registry, service, access, credentials, catalog, webhooks, resources)
