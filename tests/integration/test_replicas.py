"""Two gateway processes sharing one redis-server: any replica serves any stream and
cancels any run."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import process_alive, processes_working_in
from tests.integration.helpers import (
    GatewayProcess,
    follow_with_resume,
    read_stream,
    serve_flags,
    start_run,
    texts,
    wait_for_file,
)


def redis_flags(url: str) -> list[str]:
    """Redis for events and runs; a dead replica's runs fail after 1.5 s."""
    return ["--event-backend", "redis", "--redis-url", url, "--lease-ttl-s", "1.5"]


@pytest.fixture
def replicas(redis_server, tmp_path):
    flags = serve_flags(
        tmp_path,
        *redis_flags(redis_server.url),
        "--interrupt-grace-s",
        "1",
        "--terminate-grace-s",
        "1",
        "--retain-events",
        "50000",
    )
    a, b = GatewayProcess(*flags), GatewayProcess(*flags)
    yield a, b
    a.stop()
    b.stop()


def test_a_run_started_on_one_replica_streams_from_the_other(replicas):
    a, b = replicas
    started = start_run(a.url, prompt="lines 200")
    on_b = read_stream(b.url, started["stream_url"])
    on_a = read_stream(a.url, started["stream_url"])
    assert on_b == on_a and on_b[-1][2]["status"] == "succeeded"
    assert [seq for seq, _, _ in on_b] == list(range(1, len(on_b) + 1))
    record = httpx.get(f"{b.url}/projects/demo/runs/{started['run_id']}").json()
    assert record["status"] == "succeeded"
    listed = httpx.get(f"{b.url}/projects/demo/runs").json()
    assert listed[0]["run_id"] == started["run_id"]


def test_resuming_across_replicas_loses_and_repeats_nothing(replicas):
    a, b = replicas
    started = start_run(a.url, prompt="lines 12000")
    expected, _ = follow_with_resume(a.url, started["stream_url"])
    seen: list = []
    rng = random.Random(7)
    reconnects = 0
    clients = [httpx.Client(base_url=r.url, timeout=30) for r in (a, b)]
    while not seen or seen[-1][1] != "done":
        client = clients[reconnects % 2]  # alternate replicas
        headers = {"Last-Event-ID": str(seen[-1][0])} if seen else {}
        with client.stream("GET", started["stream_url"], headers=headers) as response:
            # Read a random number of events, then drop the connection.
            wanted = rng.randint(1, 20)
            block = ""
            for line in response.iter_lines():
                if line.startswith(":"):
                    continue  # a ping
                if line:
                    block += line + "\n"
                    continue
                if not block:
                    continue
                fields = dict(part.split(": ", 1) for part in block.strip().split("\n"))
                block = ""
                seen.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                wanted -= 1
                if wanted == 0 or fields["event"] == "done":
                    break
        reconnects += 1
    for client in clients:
        client.close()
    assert seen == expected  # every event exactly once, in order
    assert reconnects >= 1000


def test_cancel_on_one_replica_stops_a_run_owned_by_the_other(replicas, tmp_path):
    a, b = replicas
    started = start_run(a.url, prompt="children please")
    pids = [int(p) for p in wait_for_file(tmp_path / "demo" / "children.pids").split()]
    record = httpx.post(f"{b.url}{started['cancel_url']}", timeout=60).json()
    assert record["status"] == "cancelled"
    assert not [pid for pid in pids if process_alive(pid)]
    events = read_stream(b.url, started["stream_url"])
    assert events[-1][2]["status"] == "cancelled"


def test_sigterm_on_the_owner_publishes_done_and_the_other_replays(replicas):
    a, b = replicas
    started = start_run(a.url, prompt="slow run")
    live: list = []
    follower = threading.Thread(
        target=lambda: live.extend(read_stream(b.url, started["stream_url"]))
    )
    follower.start()
    time.sleep(0.5)
    a.terminate()
    follower.join(30)
    assert live[-1][1] == "done" and live[-1][2]["status"] == "cancelled"
    assert a.process.wait(30) is not None
    replay = read_stream(b.url, started["stream_url"])
    assert replay == live and texts(replay).startswith("w0 ")


def test_a_redis_restart_mid_run_ends_in_an_error_or_a_resume_never_a_hang(start_gateway, tmp_path):
    from tests.fakes.redis_server import RedisServer

    redis = RedisServer(tmp_path).start()
    try:
        server = start_gateway(event_backend="redis", redis_url=redis.url)
        started = start_run(server.url, prompt="slow run")
        outcome: list = []

        def follow() -> None:
            try:
                outcome.append(("events", read_stream(server.url, started["stream_url"])))
            except httpx.HTTPError as exc:
                outcome.append(("error", exc))

        follower = threading.Thread(target=follow)
        follower.start()
        time.sleep(0.5)
        redis.stop()
        redis.start()
        follower.join(30)
        assert not follower.is_alive(), "the client hung"
        kind, value = outcome[0]
        # The stream ends cleanly, not as a cut connection, and without a done that claims
        # success: the client knows to resume...
        assert kind == "events", value
        assert not value or value[-1][1] != "done" or value[-1][2]["status"] != "succeeded"
        # ...and a resume answers at once, with a clear status, instead of hanging.
        response = httpx.get(f"{server.url}{started['stream_url']}", timeout=10)
        assert response.status_code in (200, 404)
    finally:
        redis.stop()


def test_runs_of_a_replica_that_died_fail_as_owner_lost(replicas, tmp_path):
    a, b = replicas
    started = start_run(a.url, prompt="slow orphan")
    time.sleep(0.5)
    a.process.kill()  # no chance to finish anything
    a.process.wait(10)
    try:
        events = read_stream(b.url, started["stream_url"], timeout=30)
        assert events[-1][1] == "done" and events[-1][2]["status"] == "failed"
        assert "owner lost" in events[-1][2]["error"]
        record = httpx.get(f"{b.url}/projects/demo/runs/{started['run_id']}").json()
        assert record["status"] == "failed" and "owner lost" in record["error"]
    finally:
        for pid in processes_working_in(tmp_path):  # the dead replica's agent lives on
            os.kill(pid, signal.SIGKILL)


def test_sigterm_ends_the_streams_a_replica_serves_so_clients_resume_elsewhere(replicas):
    a, b = replicas
    started = start_run(b.url, prompt="slow elsewhere")  # owned by b, followed on a
    first: list = []

    def follow() -> None:  # keeps what arrived, however the connection ends
        try:
            with (
                httpx.Client(base_url=a.url, timeout=30) as client,
                connect_sse(client, "GET", started["stream_url"]) as source,
            ):
                for sse in source.iter_sse():
                    first.append((int(sse.id), sse.event, json.loads(sse.data)))
        except httpx.HTTPError:
            pass

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.5)
    a.terminate()
    follower.join(30)
    assert not follower.is_alive() and first and first[-1][1] != "done"
    assert a.process.wait(30) is not None
    httpx.post(f"{b.url}{started['cancel_url']}", timeout=30)
    rest = read_stream(b.url, started["stream_url"], {"Last-Event-ID": str(first[-1][0])})
    assert [seq for seq, _, _ in first + rest] == list(range(1, len(first) + len(rest) + 1))
    assert rest[-1][1] == "done"


def test_a_restarted_gateway_marks_the_runs_in_flight_at_its_crash_failed(redis_server, tmp_path):
    flags = serve_flags(tmp_path, *redis_flags(redis_server.url))
    first = GatewayProcess(*flags)
    try:
        started = start_run(first.url, prompt="slow in flight")
        time.sleep(0.5)
    finally:
        first.process.kill()  # a crash: nothing is finished or released
        first.process.wait(10)
    for pid in processes_working_in(tmp_path):  # its agent would outlive it
        os.kill(pid, signal.SIGKILL)
    second = GatewayProcess(*flags)  # the only replica, started again
    try:
        events = read_stream(second.url, started["stream_url"], timeout=30)
        assert events[-1][1] == "done" and events[-1][2]["status"] == "failed"
        record = httpx.get(f"{second.url}/projects/demo/runs/{started['run_id']}").json()
        assert record["status"] == "failed" and "owner lost" in record["error"]
    finally:
        second.stop()


def test_readyz_is_503_naming_redis_while_it_cannot_be_reached(start_gateway, redis_server):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    down = start_gateway(event_backend="redis", redis_url=nowhere)
    response = httpx.get(f"{down.url}/readyz", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["providers"] == {"claude-code": True}
    assert {problem.split(":")[0] for problem in body["unreachable"]} == {"event hub", "run store"}
    assert nowhere.split("/")[2] in body["unreachable"][0]  # says which address
    for method, path in (("POST", "/projects/demo/claude"), ("GET", "/projects/demo/runs/x")):
        answer = httpx.request(method, down.url + path, json={"prompt": "hi"}, timeout=30)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "backend_unavailable"
        assert "Redis is unavailable" in answer.json()["error"]["message"]
    up = start_gateway(event_backend="redis", redis_url=redis_server.url)
    response = httpx.get(f"{up.url}/readyz", timeout=30)
    assert response.status_code == 200 and response.json()["unreachable"] == []


@pytest.fixture
def small_replicas(redis_server, tmp_path):
    """Two replicas with room for two running runs each, sharing one queue."""
    flags = serve_flags(tmp_path, *redis_flags(redis_server.url), "--max-runs", "2")
    a, b = GatewayProcess(*flags), GatewayProcess(*flags)
    yield a, b
    a.stop()
    b.stop()


def _started_total(replica: GatewayProcess) -> float:
    metrics = httpx.get(f"{replica.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("agent_gateway_runs_started_total{")
    )


def test_queued_runs_start_exactly_once_across_replicas(small_replicas):
    a, b = small_replicas
    holders = [start_run(r.url, prompt="slow hold") for r in (a, b, a, b)]
    assert all(h["status"] == "running" for h in holders)
    queued = [start_run((a, b)[i % 2].url, f"p{i % 3}", prompt="lines 3 0.1") for i in range(20)]
    assert all(q["status"] == "queued" for q in queued)
    assert len(httpx.get(f"{b.url}/queue").json()) == 20
    for holder, replica in zip(holders, (a, b, a, b), strict=True):
        httpx.post(f"{replica.url}{holder['cancel_url']}", timeout=30)
    for i, run in enumerate(queued):
        events = read_stream((b, a)[i % 2].url, run["stream_url"])  # read on the other one
        statuses = [data["status"] for _, name, data in events if name == "status"]
        assert statuses[0] == "queued" and statuses.count("running") == 1
        assert [name for _, name, _ in events].count("done") == 1
        assert events[-1][2]["status"] == "succeeded"
    assert _started_total(a) + _started_total(b) == 4 + 20  # no run started twice
    assert _started_total(a) >= 6 and _started_total(b) >= 6  # both took from the queue


def test_the_queued_runs_of_a_replica_that_died_run_on_another(small_replicas, tmp_path):
    a, b = small_replicas
    holders_a = [start_run(a.url, prompt="slow hold") for _ in range(2)]
    holders_b = [start_run(b.url, prompt="slow hold") for _ in range(2)]
    queued = [start_run(a.url, prompt="hello") for _ in range(3)]  # queued through a
    assert all(q["status"] == "queued" for q in queued)
    a.process.kill()  # a dies with the runs it queued and the ones it runs
    a.process.wait(10)
    try:
        for holder in holders_b:
            httpx.post(f"{b.url}{holder['cancel_url']}", timeout=30)
        for run in queued:
            events = read_stream(b.url, run["stream_url"])
            assert events[-1][1] == "done" and events[-1][2]["status"] == "succeeded"
        for holder in holders_a:  # a's running runs end owner lost, on b
            events = read_stream(b.url, holder["stream_url"])
            assert events[-1][2]["status"] == "failed" and "owner lost" in events[-1][2]["error"]
    finally:
        for pid in processes_working_in(tmp_path):  # the dead replica's agents live on
            os.kill(pid, signal.SIGKILL)
