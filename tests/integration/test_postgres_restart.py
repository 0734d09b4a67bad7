"""The gateway on PostgreSQL as a process of its own, killed with SIGKILL and started
again: what was finished replays byte for byte, what waited runs, what ran ends owner lost."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psycopg

from tests.conftest import processes_working_in
from tests.integration.helpers import GatewayProcess, read_stream, serve_flags, start_run


def raw_stream(url: str, stream_url: str) -> bytes:
    with httpx.stream("GET", f"{url}{stream_url}", timeout=30) as response:
        assert response.status_code == 200
        return response.read()


def wait_for_events_written(database_url: str, stream_id: str, count: int) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(database_url) as connection:
        while time.monotonic() < deadline:
            query = "SELECT count(*) FROM events WHERE stream_id = %s"
            row = connection.execute(query, (stream_id,)).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} events of {stream_id} written")


def test_after_a_kill_finished_runs_replay_queued_runs_run_and_running_ones_end(
    database_url, tmp_path
):
    flags = serve_flags(
        tmp_path, "--database-url", database_url, "--max-runs", "1", "--lease-ttl-s", "1.5"
    )
    first = GatewayProcess(*flags)
    try:
        finished = start_run(first.url, prompt="lines 30")
        finished_events = read_stream(first.url, finished["stream_url"])
        finished_bytes = raw_stream(first.url, finished["stream_url"])
        record_path = f"/projects/demo/runs/{finished['run_id']}"
        finished_record = httpx.get(f"{first.url}{record_path}").json()
        running = start_run(first.url, prompt="slow going")
        waiting = start_run(first.url, prompt="hello after the crash")
        assert (running["status"], waiting["status"]) == ("running", "queued")
        wait_for_events_written(database_url, finished["stream_id"], len(finished_events))
        wait_for_events_written(database_url, waiting["stream_id"], 1)
    finally:
        first.process.kill()  # no chance to finish, release or flush anything
        first.process.wait(10)
        for pid in processes_working_in(tmp_path):  # the dead gateway's agent lives on
            os.kill(pid, signal.SIGKILL)

    second = GatewayProcess(*flags)
    try:
        assert raw_stream(second.url, finished["stream_url"]) == finished_bytes
        assert httpx.get(f"{second.url}{record_path}").json() == finished_record
        resumed = read_stream(second.url, finished["stream_url"], {"Last-Event-ID": "10"})
        assert resumed == finished_events[10:]

        events = read_stream(second.url, waiting["stream_url"])
        statuses = [data for _, name, data in events if name == "status"]
        assert statuses == [{"status": "queued", "position": 1}, {"status": "running"}]
        assert events[-1][2]["status"] == "succeeded"
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))

        events = read_stream(second.url, running["stream_url"])  # within the lease TTL
        assert events[-1][1] == "done" and events[-1][2]["status"] == "failed"
        assert "owner lost" in events[-1][2]["error"]
        record = httpx.get(f"{second.url}/projects/demo/runs/{running['run_id']}").json()
        assert record["status"] == "failed"
        listed = [r["run_id"] for r in httpx.get(f"{second.url}/projects/demo/runs").json()]
        assert set(listed) == {finished["run_id"], running["run_id"], waiting["run_id"]}
    finally:
        second.stop()
