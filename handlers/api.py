"""HTTP routes. Each parses, calls one use case and maps the result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from domain.access import ApiKey, Role
from domain.credentials import Credentials
from domain.errors import BackendUnavailable, InvalidRequest, NotFound, SubscriberTooSlow
from domain.model import (
    MAX_CHAIN,
    Close,
    InputAnswer,
    Interrupt,
    Run,
    RunStatus,
    SequencedEvent,
    UserMessage,
)
from domain.ratelimit import TokenBuckets
from domain.registry import ProviderRegistry
from domain.runs import RunService
from domain.templates import TemplateCatalog
from handlers import console, sse
from handlers.auth import (
    Access,
    AuthMiddleware,
    authorize,
    authorize_all,
    may_read,
    readable_projects,
)
from handlers.bootstrap import Gateway
from handlers.errors import install_error_handlers
from handlers.limits import BodyLimitMiddleware, RateLimitMiddleware
from handlers.metrics import Metrics
from handlers.schemas import (
    AnswerBody,
    CallerInfo,
    ClaudeRunBody,
    CredentialBody,
    CredentialInfo,
    DeliveryInfo,
    ErrorBody,
    InputBody,
    ProjectBody,
    ProjectInfo,
    ProviderInfo,
    QueueEntry,
    RunRecord,
    RunStarted,
    StartRunBody,
    TemplateBody,
    TemplateInfo,
)
from handlers.settings import Settings

PROJECT_ID = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
log = logging.getLogger(__name__)

JSON = "application/json"
ProjectId = Annotated[str, Path(pattern=PROJECT_ID, description="1-63 of [a-z0-9-]")]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)
}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, which
# cost more than the rest of a run start together.
async def _service(request: Request) -> RunService:
    return _gateway(request).service


async def _registry(request: Request) -> ProviderRegistry:
    return _gateway(request).registry


async def _settings(request: Request) -> Settings:
    return _gateway(request).settings


async def _credentials(request: Request) -> Credentials:
    return _gateway(request).credentials


async def _catalog(request: Request) -> TemplateCatalog:
    return _gateway(request).catalog


Service = Annotated[RunService, Depends(_service)]
ProjectCredentials = Annotated[Credentials, Depends(_credentials)]
Catalog = Annotated[TemplateCatalog, Depends(_catalog)]
Registry = Annotated[ProviderRegistry, Depends(_registry)]
GatewaySettings = Annotated[Settings, Depends(_settings)]

router = APIRouter(responses=ERRORS)


async def _stream_chunks(
    batches: AsyncGenerator[list[SequencedEvent], None], first: bytes | None = None
) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    try:
        async for batch in batches:
            yield sse.encode_batch(batch)
    except SubscriberTooSlow:
        return  # fell too far behind: the stream ends without done; resume with Last-Event-ID
    except BackendUnavailable as exc:
        # The event backend broke off mid-stream: a clean end without done, as above, tells
        # the client to resume (elsewhere, or here once the backend is back).
        log.warning("event stream ended early: %s", exc)
    finally:
        await batches.aclose()


async def _start(
    request: Request,
    service: RunService,
    settings: Settings,
    project_id: str,
    body: StartRunBody,
    cancel_on_disconnect: bool,
) -> Response:
    authorize(request, project_id, Role.RUN)
    run = await service.start_for(
        project_id,
        body.prompt,
        body.run_settings(),
        session_id=body.session_id,
        queue_timeout_s=body.queue_timeout_s,
        template=body.template,
    )
    access: Access = request.app.state.gateway.access
    started = RunStarted.from_domain(run, access.stream_url(run.project_id, run.stream_id))
    if "text/event-stream" not in request.headers.get("accept", ""):
        return Response(started.model_dump_json(), 202, media_type="application/json")
    batches = await service.open_stream(run.project_id, run.stream_id)
    chunks = _stream_chunks(batches, sse.encode_unsequenced("run", started.model_dump()))
    if cancel_on_disconnect:
        chunks = _cancel_when_dropped(chunks, service, run.project_id, run.run_id)
    return sse.event_stream(
        chunks,
        settings.ping_interval_s,
        settings.send_timeout_s,
        service.note_slow_subscriber,
        request.app.state.streams,
    )


async def _cancel_when_dropped(
    chunks: AsyncIterator[bytes], service: RunService, project_id: str, run_id: str
) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for chunk in chunks:
            yield chunk
        finished = True
    finally:
        if not finished:  # the client went away before done
            service.cancel_soon(project_id, run_id)


@router.post("/projects/{project_id}/claude", status_code=202, response_model=RunStarted)
async def start_claude(
    project_id: ProjectId,
    body: ClaudeRunBody,
    request: Request,
    service: Service,
    settings: GatewaySettings,
    cancel_on_disconnect: bool = False,
) -> Response:
    """Starts a run with provider `claude-code` (another `provider` in the body is 422)."""
    body = body.model_copy(update={"provider": "claude-code"})
    return await _start(request, service, settings, project_id, body, cancel_on_disconnect)


@router.post("/projects/{project_id}/runs", status_code=202, response_model=RunStarted)
async def start_run(
    project_id: ProjectId,
    body: StartRunBody,
    request: Request,
    service: Service,
    settings: GatewaySettings,
    cancel_on_disconnect: bool = False,
) -> Response:
    """Starts a run; `provider` picks the provider or a fallback chain."""
    return await _start(request, service, settings, project_id, body, cancel_on_disconnect)


@router.get(
    "/projects/{project_id}/events/{stream_id}",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def stream_events(
    project_id: ProjectId,
    stream_id: str,
    request: Request,
    service: Service,
    settings: GatewaySettings,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[
        str, Header(alias="Last-Event-ID", pattern=r"^\s*[0-9]*\s*$")
    ] = "",
) -> Response:
    """The run's events: everything retained after Last-Event-ID, then live, until `done`."""
    authorize(request, project_id, Role.READ)
    after = last_event_id if last_event_id is not None else int(last_event_id_header.strip() or 0)
    batches = await service.open_stream(project_id, stream_id, after)
    return sse.event_stream(
        _stream_chunks(batches),
        settings.ping_interval_s,
        settings.send_timeout_s,
        service.note_slow_subscriber,
        request.app.state.streams,
    )


@router.get("/projects/{project_id}/runs", response_model=list[RunRecord])
async def list_runs(
    project_id: ProjectId,
    request: Request,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunRecord]:
    """The project's recent runs, newest first."""
    authorize(request, project_id, Role.READ)
    runs = await service.list_runs([project_id], limit=limit)
    return [RunRecord.from_domain(run) for run in runs]


@router.get("/runs", response_model=list[RunRecord])
async def list_all_runs(
    request: Request,
    response: Response,
    service: Service,
    status: RunStatus | None = None,
    project: Annotated[str | None, Query(pattern=PROJECT_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunRecord]:
    """The newest runs across the projects the caller's key may read. `Feed-Last-Event-ID`
    says where to follow `GET /events` from to get every change after this list (taken
    before the list is read, so nothing falls between)."""
    response.headers["Feed-Last-Event-ID"] = str(service.feed_position())
    projects = readable_projects(request)
    if project is not None:
        projects = frozenset({project}) if may_read(request, project) else frozenset()
    if projects is not None and not projects:
        return []
    runs = await service.list_runs(projects, status, limit)
    return [RunRecord.from_domain(run) for run in runs]


@router.get(
    "/events",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the runs feed"}},
)
async def stream_run_changes(
    request: Request,
    service: Service,
    settings: GatewaySettings,
    project: Annotated[str | None, Query(pattern=PROJECT_ID)] = None,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[
        str, Header(alias="Last-Event-ID", pattern=r"^\s*[0-9]*\s*$")
    ] = "",
) -> Response:
    """A `run` event (the record) each time a run the caller may read changes, live, with
    ids: resume with Last-Event-ID. It never ends on its own."""
    after = last_event_id if last_event_id is not None else int(last_event_id_header.strip() or 0)

    def shows(run: Run) -> bool:
        return (project is None or run.project_id == project) and may_read(request, run.project_id)

    return sse.event_stream(
        _stream_chunks(service.open_feed(shows, after)),
        settings.ping_interval_s,
        settings.send_timeout_s,
        service.note_slow_subscriber,
        request.app.state.streams,
    )


@router.get("/projects/{project_id}/runs/{run_id}", response_model=RunRecord)
async def get_run(
    project_id: ProjectId, run_id: str, request: Request, service: Service
) -> RunRecord:
    authorize(request, project_id, Role.READ)
    run = await service.get(project_id, run_id)
    record = RunRecord.from_domain(run)
    access: Access = request.app.state.gateway.access
    record.stream_url = access.stream_url(run.project_id, run.stream_id)
    return record


@router.post("/projects/{project_id}/runs/{run_id}/cancel", response_model=RunRecord)
async def cancel_run(
    project_id: ProjectId, run_id: str, request: Request, service: Service
) -> RunRecord:
    """Stops the run; answers once the agent has stopped."""
    authorize(request, project_id, Role.RUN)
    return RunRecord.from_domain(await service.cancel(project_id, run_id))


CredentialName = Annotated[
    str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="also the default env")
]


@router.put("/projects/{project_id}/credentials/{name}", response_model=CredentialInfo)
async def put_credential(
    project_id: ProjectId,
    name: CredentialName,
    body: CredentialBody,
    request: Request,
    credentials: ProjectCredentials,
) -> CredentialInfo:
    """Stores (or replaces) a credential, sealed; its value is never returned."""
    authorize(request, project_id, Role.ADMIN)
    stored = await credentials.put(project_id, name, body.value, body.env)
    return CredentialInfo.from_domain(stored)


@router.get("/projects/{project_id}/credentials", response_model=list[CredentialInfo])
async def list_credentials(
    project_id: ProjectId, request: Request, credentials: ProjectCredentials
) -> list[CredentialInfo]:
    authorize(request, project_id, Role.ADMIN)
    return [CredentialInfo.from_domain(c) for c in await credentials.list_for_project(project_id)]


@router.delete("/projects/{project_id}/credentials/{name}", status_code=204)
async def delete_credential(
    project_id: ProjectId, name: CredentialName, request: Request, credentials: ProjectCredentials
) -> Response:
    authorize(request, project_id, Role.ADMIN)
    if not await credentials.delete(project_id, name):
        raise NotFound(f"no credential {name!r} in project {project_id!r}")
    return Response(status_code=204)


TemplateName = Annotated[str, Path(pattern=PROJECT_ID, description="1-63 of [a-z0-9-]")]
_TEMPLATE_SCHEMA = {"schema": {"$ref": "#/components/schemas/TemplateBody"}}
TEMPLATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": _TEMPLATE_SCHEMA, "application/yaml": _TEMPLATE_SCHEMA},
    }
}


async def _template_body(request: Request) -> TemplateBody:
    """The body as JSON or, by its Content-Type, YAML; strictly validated (422 names the
    field's path)."""
    raw = await request.body()
    try:
        if "yaml" in request.headers.get("content-type", ""):
            data = yaml.safe_load(raw)
        else:
            data = json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidRequest("body", f"not valid JSON or YAML: {exc}") from None
    try:
        return TemplateBody.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.put("/templates/{name}", response_model=TemplateInfo, openapi_extra=TEMPLATE_BODY)
async def put_template(name: TemplateName, request: Request, catalog: Catalog) -> TemplateInfo:
    """Stores a template (JSON or YAML); templates read from files cannot be changed here."""
    authorize_all(request, Role.ADMIN)
    body = await _template_body(request)
    return TemplateInfo.from_domain(await catalog.put_template(name, body.run_settings()))


@router.get("/templates", response_model=list[TemplateInfo])
async def list_templates(request: Request, catalog: Catalog) -> list[TemplateInfo]:
    return [TemplateInfo.from_domain(t) for t in await catalog.list_templates()]


@router.get("/templates/{name}", response_model=TemplateInfo)
async def get_template(name: TemplateName, request: Request, catalog: Catalog) -> TemplateInfo:
    return TemplateInfo.from_domain(await catalog.get_template(name))


@router.delete("/templates/{name}", status_code=204)
async def delete_template(name: TemplateName, request: Request, catalog: Catalog) -> Response:
    authorize_all(request, Role.ADMIN)
    await catalog.delete_template(name)
    return Response(status_code=204)


@router.put("/projects/{project_id}", response_model=ProjectInfo)
async def put_project(
    project_id: ProjectId, body: ProjectBody, request: Request, catalog: Catalog
) -> ProjectInfo:
    """The project's template and overrides, for every run of it."""
    authorize(request, project_id, Role.ADMIN)
    overrides = body.overrides.run_settings()
    return ProjectInfo.from_domain(await catalog.put_project(project_id, body.template, overrides))


@router.get("/projects/{project_id}", response_model=ProjectInfo)
async def get_project(project_id: ProjectId, request: Request, catalog: Catalog) -> ProjectInfo:
    authorize(request, project_id, Role.READ)
    return ProjectInfo.from_domain(await catalog.get_project(project_id))


@router.get("/projects/{project_id}/webhooks/deliveries", response_model=list[DeliveryInfo])
async def list_deliveries(
    project_id: ProjectId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryInfo]:
    """The project's webhook deliveries, newest first: status, attempts, last answer."""
    authorize(request, project_id, Role.READ)
    deliveries = await _gateway(request).webhooks.deliveries(project_id, limit)
    return [DeliveryInfo.from_domain(d) for d in deliveries]


@router.get("/projects", response_model=list[ProjectInfo])
async def list_projects(request: Request, catalog: Catalog) -> list[ProjectInfo]:
    """The configured projects the caller may read."""
    projects = await catalog.list_projects()
    return [ProjectInfo.from_domain(p) for p in projects if may_read(request, p.project_id)]


def _caller_name(request: Request) -> str | None:
    caller = getattr(request.state, "caller", None)
    return caller.name if caller is not None else None


@router.post("/projects/{project_id}/runs/{run_id}/input", response_model=RunRecord)
async def send_input(
    project_id: ProjectId, run_id: str, body: InputBody, request: Request, service: Service
) -> Response:
    """Answers a pending request of an interactive run (200), or sends the user's next
    message (202: `queue` runs it after the current turn, `now` stops the turn for it)."""
    authorize(request, project_id, Role.RUN)
    if isinstance(body, AnswerBody):
        answer = InputAnswer(
            body.request_id,
            body.decision == "allow",
            body.message,
            body.updated_input,
            body.answers,
        )
        run = await service.send_input(project_id, run_id, answer, _caller_name(request))
        return Response(RunRecord.from_domain(run).model_dump_json(), 200, media_type=JSON)
    message = UserMessage(body.message, now=body.when == "now")
    run = await service.send_input(project_id, run_id, message, _caller_name(request))
    return Response(RunRecord.from_domain(run).model_dump_json(), 202, media_type=JSON)


@router.post("/projects/{project_id}/runs/{run_id}/interrupt", response_model=RunRecord)
async def interrupt_run(
    project_id: ProjectId, run_id: str, request: Request, service: Service
) -> RunRecord:
    """Stops the current turn of an interactive run; the run and its session stay open."""
    authorize(request, project_id, Role.RUN)
    return RunRecord.from_domain(
        await service.send_input(project_id, run_id, Interrupt(), _caller_name(request))
    )


@router.post("/projects/{project_id}/runs/{run_id}/close", response_model=RunRecord)
async def close_run(
    project_id: ProjectId, run_id: str, request: Request, service: Service
) -> RunRecord:
    """Ends an interactive run after its current turn (`done{succeeded}` with the totals)."""
    authorize(request, project_id, Role.RUN)
    return RunRecord.from_domain(
        await service.send_input(project_id, run_id, Close(), _caller_name(request))
    )


@router.get("/queue", response_model=list[QueueEntry])
async def list_queue(request: Request, service: Service) -> list[QueueEntry]:
    """The runs waiting to start, next first (positions count the whole deployment's
    queue); only the projects the caller's key may read."""
    return [
        QueueEntry.from_domain(waiting, position)
        for position, waiting in enumerate(await service.queue(), 1)
        if may_read(request, waiting.project_id)
    ]


@router.get("/whoami", response_model=CallerInfo)
async def whoami(request: Request) -> CallerInfo:
    """The caller's key: its name, role and projects."""
    caller: ApiKey | None = getattr(request.state, "caller", None)
    if caller is None:  # auth is off: loopback, anyone may do anything
        return CallerInfo(name=None, role=Role.ADMIN, projects=["*"])
    return CallerInfo(name=caller.name, role=caller.role, projects=sorted(caller.projects))


@router.get("/providers", response_model=list[ProviderInfo])
async def list_providers(registry: Registry) -> list[ProviderInfo]:
    return [ProviderInfo.from_domain(*entry) for entry in registry.describe()]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(registry: Registry, service: Service, response: Response) -> dict[str, Any]:
    """Ready when the event hub and run store answer and a provider can run."""
    providers = {name: caps.available for name, _, caps in registry.describe()}
    unreachable = await service.unreachable_backends()
    ready = any(providers.values()) and not unreachable
    response.status_code = 200 if ready else 503
    return {
        "status": "ready" if ready else "not_ready",
        "providers": providers,
        "unreachable": unreachable,
    }


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _document_providers(app: FastAPI, names: list[str]) -> None:
    """The OpenAPI document lists the providers this gateway has, since a body naming
    another is 422: generated clients and fuzzers then know what is valid."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # cached by FastAPI in app.openapi_schema
            name = {"type": "string", "enum": names}
            chain = {"type": "array", "items": name, "maxItems": MAX_CHAIN}
            provider = document["components"]["schemas"]["StartRunBody"]["properties"]["provider"]
            provider["anyOf"] = [name, chain, {"type": "null"}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _methods_of_path(path: str) -> set[str]:
    methods: set[str] = set()
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods
    return methods


def create_app(gateway: Gateway) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = []
        try:
            for resource in gateway.resources:  # the schema is migrated here
                await resource.start()
                started.append(resource)
            control = asyncio.ensure_future(gateway.service.serve_control())
            try:
                yield
            finally:
                # Normally `serve` drains runs before this point; this covers other hosts.
                await gateway.service.shutdown(gateway.settings.shutdown_grace_s)
                app.state.streams.close_all()
                control.cancel()
                await asyncio.gather(control, return_exceptions=True)
        finally:
            for resource in reversed(started):
                await resource.close()

    app = FastAPI(title="agent-gateway", version="0.1.0", lifespan=lifespan)
    _document_providers(app, gateway.registry.names())
    app.state.gateway = gateway
    app.state.streams = sse.OpenStreams()
    app.state.metrics = Metrics(gateway.service)
    install_error_handlers(app, _methods_of_path)
    app.include_router(router)
    app.include_router(console.router)
    settings = gateway.settings
    # Added last = runs first: body limits, then auth, then the rate of the caller found.
    if settings.rate_limit_per_s > 0:
        buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        app.add_middleware(RateLimitMiddleware, buckets=buckets)
    app.add_middleware(AuthMiddleware, access=gateway.access)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    return app
