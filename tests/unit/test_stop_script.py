"""The stop script run in pods, run here as a local shell: both ways of finding the
run's processes (one `grep -z` over every environment, or a loop where grep lacks -z)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from adapters.kubernetes.process import STOP_SCRIPT, TAG_VARIABLE

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
