"""Webhooks over real HTTP: a receiver on loopback that fails twice then accepts gets one
`webhook-id` on every retry with valid Standard Webhooks signatures; a receiver that is
down across a gateway restart with Redis still gets its delivery; private addresses are
refused unless allowed; deliveries are listed with status, attempts and last code."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import httpx
import pytest

from domain.webhooks import WebhookPolicy, WebhookRefused, sign
from tests.fakes.servers import RunningServer
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.helpers import follow_with_resume, read_stream, wait_until

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
FAST = {"webhook_allow_private": True, "webhook_first_backoff_s": 0.05}


def configure(url: str, hook_url: str, events: list[str]) -> None:
    credential = httpx.put(f"{url}/projects/demo/credentials/WH_SECRET", json={"value": SECRET})
    assert credential.status_code == 200, credential.text
    webhooks = [{"url": hook_url, "events": events, "secret": "WH_SECRET"}]
    template = httpx.put(f"{url}/templates/hooked", json={"webhooks": webhooks})
    assert template.status_code == 200, template.text
    assert httpx.put(f"{url}/projects/demo", json={"template": "hooked"}).status_code == 200


def verified(request: dict) -> dict:
    """The delivery's body, once its signature checks out."""
    headers = request["headers"]
    expected = sign(
        SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), request["body"]
    )
    assert headers["webhook-signature"] == expected
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 60
    return json.loads(request["body"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_retries_carry_one_webhook_id_and_valid_signatures(start_gateway):
    receiver = WebhookReceiver(failures=(500, 503))
    with RunningServer(receiver.app) as hook:
        server = start_gateway(**FAST)
        configure(server.url, f"{hook.url}/hook", ["run.started", "run.finished"])
        body = {"prompt": "hi", "metadata": {"note": SECRET}}  # a value where none belongs
        started = httpx.post(f"{server.url}/projects/demo/runs", json=body).json()
        read_stream(server.url, started["stream_url"])
        wait_until(lambda: len(receiver.received) == 6, timeout=20)  # 2 deliveries x 3
    finished = receiver.delivered("run.finished")
    assert len({r["headers"]["webhook-id"] for r in finished}) == 1 and len(finished) == 3
    body = verified(finished[-1])
    assert body["run"]["run_id"] == started["run_id"] and body["run"]["status"] == "succeeded"
    assert verified(receiver.delivered("run.started")[0])["run"]["status"] == "running"
    assert SECRET not in str(receiver.received)  # the secret signs, it is never sent
    assert body["run"]["metadata"] == {"note": "***"}  # bodies are redacted too
    listed = httpx.get(f"{server.url}/projects/demo/webhooks/deliveries").json()
    assert {d["type"] for d in listed} == {"run.started", "run.finished"}
    for delivery in listed:
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3
        assert delivery["last_status_code"] == 200 and delivery["run_id"] == started["run_id"]


def test_a_4xx_ends_a_delivery_and_a_missing_secret_fails_it(start_gateway):
    receiver = WebhookReceiver(failures=(410,))
    with RunningServer(receiver.app) as hook:
        server = start_gateway(**FAST)
        configure(server.url, f"{hook.url}/hook", ["run.finished"])
        started = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi"}).json()
        read_stream(server.url, started["stream_url"])
        deliveries = f"{server.url}/projects/demo/webhooks/deliveries"
        wait_until(lambda: httpx.get(deliveries).json()[0]["status"] == "failed")
        gone = httpx.get(deliveries).json()[0]
        assert gone["attempts"] == 1 and gone["last_status_code"] == 410
        httpx.delete(f"{server.url}/projects/demo/credentials/WH_SECRET")
        again = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi"}).json()
        read_stream(server.url, again["stream_url"])
        wait_until(lambda: len(httpx.get(deliveries).json()) == 2)
        wait_until(lambda: httpx.get(deliveries).json()[0]["status"] == "failed")
        assert "WH_SECRET" in httpx.get(deliveries).json()[0]["last_error"]
    assert len(receiver.received) == 1


def test_private_addresses_are_refused_unless_allowed(start_gateway):
    server = start_gateway()
    webhooks = [{"url": "http://127.0.0.1:9/hook", "events": ["run.finished"], "secret": "S"}]
    refused = httpx.put(f"{server.url}/templates/t", json={"webhooks": webhooks})
    assert refused.status_code == 422 and "ALLOW_PRIVATE" in refused.text
    overrides = {"overrides": {"webhooks": [{**webhooks[0], "url": "http://169.254.169.254/"}]}}
    assert httpx.put(f"{server.url}/projects/demo", json=overrides).status_code == 422
    bad_event = [{**webhooks[0], "url": "https://example.com/", "events": ["run.exploded"]}]
    assert httpx.put(f"{server.url}/templates/t", json={"webhooks": bad_event}).status_code == 422


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_sending():
    from adapters.http_webhooks import HttpWebhookSender

    name = socket.gethostname()  # resolves through /etc/hosts, to this machine
    try:
        socket.getaddrinfo(name, 80)
    except OSError:
        pytest.skip("this machine's name does not resolve")
    sender = HttpWebhookSender()
    try:
        with pytest.raises(WebhookRefused, match="private"):
            await sender.send(f"http://{name}:9/hook", {}, b"{}", WebhookPolicy())
    finally:
        await sender.close()


def test_a_delivery_pending_across_a_restart_with_redis_is_still_delivered(
    start_gateway, redis_server
):
    port = free_port()  # nothing listens there yet
    # A database of its own: the outbox in the shared one is every Redis test's, and a
    # gateway of another test without this key ring once took the delivery and failed it.
    own_database = redis_server.url.rsplit("/", 1)[0] + "/9"
    settings = {**FAST, "event_backend": "redis", "redis_url": own_database}
    settings["credential_keys"] = "k1:" + base64.b64encode(os.urandom(32)).decode()
    first = start_gateway(**settings)
    configure(first.url, f"http://127.0.0.1:{port}/hook", ["run.finished"])
    started = httpx.post(f"{first.url}/projects/demo/runs", json={"prompt": "hi"}).json()
    follow_with_resume(first.url, started["stream_url"])  # resumes if Redis is slow to answer
    deliveries = f"{first.url}/projects/demo/webhooks/deliveries"
    wait_until(lambda: (httpx.get(deliveries).json() or [{}])[0].get("attempts", 0) >= 2)
    pending = httpx.get(deliveries).json()[0]
    assert pending["status"] == "pending" and pending["last_status_code"] is None
    first.__exit__(None, None, None)

    receiver = WebhookReceiver()
    with RunningServer(receiver.app, port=port):
        second = start_gateway(**settings)
        wait_until(lambda: len(receiver.received) == 1, timeout=20)
        body = verified(receiver.received[0])
        assert receiver.received[0]["headers"]["webhook-id"] == pending["delivery_id"]
        assert body["run"]["run_id"] == started["run_id"]
        url = f"{second.url}/projects/demo/webhooks/deliveries"
        wait_until(lambda: httpx.get(url).json()[0]["status"] == "delivered")


def test_the_signing_secret_is_not_given_to_the_agent(start_gateway):
    import hashlib

    server = start_gateway(**FAST)
    configure(server.url, "http://127.0.0.1:9/hook", ["run.finished"])
    started = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "leak WH_SECRET"})
    events = read_stream(server.url, started.json()["stream_url"])
    leaked = (server.workspace / "demo" / "leaked.sha256").read_text()
    assert leaked == hashlib.sha256(b"").hexdigest()  # the agent saw no such variable
    record = httpx.get(f"{server.url}/projects/demo/runs/{started.json()['run_id']}").json()
    assert record["credentials"] == [] and SECRET not in str(events)
