"""The gateway drives CI: a template's `woodpecker` block starts exactly one pipeline per
succeeded run (none for a failed one), against a fake Woodpecker that follows its API's
shapes; the run record and the stream name the pipeline."""

from __future__ import annotations

import httpx

from tests.fakes.servers import RunningServer
from tests.fakes.woodpecker import FakeWoodpecker
from tests.integration.helpers import read_stream

TOKEN = "wp-personal-token-0123456789"


def test_one_pipeline_per_succeeded_run_and_none_for_a_failed_one(start_gateway):
    woodpecker = FakeWoodpecker(TOKEN, {"acme/widgets": 7})
    with RunningServer(woodpecker.app) as ci:
        woodpecker.url = ci.url
        server = start_gateway()
        assert (
            httpx.put(
                f"{server.url}/projects/demo/credentials/WP_TOKEN", json={"value": TOKEN}
            ).status_code
            == 200
        )
        block = {
            "url": ci.url,
            "repo": "acme/widgets",
            "branch": "release",
            "token": "WP_TOKEN",
            "variables": {"DEPLOY": "staging"},
        }
        assert (
            httpx.put(f"{server.url}/templates/ship", json={"woodpecker": block}).status_code == 200
        )
        assert (
            httpx.put(f"{server.url}/projects/demo", json={"template": "ship"}).status_code == 200
        )

        ok = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi"}).json()
        events = read_stream(server.url, ok["stream_url"])
        notice = next(d for _, n, d in events if n == "output" and d.get("subtype") == "woodpecker")
        assert notice["number"] == 1 and notice["link"].endswith("/repos/7/pipeline/1")
        assert events[-1][1] == "done" and events[-1][2]["status"] == "succeeded"
        record = httpx.get(f"{server.url}/projects/demo/runs/{ok['run_id']}").json()
        assert record["pipeline"] == {"number": 1, "link": notice["link"], "status": "pending"}
        assert woodpecker.pipelines == [
            {
                "repo_id": 7,
                "branch": "release",
                "variables": {"DEPLOY": "staging", "AGENT_GATEWAY_RUN_ID": ok["run_id"]},
            }
        ]

        failed = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "crash"}).json()
        assert read_stream(server.url, failed["stream_url"])[-1][2]["status"] == "failed"
        assert len(woodpecker.pipelines) == 1  # none for a failed run
        record = httpx.get(f"{server.url}/projects/demo/runs/{failed['run_id']}").json()
        assert record["pipeline"] is None

        block["repo"] = "acme/unknown"
        assert (
            httpx.put(f"{server.url}/templates/ship", json={"woodpecker": block}).status_code == 200
        )
        lost = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi"}).json()
        events = read_stream(server.url, lost["stream_url"])
        assert events[-1][2]["status"] == "succeeded"  # the run succeeded all the same
        record = httpx.get(f"{server.url}/projects/demo/runs/{lost['run_id']}").json()
        assert "acme/unknown" in record["pipeline"]["error"]
        assert TOKEN not in str(events) and TOKEN not in str(record)
