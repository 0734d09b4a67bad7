"""Domain errors. The HTTP layer maps each class to a status code and the contract's error body.

GatewayError
├── InvalidRequest          bad input (field named)                  -> 422
│   └── UnknownProvider     lists the known providers
├── Unauthenticated         no key, or an unknown one                -> 401
├── Forbidden               the key's role does not allow this       -> 403
├── NotFound                                                          -> 404
│   ├── RunNotFound
│   ├── StreamNotFound
│   └── SessionNotFound
├── ProviderUnavailable     provider cannot serve now (why)          -> 503
├── AgentStartFailed        an agent could not start (why); the service tries the next
├── BackendUnavailable      the event hub or run store cannot be reached -> 503
├── InputNotAccepted        the run takes no such input now          -> 409
├── Conflict                the change conflicts with what is there  -> 409
├── CredentialsUnavailable  no key ring to seal or open credentials  -> 503
├── CredentialUnreadable    a stored credential does not open        -> 503
├── ShuttingDown            the gateway no longer accepts runs       -> 503
├── OwnerUnreachable        the replica running a run did not answer -> 503
├── LimitExceeded           a configured limit was reached           -> 429
│   └── QueueFull           as many runs wait as the queue may hold
├── ProcessLost             an agent process ended without an exit status (run fails)
└── SubscriberTooSlow       a stream reader fell too far behind (the stream ends)
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the domain raises on purpose."""

    code = "gateway_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(GatewayError):
    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unauthenticated(GatewayError):
    code = "unauthenticated"

    def __init__(self) -> None:
        super().__init__("a valid API key is required (X-API-Key or Authorization: Bearer)")


class Forbidden(GatewayError):
    code = "forbidden"


class NotFound(GatewayError):
    code = "not_found"


class RunNotFound(NotFound):
    code = "run_not_found"

    def __init__(self, project_id: str, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in project {project_id!r}")
        self.project_id = project_id
        self.run_id = run_id


class StreamNotFound(NotFound):
    code = "stream_not_found"

    def __init__(self, project_id: str, stream_id: str) -> None:
        super().__init__(f"no stream {stream_id!r} in project {project_id!r}")
        self.project_id = project_id
        self.stream_id = stream_id


class SessionNotFound(NotFound):
    code = "session_not_found"

    def __init__(self, project_id: str, session_id: str) -> None:
        super().__init__(f"no session {session_id!r} in project {project_id!r}")
        self.project_id = project_id
        self.session_id = session_id


class UnknownProvider(InvalidRequest):
    code = "unknown_provider"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            "provider", f"unknown provider {name!r}; known providers: {', '.join(known) or 'none'}"
        )
        self.name = name
        self.known = known


class ProviderUnavailable(GatewayError):
    code = "provider_unavailable"

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"provider {provider!r} is unavailable: {detail}")
        self.provider = provider
        self.detail = detail


class AgentStartFailed(GatewayError):
    """Raised by agents and process runners, which do not know which provider they serve:
    the run service names it (ProviderUnavailable) once no provider of a chain started."""

    code = "agent_start_failed"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the agent could not start: {detail}")
        self.detail = detail


class BackendUnavailable(GatewayError):
    code = "backend_unavailable"

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} is unavailable: {detail}")
        self.backend = backend
        self.detail = detail


class InputNotAccepted(GatewayError):
    code = "input_not_accepted"


class ShuttingDown(GatewayError):
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the gateway is shutting down and accepts no new runs")


class OwnerUnreachable(GatewayError):
    code = "owner_unreachable"

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"the replica running {run_id!r} did not confirm the cancel; it may be down"
        )
        self.run_id = run_id


class LimitExceeded(GatewayError):
    code = "limit_exceeded"

    def __init__(self, limit: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


class QueueFull(LimitExceeded):
    def __init__(self, max_queued: int) -> None:
        super().__init__(
            "max_queued", f"{max_queued} runs are waiting in the queue; try again later", 30
        )


class SubscriberTooSlow(GatewayError):
    """A subscriber fell too far behind and was dropped; it may resume from its last seq."""

    code = "subscriber_too_slow"

    def __init__(self) -> None:
        super().__init__("the subscriber fell too far behind and was disconnected")


class ProcessLost(GatewayError):
    """The agent process's end is unknowable (for instance its exec connection dropped)."""

    code = "process_lost"


class CredentialsUnavailable(GatewayError):
    code = "credentials_unavailable"


class CredentialUnreadable(GatewayError):
    """A stored credential does not open: its key left the ring, or it was altered or moved
    to another project or name. Runs of its project cannot start until it is stored again."""

    code = "credential_unreadable"


class Conflict(GatewayError):
    code = "conflict"
