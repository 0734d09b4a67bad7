"""The stop script run in pods, run here as a local shell: both ways of finding the
run's processes (one `grep -z` over every environment, or a loop where grep lacks -z)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from adapters.kubernetes.process import AFTER_AGENT, STOP_SCRIPT, TAG_VARIABLE
from tests.conftest import process_alive

WITH_GREP_Z = "if printf 'x\\0' | grep -qzx x 2>/dev/null; then"


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("script", ["grep -z", "loop"])
def test_it_stops_every_tagged_process_and_nothing_else(script):
    body = (
        STOP_SCRIPT if script == "grep -z" else STOP_SCRIPT.replace(WITH_GREP_Z, "if false; then")
    )
    assert WITH_GREP_Z in STOP_SCRIPT
    tagged = {**os.environ, TAG_VARIABLE: "run-1"}
    ignoring = subprocess.Popen(
        ["sh", "-c", "trap '' INT TERM; sleep 60 & wait"], env=tagged, start_new_session=True
    )
    # SIGINT as a shell's own children have it: a test run in the background of a
    # non-interactive shell would otherwise inherit it ignored.
    plain = subprocess.Popen(["sleep", "60"], env=tagged, preexec_fn=default_sigint)
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, TAG_VARIABLE: "run-2"})
    try:
        result = subprocess.run(["sh", "-c", body, "sh", "run-1", "0", "0"], timeout=30)
        assert result.returncode == 0
        assert ignoring.wait(5) == -9 and plain.wait(5) == -2
        assert other.poll() is None
    finally:
        for process in (ignoring, plain, other):
            process.kill()
            process.wait()


def after_agent(shell: str, agent: str) -> list[str]:
    return [shell, "-c", AFTER_AGENT, "agent-gateway-run", STOP_SCRIPT, "0", "0", "sh", "-c", agent]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_after_the_agent_what_it_left_is_stopped_and_its_status_kept(shell, tmp_path):
    """The agent reads its stdin, leaves a child that ignores SIGINT and SIGTERM and one
    in a session of its own, and exits 3: both are gone when the shell exits 3."""
    agent = (
        "read line; echo \"$line\" > got; (trap '' INT TERM; exec sleep 60) & echo $! > pids; "
        "setsid sleep 61 & echo $! >> pids; exit 3"
    )
    tagged = {**os.environ, TAG_VARIABLE: "run-1"}
    other = subprocess.Popen(["sleep", "62"], env={**os.environ, TAG_VARIABLE: "run-2"})
    try:
        result = subprocess.run(
            after_agent(shell, agent), env=tagged, cwd=tmp_path, input=b"hello\n", timeout=30
        )
        assert result.returncode == 3
        assert (tmp_path / "got").read_text() == "hello\n"
        left = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
        assert len(left) == 2 and not [pid for pid in left if process_alive(pid)]
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_stop_scripts_signal_reaches_the_agent_and_the_shell_keeps_its_status(shell, tmp_path):
    """A stop script signals every tagged process, this shell too: the agent gets SIGINT
    with its default action (so it can stop gracefully) and the shell exits with the
    agent's status."""
    agent = (
        "python3 -c 'import signal, time; print(signal.getsignal(signal.SIGINT)); time.sleep(30)'"
    )
    tagged = {**os.environ, TAG_VARIABLE: "run-1"}
    shell_process = subprocess.Popen(
        after_agent(shell, agent), env=tagged, stdout=subprocess.PIPE, preexec_fn=default_sigint
    )
    try:
        assert shell_process.stdout is not None
        assert b"default_int_handler" in shell_process.stdout.readline()
        stop = subprocess.run(["sh", "-c", STOP_SCRIPT, "sh", "run-1", "5", "5"], timeout=30)
        assert stop.returncode == 0
        assert shell_process.wait(5) == 128 + signal.SIGINT
    finally:
        shell_process.kill()
        shell_process.wait()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_late_signal_to_the_shell_does_not_cut_the_stop_after_the_agent(shell, tmp_path):
    """A separate stop signals the pids it found tagged a moment ago; the shell's pid may
    by then be the stop script it became. That stop goes on, and keeps the agent's status."""
    agent = "(trap '' INT TERM; exec sleep 60) & echo $! > child; exit 3"
    argv = [shell, "-c", AFTER_AGENT, "agent-gateway-run", STOP_SCRIPT, "1", "1", "sh", "-c", agent]
    tagged = {**os.environ, TAG_VARIABLE: "run-1"}
    wrapper = subprocess.Popen(argv, env=tagged, cwd=tmp_path, preexec_fn=default_sigint)
    try:
        child = tmp_path / "child"
        for _ in range(500):
            if child.exists() and child.read_text().strip():
                break
            time.sleep(0.01)
        time.sleep(0.3)  # the agent has exited: the shell is the stop script, waiting
        wrapper.send_signal(signal.SIGINT)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(15) == 3
        assert not process_alive(int(child.read_text()))
    finally:
        wrapper.kill()
        wrapper.wait()
