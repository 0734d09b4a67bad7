"""Session transcripts of the claude CLI, kept in the gateway's store so that `--resume`
works in a pod that lost them (recycled, rescheduled): saved over the runner after each
run, put back before a resume where the pod lacks them. Over exec, never a shared volume.

The CLI keeps a session as `<state>/projects/<slug>/<session>.jsonl`, `<state>` being
$CLAUDE_CONFIG_DIR or ~/.claude and `<slug>` its working directory's path with every
character but letters and digits made `-`. The scripts take their values as positional
arguments (never put into the script's text) and find `<state>` as the CLI does."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from domain.errors import AgentStartFailed
from domain.model import Completed, Session, Transcript
from domain.templates import KubePlacement
from ports.process_runner import ProcessRunner
from ports.run_store import RunStore
from ports.secret_cipher import SecretCipher

log = logging.getLogger(__name__)

# argv: sh -c SAVE sh <session id> <max bytes>. Prints the path under projects/, a newline
# and the content; exit 3 when there is no transcript, 4 when it is over the bound (which
# drops the kept copy: so a size that cannot be read is exit 1, not 4).
SAVE_SCRIPT = r"""
dir=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
for f in "$dir"/*/"$1".jsonl; do
  [ -f "$f" ] || exit 3
  size=$(wc -c < "$f") || exit 1
  [ "$size" -le "$2" ] || exit 4
  printf '%s\n' "${f#"$dir"/}"
  exec cat -- "$f"
done
exit 3
"""
# argv: sh -c RESTORE sh <path under projects/>; the content on stdin. A transcript that
# is there is the newer one: it stays. Written aside (a name of its own per restore), then
# renamed: never half a file.
RESTORE_SCRIPT = r"""
f=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$1
[ -e "$f" ] && exit 0
umask 077
mkdir -p -- "${f%/*}" || exit 1
cat > "$f.agent-gateway.$$" && mv -f -- "$f.agent-gateway.$$" "$f" && exit 0
rm -f -- "$f.agent-gateway.$$"
exit 1
"""
NO_TRANSCRIPT, TOO_LARGE = 3, 4
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
SLUG = re.compile(r"[A-Za-z0-9._-]{1,1024}")
HELPER_TIMEOUT_S = 30.0


def context(project_id: str, session_id: str) -> bytes:
    """What a sealed transcript is bound to: it opens for its project and session only."""
    return f"agent-gateway transcript\0{project_id}\0{session_id}".encode()


class TranscriptKeeper:
    """Saves and restores the CLI's session transcripts, at most `max_bytes` each, sealed
    with `cipher` when there is one; `env` is the CLI's (a pod has its own instead). A
    failure is logged, never fails a run: the run has happened (a save) or the CLI says
    itself that it found no session (a restore)."""

    def __init__(
        self,
        runner: ProcessRunner,
        store: RunStore,
        cipher: SecretCipher | None,
        max_bytes: int,
        env: Mapping[str, str],
    ) -> None:
        self._runner = runner
        self._env = dict(env)
        self._store = store
        self._cipher = cipher
        self._max_bytes = max_bytes

    async def save(self, project_id: str, session_id: str, placement: KubePlacement | None) -> None:
        if not SESSION_ID.fullmatch(session_id):
            log.warning("session id %r is not one the CLI makes: transcript not kept", session_id)
            return
        argv = ["sh", "-c", SAVE_SCRIPT, "sh", session_id, str(self._max_bytes)]
        try:
            done = await self._runner.run(
                project_id,
                argv,
                self._env,
                placement=placement,
                timeout_s=HELPER_TIMEOUT_S,
                max_output=self._max_bytes + 4096,  # the path line too
            )
        except AgentStartFailed as exc:
            log.warning("session %s: cannot read its transcript: %s", session_id, exc)
            return
        try:
            kept = await self._store.get_session(session_id)
            if kept is not None and kept.project_id != project_id:
                log.warning("session %s is another project's: transcript not kept", session_id)
                return
            transcript = self._transcript(project_id, session_id, done)
            if transcript is None and done.exit_code != TOO_LARGE:
                return  # the CLI wrote none (a failed resume): what was kept stays
            # One too large goes, older copy too: a resume must not quietly lose turns.
            await self._store.save_session(Session(session_id, project_id, transcript=transcript))
        except Exception:  # the store is down: the run has happened all the same
            log.exception("session %s: cannot keep its transcript", session_id)

    def _transcript(self, project_id: str, session_id: str, done: Completed) -> Transcript | None:
        """What the save script printed, sealed; None (logged) if there is nothing to keep."""
        if done.exit_code != 0:
            why = {NO_TRANSCRIPT: "the CLI wrote none", TOO_LARGE: f"over {self._max_bytes} bytes"}
            reason = why.get(done.exit_code, f"exit code {done.exit_code}")
            log.warning("session %s: transcript not kept: %s", session_id, reason)
            return None
        path, _, content = done.stdout.partition(b"\n")
        relative = path.decode(errors="replace")
        if not self._valid_path(relative, session_id):
            log.warning("session %s: transcript at an unexpected path %r", session_id, relative)
            return None
        if self._cipher is None:
            return Transcript(relative, content)
        sealed = self._cipher.seal(content, context(project_id, session_id))
        return Transcript(relative, sealed, self._cipher.key_of(sealed))

    async def restore(
        self, project_id: str, session_id: str, placement: KubePlacement | None
    ) -> None:
        try:
            session = await self._store.get_session(session_id)
        except Exception:  # the store is down: the CLI looks for the session itself
            log.exception("session %s: cannot read its transcript from the store", session_id)
            return
        if session is None or session.transcript is None or session.project_id != project_id:
            return  # not one the gateway kept for this project: the CLI looks for itself
        transcript = session.transcript
        content = transcript.content
        if transcript.key_id is not None:
            if self._cipher is None:
                log.warning("session %s: its transcript is sealed and no key is set", session_id)
                return
            try:
                content = self._cipher.open(content, context(project_id, session_id))
            except Exception as exc:  # a key taken out of the ring, or a moved record
                log.warning("session %s: cannot open its transcript: %s", session_id, exc)
                return
        if not self._valid_path(transcript.path, session_id):
            return
        argv = ["sh", "-c", RESTORE_SCRIPT, "sh", transcript.path]
        try:
            done = await self._runner.run(
                project_id, argv, self._env, content, placement, HELPER_TIMEOUT_S, 4096
            )
        except AgentStartFailed as exc:
            log.warning("session %s: cannot put its transcript back: %s", session_id, exc)
            return
        if done.exit_code != 0:
            log.warning(
                "session %s: putting its transcript back failed: exit code %d",
                session_id,
                done.exit_code,
            )

    @staticmethod
    def _valid_path(relative: str, session_id: str) -> bool:
        """`<slug>/<session>.jsonl` and nothing else: no `..`, no other folder."""
        slug, _, name = relative.partition("/")
        return (
            bool(SLUG.fullmatch(slug))
            and slug not in (".", "..")
            and (name == f"{session_id}.jsonl")
        )
