"""Webhook deliveries over HTTP (httpx), with the server-side request forgery guard: the
host is resolved here, every address checked, and the request sent to the checked address
(the Host header and TLS name stay the host's), so a name cannot resolve to a public
address for the check and a private one for the request."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from domain.webhooks import WebhookPolicy, WebhookRefused, WebhookUnreachable, is_private_address


class HttpWebhookSender:
    def __init__(self) -> None:
        # A redirect is an answer. No kept-alive connections: a TLS connection verified for
        # one host must not carry another host's request to the same address. No proxy
        # from the environment: it would resolve the host itself.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
        )

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, policy: WebhookPolicy
    ) -> int:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise WebhookRefused(f"refused: {url!r} is not an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._checked_address(host, port, policy.allow_private)
        netloc = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/", parts.query, ""))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request_headers = {**headers, "host": parts.netloc.rpartition("@")[2]}
        try:
            # The status is the answer: the body is never read (a receiver could send one
            # without end).
            async with self._client.stream(
                "POST",
                target,
                content=body,
                headers=request_headers,
                timeout=policy.timeout_s,
                extensions=extensions,
            ) as response:
                return response.status_code
        except httpx.HTTPError as exc:
            raise WebhookUnreachable(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    async def _checked_address(host: str, port: int, allow_private: bool) -> str:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise WebhookUnreachable(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not allow_private:
            private = [a for a in addresses if is_private_address(ipaddress.ip_address(a))]
            if private or host.lower() == "localhost":
                raise WebhookRefused(
                    f"refused: {host} resolves to {', '.join(private or addresses)}, a "
                    "loopback, link-local or private address (AGENT_GATEWAY_WEBHOOK_ALLOW_PRIVATE)"
                )
        return addresses[0]

    async def start(self) -> None:
        return None  # connects on first use

    async def close(self) -> None:
        await self._client.aclose()
