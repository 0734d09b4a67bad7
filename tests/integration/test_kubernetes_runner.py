"""The gateway with the Kubernetes exec runner, against the fake API server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import process_alive, processes_working_in
from tests.fakes.kube_apiserver import kubeconfig
from tests.fakes.servers import FlakyProxy
from tests.integration.helpers import read_stream, start_run, texts, wait_for_file, wait_until


@pytest.fixture
def kube_gateway(start_gateway, fake_kube):
    def start(**overrides):
        values = {"runner": "kubernetes", "interrupt_grace_s": 1, "terminate_grace_s": 1}
        return start_gateway(**{**values, **overrides})

    return start


def exec_kind(command: list[str]) -> str:
    """What an exec of the runner was for, from its command."""
    if command[0] != "env":
        return "stop" if "signal_all" in command[2] else command[2]
    joined = " ".join(command)
    kind = "save" if "projects" in joined and ".jsonl" in joined else "agent"
    if "head -c" in joined:
        return "framed" if kind == "agent" else f"framed {kind}"
    return kind


def test_agent_output_streams_from_the_pod(kube_gateway, fake_kube):
    server = kube_gateway()
    prompt = 'it\'s "quoted" $(id) `id` ; & | > \n ünï 🙂'
    events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
    assert texts(events) == f"You said: {prompt}"
    assert events[-1][2]["status"] == "succeeded" and events[-1][2]["exit_code"] == 0
    assert (fake_kube.workdir / "received_prompt.bin").read_bytes() == prompt.encode()
    command = fake_kube.execs[0]
    assert command[0] == "env" and command[1].startswith("AGENT_GATEWAY_PROCESS_TAG=")
    assert not any(prompt in part for part in command)  # on stdin, not in the exec URL


def test_large_output_with_multibyte_characters_arrives_intact(kube_gateway):
    server = kube_gateway()
    # 3000 lines of 1 KB padding plus "é" characters: frames of 32 KiB split them anywhere.
    events = read_stream(
        server.url, start_run(server.url, prompt="lines 3000 0 1000")["stream_url"]
    )
    assert events[-1][2]["status"] == "succeeded", events[-3:]
    lines = texts(events).splitlines()
    assert len(lines) == 3001 and lines[-1] == "You said: lines 3000 0 1000"
    assert all(line == f"line {i}" + "x" * 1000 for i, line in enumerate(lines[:3000]))


def test_multibyte_characters_split_across_frames_arrive_intact(kube_gateway):
    server = kube_gateway()
    # Lines of 3001 two- and four-byte characters: 32 KiB frames split them anywhere.
    for padding in ("é", "🙂"):
        prompt = f"lines 400 0 3001 {padding}"
        events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
        lines = texts(events).splitlines()
        assert lines[:400] == [f"line {i}" + padding * 3001 for i in range(400)]
        assert not any(d.get("type") == "unparsed" for _, _, d in events)


def test_a_one_mib_prompt_goes_through_stdin(kube_gateway, fake_kube):
    server = kube_gateway()
    prompt = "long prompt " + "ü" * (512 * 1024 - 10)
    events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    assert (fake_kube.workdir / "received_prompt.bin").read_bytes() == prompt.encode()


@pytest.mark.parametrize(("prompt", "status", "code"), [("crash x", "failed", 1)])
def test_exit_codes_come_from_the_exec_status(kube_gateway, prompt, status, code):
    server = kube_gateway()
    events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
    assert events[-1][2]["status"] == status and events[-1][2]["exit_code"] == code


def test_other_exit_codes(kube_gateway, tmp_path):
    script = tmp_path / "exit7.sh"
    script.write_text('#!/bin/sh\necho \'{"type":"system","subtype":"init"}\'\nexit 7\n')
    script.chmod(0o755)
    server = kube_gateway(claude_command=str(script))
    events = read_stream(server.url, start_run(server.url, prompt="x")["stream_url"])
    assert events[-1][2]["status"] == "failed" and events[-1][2]["exit_code"] == 7


def test_a_missing_command_in_the_pod_fails_with_its_message(kube_gateway):
    server = kube_gateway(claude_command="/nonexistent/claude")
    events = read_stream(server.url, start_run(server.url, prompt="x")["stream_url"])
    assert events[-1][2]["status"] == "failed" and events[-1][2]["exit_code"] == 127
    stderr = [d["content"] for _, _, d in events if d.get("type") == "stderr"]
    assert any("/nonexistent/claude" in line for line in stderr)


def test_cancel_stops_every_process_of_the_run_in_the_pod(kube_gateway, fake_kube):
    server = kube_gateway()
    started = start_run(server.url, prompt="children please")
    pids = [int(p) for p in wait_for_file(fake_kube.workdir / "children.pids").split()]
    assert all(process_alive(pid) for pid in pids)

    record = httpx.post(f"{server.url}{started['cancel_url']}", timeout=60).json()

    assert record["status"] == "cancelled"
    assert not [pid for pid in pids if process_alive(pid)]
    assert processes_working_in(fake_kube.workdir) == []
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "cancelled"
    # The stop exec, then the session's transcript is looked for (the fake CLI wrote none).
    assert [exec_kind(c) for c in fake_kube.execs] == ["agent", "stop", "save"]


def test_what_an_agent_leaves_behind_is_stopped_in_its_own_exec(kube_gateway, fake_kube):
    """The agent exits and leaves children (one ignoring signals, one in a session of
    its own, both holding its stdout): they are stopped before the exec reports its
    status, so the run ends and needs no stop exec of its own."""
    server = kube_gateway()
    events = read_stream(server.url, start_run(server.url, prompt="orphans")["stream_url"])
    assert events[-1][2]["status"] == "succeeded" and events[-1][2]["exit_code"] == 0
    pids = [int(p) for p in (fake_kube.workdir / "children.pids").read_text().split()]
    assert not [pid for pid in pids if process_alive(pid)]
    assert processes_working_in(fake_kube.workdir) == []
    assert [exec_kind(c) for c in fake_kube.execs] == ["agent", "save"]


def test_cancel_kills_an_agent_that_ignores_signals(kube_gateway, fake_kube):
    server = kube_gateway()
    started = start_run(server.url, prompt="stubborn one")
    wait_for_file(fake_kube.workdir / "received_prompt.bin")
    time.sleep(0.3)
    record = httpx.post(f"{server.url}{started['cancel_url']}", timeout=60).json()
    assert record["status"] == "cancelled"
    assert processes_working_in(fake_kube.workdir) == []


def test_hard_timeout_in_the_pod(kube_gateway, fake_kube):
    server = kube_gateway()
    started = start_run(server.url, prompt="children slow", timeout_s=1)
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "timed_out"
    assert processes_working_in(fake_kube.workdir) == []


def test_a_dropped_exec_connection_fails_the_run_and_stops_the_process(kube_gateway, fake_kube):
    server = kube_gateway()
    fake_kube.drop_after_output = True
    started = start_run(server.url, prompt="slow dropped")
    events = read_stream(server.url, started["stream_url"])
    done = events[-1][2]
    assert done["status"] == "failed" and done["exit_code"] is None
    assert "exit status unknown" in done["error"]
    wait_until(lambda: processes_working_in(fake_kube.workdir) == [])


def test_exec_streams_cut_mid_run_fail_the_runs_and_their_processes_are_stopped(
    kube_gateway, fake_kube
):
    """As when the API server restarts: every open exec closes at once, the processes go
    on in the pod until the gateway's stop exec ends them."""
    server = kube_gateway()
    runs = [start_run(server.url, prompt="slow cut") for _ in range(3)]
    wait_until(lambda: len(fake_kube.open_execs) == 3)
    time.sleep(0.3)  # some output first
    assert fake_kube.server.call(fake_kube.cut_streams) == 3
    for run in runs:
        done = read_stream(server.url, run["stream_url"])[-1][2]
        assert done["status"] == "failed" and done["exit_code"] is None
        assert "lost (closed by the API server with code 1011" in done["error"], done
        assert "exit status unknown" in done["error"]
    assert processes_working_in(fake_kube.workdir) == []
    assert [c[:2] for c in fake_kube.execs[3:]] == [["sh", "-c"]] * 3  # a stop exec each


def test_a_silent_network_cut_is_noticed_within_the_ping_interval(
    start_gateway, fake_kube, tmp_path, monkeypatch
):
    """The exec's connection goes silent both ways without closing (a network cut): the
    keepalive pings notice it, the run fails, and a new connection stops the process."""
    proxy = FlakyProxy(fake_kube.server.port, cut_after=0, drops=0)
    config = json.loads(Path(os.environ["KUBECONFIG"]).read_text())
    config["clusters"][0]["cluster"]["server"] = proxy.url
    through_proxy = tmp_path / "through-proxy.json"
    through_proxy.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(through_proxy))
    server = start_gateway(runner="kubernetes", kube_ping_interval_s=1, interrupt_grace_s=1)
    started = start_run(server.url, prompt="slow silent")
    wait_until(lambda: len(fake_kube.open_execs) == 1)
    time.sleep(0.3)
    proxy.black_hole()
    cut_at = time.monotonic()
    done = read_stream(server.url, started["stream_url"])[-1][2]
    assert done["status"] == "failed" and "no answer to keepalive pings" in done["error"], done
    # Noticed within the 1 s interval; the stop exec takes a moment more.
    assert time.monotonic() - cut_at < 1 + 2.5
    assert processes_working_in(fake_kube.workdir) == []
    proxy.close()


def test_an_api_server_that_speaks_only_v4_runs_agents_with_length_framed_stdin(
    kube_gateway, fake_kube
):
    fake_kube.protocols = ("v4.channel.k8s.io",)
    server = kube_gateway()
    prompt = "first on v4 " + "ü" * 1000
    for _ in range(2):
        events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
        assert texts(events) == f"You said: {prompt}"
        assert events[-1][2]["status"] == "succeeded", events
        assert (fake_kube.workdir / "received_prompt.bin").read_bytes() == prompt.encode()

    # The first exec could not close stdin: it was stopped and opened again framed by
    # length; the second run was framed from the start. (Each run ends with a look for
    # its session's transcript, framed too.)
    assert [exec_kind(c) for c in fake_kube.execs] == [
        *["agent", "stop", "framed", "framed save"],
        *["framed", "framed save"],
    ]
    assert processes_working_in(fake_kube.workdir) == []
    response = httpx.post(
        f"{server.url}/projects/demo/claude", json={"prompt": "x", "interactive": True}
    )
    assert response.status_code == 503 and "v5.channel.k8s.io" in response.text


def test_pod_resolution_errors_are_503_naming_namespace_and_pod(kube_gateway):
    server = kube_gateway()
    response = httpx.post(f"{server.url}/projects/ghost/claude", json={"prompt": "x"})
    assert response.status_code == 503
    assert "'ghost-agent-0'" in response.json()["error"]["message"]
    assert "'default'" in response.json()["error"]["message"]
    response = httpx.post(f"{server.url}/projects/pending/claude", json={"prompt": "x"})
    assert response.status_code == 503 and "Pending" in response.json()["error"]["message"]


def test_pods_found_by_label_selector(start_gateway, fake_kube):
    server = start_gateway(runner="kubernetes", kube_selector="project={project}")
    events = read_stream(server.url, start_run(server.url, prompt="hello")["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    response = httpx.post(f"{server.url}/projects/ghost/claude", json={"prompt": "x"})
    assert response.status_code == 503
    assert "selector 'project=ghost'" in response.json()["error"]["message"]


def test_runs_past_the_exec_limit_are_refused_not_queued(kube_gateway):
    server = kube_gateway(kube_max_execs=1)
    first = start_run(server.url, prompt="slow one")
    response = httpx.post(f"{server.url}/projects/demo/claude", json={"prompt": "x"}, timeout=10)
    assert response.status_code == 503 and "1 execs are running" in response.text
    httpx.post(f"{server.url}{first['cancel_url']}", timeout=30)
    wait_until(
        lambda: (
            httpx.post(
                f"{server.url}/projects/demo/claude", json={"prompt": "hello"}, timeout=10
            ).status_code
            == 202
        )
    )


def test_providers_say_claude_code_is_unavailable_while_the_api_server_is_unreachable(
    start_gateway, fake_kube, tmp_path, monkeypatch
):
    server = start_gateway(runner="kubernetes")
    claude_code(server.url)  # starts its probe of the fake
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        config = json.loads(Path(os.environ["KUBECONFIG"]).read_text())
        config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{closed.getsockname()[1]}"
        unreachable = tmp_path / "unreachable.json"
        unreachable.write_text(json.dumps(config))
        monkeypatch.setenv("KUBECONFIG", str(unreachable))
        down = start_gateway(runner="kubernetes")
        wait_until(lambda: not claude_code(down.url)["available"])
        assert "Kubernetes API server unreachable" in claude_code(down.url)["detail"]
        response = httpx.post(f"{down.url}/projects/demo/claude", json={"prompt": "hi"})
        assert response.status_code == 503, response.text
        assert "unreachable" in response.json()["error"]["message"], response.text
    assert claude_code(server.url)["available"]  # the fake answered its probe meanwhile


def claude_code(url: str) -> dict:
    providers = httpx.get(f"{url}/providers").json()
    return next(p for p in providers if p["name"] == "claude-code")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_one_hundred_concurrent_exec_runs_in_as_many_pods_complete_without_a_thread_each(
    start_gateway, tmp_path, monkeypatch
):
    """The bounded version of benchmarks/pods_bench.py (500 runs, with figures). The fake
    API server runs in a process of its own, as a cluster's would: in this one it would
    share the gateway's interpreter and its lock with 100 runs' worth of frames."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fake_argv = ["-m", "tests.fakes.kube_apiserver", "--port", str(port), "--pods", "100"]
    fake = subprocess.Popen(
        [sys.executable, *fake_argv, "--root", str(tmp_path / "pods")],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/version"), timeout=30)
        config = tmp_path / "kubeconfig.json"
        config.write_text(json.dumps(kubeconfig(f"http://127.0.0.1:{port}")))
        monkeypatch.setenv("KUBECONFIG", str(config))
        server = start_gateway(runner="kubernetes")
        before, peak = threading.active_count(), [0]

        async def one(client: httpx.AsyncClient, project: str) -> str:
            response = await client.post(f"/projects/{project}/claude", json={"prompt": "lines 20"})
            assert response.status_code == 202, response.text
            lines = set()
            async with aconnect_sse(client, "GET", response.json()["stream_url"]) as source:
                async for sse in source.aiter_sse():
                    peak[0] = max(peak[0], threading.active_count())
                    data = json.loads(sse.data)
                    if data.get("type") == "text" and data["content"].startswith("line "):
                        lines.add(data["content"])
                    if sse.event == "done":
                        return f"{data['status']}, {len(lines)} lines"
            return "no done"

        async def all_runs() -> list[str]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                return await asyncio.gather(*(one(client, f"p{i}") for i in range(100)))

        assert asyncio.run(all_runs()) == ["succeeded, 20 lines"] * 100
        # The execs are WebSockets on the gateway's loop: a thread per run would add 100.
        assert peak[0] - before < 20, (before, peak)
    finally:
        fake.terminate()
        fake.wait(30)


def test_a_helper_command_cancelled_midway_is_stopped_in_the_pod(fake_kube):
    """A helper exec (a transcript's save or restore) whose caller is cancelled, as at
    shutdown: its command is stopped in the pod, not left running there."""
    from adapters.kubernetes.config import load_kube_configuration
    from adapters.kubernetes.pods import PodLocator
    from adapters.kubernetes.runner import KubernetesExecRunner

    async def cancel_midway() -> None:
        runner = KubernetesExecRunner(
            load_kube_configuration(os.environ["KUBECONFIG"], None), PodLocator("default"), 1, 1
        )
        helper = asyncio.ensure_future(
            runner.run("demo", ["sh", "-c", "echo $$ > helper.pid; exec sleep 60"], {})
        )
        await asyncio.to_thread(wait_for_file, fake_kube.workdir / "helper.pid")
        helper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await helper

    asyncio.run(cancel_midway())
    pid = int((fake_kube.workdir / "helper.pid").read_text())
    assert not process_alive(pid)
