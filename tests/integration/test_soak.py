"""Bounded soaks: many SSE connects and disconnects leave nothing behind; a frozen client
among 100 readers costs the others nothing; 100 cancels leave no agent process.
Timings are measured in benchmarks/soak_bench.py, not asserted here."""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from domain.model import AgentRequest, OutputEvent, OutputType
from tests.conftest import processes_working_in
from tests.fakes.agents import FakeCodeAgent
from tests.integration.helpers import app_with_fake_agent, start_run, wait_until

CYCLES = int(os.environ.get("SOAK_CYCLES", "10000"))


@pytest.fixture
def in_process():
    """The app under uvicorn in this process, so its tasks and descriptors can be counted."""
    agent = FakeCodeAgent(texts=("hello",), hang=True)
    with app_with_fake_agent(agent, send_timeout_s=2.0) as server:
        yield server


def _open_file_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _connect_and_drop(port: int, request: bytes, read_first: bool) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        if read_first:  # gets the headers and the replay, then hangs up mid-stream
            received = b""
            while b"event: output" not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        # else: hangs up right after asking, often before the response begins


def test_ten_thousand_sse_connects_and_disconnects_leave_nothing_behind(in_process):
    server, service, hub = in_process, in_process.service, in_process.hub
    stream_id = server.call(lambda: service.start(AgentRequest.create("p", "x"))).stream_id
    request = f"GET /projects/p/events/{stream_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    def counts() -> tuple[int, int, int, int]:
        return server.call(
            lambda: (
                len(asyncio.all_tasks()),
                hub._streams[stream_id].readers,
                service.stats.subscribers,
                len(service._subscribers._by_stream),
            )
        )

    for i in range(100):  # warm up: first-use allocations and lazy imports
        _connect_and_drop(server.port, request, read_first=i % 2 == 0)
    wait_until(lambda: counts()[1:] == (0, 0, 0))
    tasks_before, fds_before = counts()[0], _open_file_descriptors()

    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: _connect_and_drop(server.port, request, read_first=i % 2 == 0),
                range(CYCLES),
            )
        )

    # Nothing left: no task beyond those before, no reader of the hub's stream, no
    # subscriber slot in the service, no descriptor (sockets of either side: same process).
    def settled() -> bool:
        tasks, readers, subscribers, streams = counts()
        return tasks <= tasks_before and (readers, subscribers, streams) == (0, 0, 0)

    wait_until(settled, timeout=30)
    wait_until(lambda: _open_file_descriptors() <= fds_before, timeout=30)
    assert server.call(lambda: service.stats.events_delivered) >= CYCLES // 2
    # The run is still streaming to whoever comes next.
    server.call(lambda: hub.publish(stream_id, OutputEvent(OutputType.TEXT, "late")))
    with httpx.stream("GET", f"{server.url}/projects/p/events/{stream_id}") as response:
        seen = b""
        for chunk in response.iter_bytes():
            seen += chunk
            if b"late" in seen:
                break


async def _read_all(client: httpx.AsyncClient, url: str) -> list[int]:
    seqs = []
    async with client.stream("GET", url) as response:
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
    return seqs


def test_a_frozen_client_among_100_readers_is_cut_off_and_the_others_get_everything(
    start_gateway,
):
    # A backlog limit above the stream's length: only the send timeout cuts anyone off.
    server = start_gateway(send_timeout_s=1.0)
    started = start_run(server.url, prompt="lines 3000 1 2000")  # 6 MB after 1 s
    url = f"{server.url}{started['stream_url']}"
    frozen = socket.socket()
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frozen.connect(("127.0.0.1", server.port))
    frozen.sendall(f"GET {started['stream_url']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    async def readers() -> list[list[int]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(_read_all(client, url) for _ in range(100)))

    results = asyncio.run(readers())
    for seqs in results:  # a reader cut for being slow would miss `done`; none was
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3000
    frozen.settimeout(30)
    while frozen.recv(65536):  # the gateway hangs up on the frozen client
        pass
    frozen.close()


def test_one_hundred_cancels_leave_no_agent_process(start_gateway):
    server = start_gateway(max_runs_per_project=100, interrupt_grace_s=1, terminate_grace_s=1)
    runs = [start_run(server.url, prompt="children wait") for _ in range(100)]
    workspace = server.workspace / "demo"
    # Each run: the fake CLI plus two children, one in a session of its own.
    wait_until(lambda: len(processes_working_in(workspace)) >= 300, timeout=60)

    async def cancel_all() -> list[dict]:
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post(f"{server.url}{run['cancel_url']}") for run in runs)
            )
        return [answer.json() for answer in answers]

    records = asyncio.run(cancel_all())
    assert {record["status"] for record in records} == {"cancelled"}
    # Every cancel answered after its agent stopped: nothing of theirs is left.
    assert processes_working_in(workspace) == []
