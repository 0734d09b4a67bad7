"""The local runner's processes, as the kernel sees them: real `sh` children."""

from __future__ import annotations

import os
from pathlib import Path

from adapters.local_process import LocalProcessRunner
from adapters.local_process.runner import AGENT_NICENESS


async def test_an_agent_runs_nicer_than_the_gateway_in_a_session_of_its_own(tmp_path: Path):
    runner = LocalProcessRunner(tmp_path)
    # Once it has its prompt, the child reports its own nice value: what it and whatever it
    # starts run with (its prompt is written after the runner set it).
    argv = ["sh", "-c", "read prompt; nice; exec sleep 30"]
    process = await runner.start("demo", argv, {"PATH": "/usr/bin:/bin"}, stdin=b"go\n")
    try:
        reported = b""
        async for _channel, data in process.output():
            reported += data
            if b"\n" in reported:
                break
        expected = min(os.getpriority(os.PRIO_PROCESS, 0) + AGENT_NICENESS, 19)
        assert int(reported) == expected
        assert os.getsid(process.pid) == process.pid  # no terminal of the gateway's
        if os.geteuid() == 0:  # unprivileged, the kernel rate-limits setting it
            assert autogroup_nice(process.pid) in (None, expected)
    finally:
        await process.stop()
    assert await process.wait() != 0


def autogroup_nice(pid: int) -> int | None:
    """What /proc/<pid>/autogroup says ("/autogroup-123 nice 10"); None without autogroups."""
    path = Path(f"/proc/{pid}/autogroup")
    return int(path.read_text().split()[-1]) if path.exists() else None
