"""A webhook receiver on loopback for tests: records every request (headers and body) and
answers each delivery (by `webhook-id`) with the given codes in turn, then 200."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class WebhookReceiver:
    def __init__(self, failures: tuple[int, ...] = ()) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        self._attempts: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        delivery_id = request.headers.get("webhook-id", "")
        self.received.append({"headers": dict(request.headers), "body": body})
        attempt = self._attempts[delivery_id]
        self._attempts[delivery_id] += 1
        if attempt < len(self.failures):
            return Response(status_code=self.failures[attempt])
        return Response(status_code=200)

    def delivered(self, event_type: str) -> list[dict[str, Any]]:
        import json

        return [r for r in self.received if json.loads(r["body"])["type"] == event_type]
