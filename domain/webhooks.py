"""Webhooks: a project's templates and overrides name URLs that hear of its runs
(`run.started`, `run.input_requested`, `run.finished`). Each is a delivery in an outbox,
signed per the Standard Webhooks specification with a credential of the project, sent at
least once: retried with exponential backoff and jitter for a day on 5xx, 408, 429 and
connection errors, under the same `webhook-id`. Runs only add to the outbox; a dispatcher
loop sends, so a slow or dead receiver never slows a run."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from domain.errors import GatewayError, InvalidRequest

if TYPE_CHECKING:
    from domain.credentials import Credentials
    from domain.model import Run
    from ports.clock import Clock
    from ports.webhook_outbox import WebhookOutbox
    from ports.webhook_sender import WebhookSender

log = logging.getLogger(__name__)
EVENTS = ("run.started", "run.input_requested", "run.finished")
RETRIED_STATUSES = frozenset({408, 429})  # and every 5xx
LEASE_S = 60.0  # a claimed delivery is hidden from other replicas this long (> an attempt)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    events: tuple[str, ...]
    secret: str  # the name of a credential of the project


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str  # the `webhook-id` of every attempt
    project_id: str
    run_id: str
    event_type: str
    url: str
    secret: str  # the credential's name; its value is read when sending
    body: bytes
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | delivered | failed
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    first_backoff_s: float = 5.0  # doubled each attempt, with jitter, up to max_backoff_s
    max_backoff_s: float = 3600.0
    give_up_after_s: float = 86_400.0
    allow_private: bool = False  # loopback, link-local and private addresses
    timeout_s: float = 10.0


class WebhookRefused(GatewayError):
    """The sender would not send there (a private address, an unusable URL): final."""

    code = "webhook_refused"


class WebhookUnreachable(GatewayError):
    """No answer (connection refused or reset, a timeout, DNS): tried again later."""

    code = "webhook_unreachable"


def validate_target(url: str, events: tuple[str, ...], allow_private: bool) -> None:
    """InvalidRequest unless the URL is http(s) with a host, not a private address (a host
    name is checked again when it is resolved, at each send), and the events are known."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("webhooks.url", f"{url!r}: an http or https URL with a host")
    if not allow_private and is_private_host(parts.hostname):
        raise InvalidRequest(
            "webhooks.url",
            f"{parts.hostname} is a loopback, link-local or private address "
            "(AGENT_GATEWAY_WEBHOOK_ALLOW_PRIVATE=true allows it)",
        )
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise InvalidRequest("webhooks.events", f"one or more of {', '.join(EVENTS)}")


def is_private_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return is_private_address(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return False  # a name: its addresses are checked when it is resolved


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not a global unicast address, also when an IPv4 one is wrapped in IPv6 (mapped,
    compatible, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        packed = address.packed
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (address.teredo[1] if address.teredo else None)
            or (ipaddress.IPv4Address(packed[12:]) if address in NAT64 else None)
            or (ipaddress.IPv4Address(packed[12:]) if packed[:12] == bytes(12) else None)
        )
        if embedded is not None and int(embedded) > 1:  # :: and ::1 are what they are
            return is_private_address(embedded)
    return not address.is_global or address.is_multicast


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256 of
    `id.timestamp.body` under the secret (`whsec_` + base64 key, or the raw text)."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff_s(attempts: int, policy: WebhookPolicy, jitter: Callable[[], float]) -> float:
    """After `attempts` failed attempts: doubling, capped, times 0.5 to 1.5."""
    base = min(policy.first_backoff_s * 2 ** (attempts - 1), policy.max_backoff_s)
    return float(base * (0.5 + jitter()))


class Webhooks:
    """Adds deliveries for a run's events, and sends what is due (`serve`)."""

    def __init__(
        self,
        outbox: WebhookOutbox,
        sender: WebhookSender,
        credentials: Credentials,
        clock: Clock,
        encode: Callable[[str, Run], bytes],
        policy: WebhookPolicy,
    ) -> None:
        self._outbox = outbox
        self._sender = sender
        self._credentials = credentials
        self._clock = clock
        self._encode = encode  # the body: the event's type and the run record, as the API shows
        self._policy = policy
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def notify(self, run: Run, event_type: str, targets: tuple[WebhookTarget, ...]) -> None:
        """Never waits: the outbox write happens in a task of its own."""
        wanted = [t for t in targets if event_type in t.events]
        if not wanted:
            return
        task = asyncio.create_task(self._add(run, event_type, wanted))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _add(self, run: Run, event_type: str, targets: list[WebhookTarget]) -> None:
        from domain.redaction import Redactor  # here: the run model imports this module

        now = self._clock.now()
        try:
            # Masked like everything else that leaves (the record is; its metadata may not be).
            values = (await self._credentials.for_run(run.project_id)).values
            body = Redactor(values).text(self._encode(event_type, run).decode()).encode()
            for target in targets:
                delivery_id = f"msg_{secrets.token_urlsafe(18)}"
                await self._outbox.add(
                    Delivery(
                        delivery_id,
                        run.project_id,
                        run.run_id,
                        event_type,
                        target.url,
                        target.secret,
                        body,
                        now,
                        now,
                    )
                )
        except Exception:
            log.exception("run %s: cannot add its %s webhook deliveries", run.run_id, event_type)
        self._wake.set()

    async def deliveries(self, project_id: str, limit: int = 100) -> list[Delivery]:
        return await self._outbox.list_for_project(project_id, limit)

    async def serve(self, poll_s: float = 1.0, batch: int = 32) -> None:
        """Sends due deliveries until cancelled; woken by new ones, else every `poll_s`."""
        while True:
            try:
                due = await self._outbox.claim_due(self._clock.now(), LEASE_S, limit=batch)
                if due:
                    await asyncio.gather(*(self._attempt(d) for d in due), return_exceptions=True)
                    continue  # there may be more
            except Exception:
                log.exception("cannot send the due webhook deliveries")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), poll_s)
            except TimeoutError:
                pass

    async def drain(self, timeout_s: float = 5.0) -> None:
        """At shutdown: the deliveries being added reach the outbox first."""
        if self._background:
            await asyncio.wait(self._background, timeout=timeout_s)

    async def _attempt(self, delivery: Delivery) -> None:
        """One attempt, recorded whatever happens (an attempt never stays unsaved)."""
        policy, now = self._policy, self._clock.now()
        code, error, may_retry = None, None, False
        try:
            async with asyncio.timeout(policy.timeout_s * 2):  # resolving, connecting, answer
                code, error, may_retry = await self._send(delivery, now)
        except TimeoutError:
            error, may_retry = f"no answer within {policy.timeout_s * 2:g} s", True
        except Exception as exc:  # the credential does not open, the store is down
            log.exception("webhook %s: cannot attempt it", delivery.delivery_id)
            error, may_retry = f"cannot send: {exc}", True
        attempts = delivery.attempts + 1
        young = now - delivery.created_at < timedelta(seconds=policy.give_up_after_s)
        if code is not None and 200 <= code < 300:
            status, next_at = "delivered", now
        elif may_retry and young:
            status = "pending"
            next_at = now + timedelta(seconds=backoff_s(attempts, policy, random.random))
        else:
            status, next_at = "failed", now
        await self._outbox.save(
            replace(
                delivery,
                attempts=attempts,
                status=status,
                next_attempt_at=next_at,
                last_status_code=code,
                last_error=error,
            )
        )

    async def _send(self, delivery: Delivery, now: datetime) -> tuple[int | None, str | None, bool]:
        """(status code, error, whether to try again)."""
        secret = await self._credentials.value_of(delivery.project_id, delivery.secret)
        if secret is None:
            return None, f"the project has no credential {delivery.secret!r} to sign with", False
        timestamp = int(now.timestamp())
        try:
            signature = sign(secret, delivery.delivery_id, timestamp, delivery.body)
        except ValueError:  # binascii.Error: a whsec_ secret that is not base64
            return None, f"credential {delivery.secret!r}: whsec_ but not base64", False
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        try:
            code = await self._sender.send(delivery.url, headers, delivery.body, self._policy)
        except WebhookRefused as exc:
            return None, exc.message, False
        except WebhookUnreachable as exc:
            return None, exc.message, True
        return code, None, code >= 500 or code in RETRIED_STATUSES
