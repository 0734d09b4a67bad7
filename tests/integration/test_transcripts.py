"""Session transcripts kept and put back over a runner: real `sh` on the local runner (the
Kubernetes runner is the e2e test with the real CLI), sealed with the real key ring."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from adapters.aes_gcm import AesGcmKeyRing
from adapters.claude_code import TranscriptKeeper
from adapters.local_process import LocalProcessRunner
from adapters.memory import MemoryRunStore
from domain.model import Completed

SESSION = "0b5e2c1a-7d7f-4c1e-9b1a-3f6f1d2e4c5b"
LINES = b'{"type":"user","message":"hello $HOME `id` \\u00e9"}\n{"type":"assistant"}\n'


@pytest.fixture
def pod(tmp_path: Path):
    """A project's "pod": the local runner, the CLI's state in CLAUDE_CONFIG_DIR."""
    state = tmp_path / "state"
    runner = LocalProcessRunner(tmp_path / "workspaces")
    store = MemoryRunStore()
    env = {"PATH": "/usr/bin:/bin", "CLAUDE_CONFIG_DIR": str(state)}
    keeper = TranscriptKeeper(runner, store, AesGcmKeyRing.ephemeral(), 1024, env)
    transcript = state / "projects" / "-work-demo" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes(LINES)
    return keeper, store, transcript


async def test_a_transcript_is_kept_sealed_and_put_back_where_the_cli_reads_it(pod):
    keeper, store, transcript = pod
    await keeper.save("demo", SESSION, None)
    session = await store.get_session(SESSION)
    assert session is not None and session.project_id == "demo"
    assert session.transcript is not None
    assert session.transcript.path == f"-work-demo/{SESSION}.jsonl"
    assert session.transcript.key_id == "process" and b"hello" not in session.transcript.content
    transcript.parent.parent.parent.rename(transcript.parent.parent.parent.with_name("gone"))
    await keeper.restore("demo", SESSION, None)
    assert transcript.read_bytes() == LINES
    assert stat.S_IMODE(transcript.stat().st_mode) == 0o600
    assert [p.name for p in transcript.parent.iterdir()] == [transcript.name]  # no temp file


async def test_a_transcript_in_the_pod_is_newer_and_stays(pod):
    keeper, _, transcript = pod
    await keeper.save("demo", SESSION, None)
    transcript.write_bytes(LINES + b'{"type":"later"}\n')
    await keeper.restore("demo", SESSION, None)
    assert transcript.read_bytes().endswith(b'{"type":"later"}\n')


async def test_another_projects_session_is_not_put_back(pod):
    keeper, _, transcript = pod
    await keeper.save("demo", SESSION, None)
    transcript.unlink()
    await keeper.restore("other", SESSION, None)
    assert not transcript.exists()


async def test_a_transcript_over_the_bound_is_not_kept_nor_its_older_copy(pod, caplog):
    keeper, store, transcript = pod
    await keeper.save("demo", SESSION, None)
    transcript.write_bytes(b"x" * 1025)
    with caplog.at_level(logging.WARNING):
        await keeper.save("demo", SESSION, None)
    session = await store.get_session(SESSION)
    assert session is not None and session.transcript is None  # no resume with lost turns
    assert "over 1024 bytes" in caplog.text


async def test_a_session_of_another_project_is_not_overwritten(pod):
    keeper, store, _ = pod
    await keeper.save("demo", SESSION, None)
    await keeper.save("other", SESSION, None)  # a pod two projects share
    session = await store.get_session(SESSION)
    assert session is not None and session.project_id == "demo"


@pytest.mark.parametrize("session_id", ["*", "../x", "-rf", f"{SESSION} x"])
async def test_a_session_id_the_cli_does_not_make_runs_nothing(pod, session_id):
    keeper, store, transcript = pod
    (transcript.parent / f"{session_id.replace('/', '_')}.jsonl").write_bytes(LINES)
    await keeper.save("demo", session_id, None)
    assert await store.get_session(session_id) is None


class PodThatLies:
    """A runner whose pod prints a path outside the CLI's projects folder."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    async def run(self, project_id, argv, env, stdin=b"", placement=None, **limits):
        self.commands.append(list(argv))
        return Completed(0, f"../../etc/cron.d/{SESSION}.jsonl\n".encode() + LINES)


async def test_a_path_outside_the_projects_folder_is_neither_kept_nor_written():
    runner, store = PodThatLies(), MemoryRunStore()
    keeper = TranscriptKeeper(runner, store, None, 1024, {})  # type: ignore[arg-type]
    await keeper.save("demo", SESSION, None)
    assert await store.get_session(SESSION) is None
    await keeper.restore("demo", SESSION, None)
    assert len(runner.commands) == 1  # the save only: nothing to put back
