from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from domain.webhooks import WebhookPolicy


class WebhookSender(Protocol):
    """POSTs one webhook delivery.

    Guarantees: returns the receiver's status code; raises WebhookUnreachable when there is
    no answer (connection refused or reset, timeout, DNS failure) and WebhookRefused when it
    will not send there: the URL's host resolves to a loopback, link-local or private
    address and `policy.allow_private` is false (checked on the addresses it connects to,
    so a name that resolves to one later is refused too)."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, policy: WebhookPolicy
    ) -> int: ...
