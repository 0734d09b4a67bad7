"""Per-project credentials: stored sealed (the cipher's job), listed without their values,
opened only to start a run of their project, whose agent gets them as environment
variables and whose every outgoing string has them redacted (domain/redaction.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from domain.errors import CredentialsUnavailable, InvalidRequest
from domain.model import CREDENTIAL_NAME
from domain.redaction import MIN_VALUE_LENGTH

if TYPE_CHECKING:  # the ports name SealedCredential
    from ports.clock import Clock
    from ports.credential_store import CredentialStore
    from ports.secret_cipher import SecretCipher

# A PEM key is 2-4 KiB; the matcher of a value costs some 14 ms per KiB to build, once.
MAX_VALUE_BYTES = 16 * 1024
# Variables a credential may not set: the agent's process depends on them, and a value
# there would be anything but secret (or would change what runs). CLAUDE_CONFIG_DIR moves
# the CLI's session transcripts away from where the gateway saves them from (its helper
# execs see no credentials). The gateway's own variables (the process tag, the pod
# launcher's) start with AGENT_GATEWAY_.
RESERVED_ENV = frozenset(
    {"PATH", "HOME", "PWD", "SHELL", "USER", "IFS", "LD_PRELOAD", "LD_LIBRARY_PATH"}
    | {"IS_SANDBOX", "CLAUDE_CONFIG_DIR"}
)
RESERVED_PREFIX = "AGENT_GATEWAY_"
KEYS_SETTING = "AGENT_GATEWAY_CREDENTIAL_KEYS"


@dataclass(frozen=True, slots=True)
class SealedCredential:
    """A credential as stored: its value sealed, bound to its project and name."""

    project_id: str
    name: str
    env: str
    sealed: bytes
    fingerprint: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OpenedCredential:
    name: str
    env: str
    value: str


@dataclass(frozen=True, slots=True)
class RunCredentials:
    """What a run of the project gets (`given`: as environment variables) and what is
    redacted from it (those and the `withheld` ones, which the gateway uses itself)."""

    given: tuple[OpenedCredential, ...] = ()
    withheld: tuple[OpenedCredential, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        return {c.env: c.value for c in self.given}

    @property
    def names(self) -> tuple[str, ...]:
        """Of those given to the agent (the run record lists them)."""
        return tuple(c.name for c in self.given)

    @property
    def values(self) -> list[str]:
        """Every value to redact, given to the agent or not."""
        return [c.value for c in self.given + self.withheld]

    def without(self, names: set[str]) -> RunCredentials:
        """These credentials, but those named are kept from the agent (still redacted)."""
        everything = self.given + self.withheld
        return RunCredentials(
            tuple(c for c in everything if c.name not in names),
            tuple(c for c in everything if c.name in names),
        )


NO_CREDENTIALS = RunCredentials()


def context(project_id: str, name: str, env: str) -> bytes:
    """What a ciphertext is bound to: it does not open for another project, name or
    variable (whoever can write the store cannot move a value into LD_PRELOAD)."""
    return f"agent-gateway credential\0{project_id}\0{name}\0{env}".encode()


class Credentials:
    """The credentials use cases. `cipher` None: no key ring is configured, so nothing can
    be stored (a persistent backend needs AGENT_GATEWAY_CREDENTIAL_KEYS)."""

    def __init__(self, store: CredentialStore, cipher: SecretCipher | None, clock: Clock):
        self._store = store
        self._cipher = cipher
        self._clock = clock

    async def put(
        self, project_id: str, name: str, value: str, env: str | None
    ) -> SealedCredential:
        env = name if env is None else env
        for field, text in (("name", name), ("env", env)):
            if not CREDENTIAL_NAME.fullmatch(text):
                raise InvalidRequest(field, "must match [A-Za-z_][A-Za-z0-9_]{0,127}")
        if env in RESERVED_ENV or env.startswith(RESERVED_PREFIX):
            raise InvalidRequest("env", f"{env} is reserved for the agent's process")
        if "\0" in value:
            raise InvalidRequest("value", "must not contain NUL (no environment variable can)")
        if len(value) < MIN_VALUE_LENGTH:
            raise InvalidRequest(
                "value", f"at least {MIN_VALUE_LENGTH} characters (shorter ones cannot be redacted)"
            )
        plaintext = value.encode()
        if len(plaintext) > MAX_VALUE_BYTES:
            raise InvalidRequest("value", f"at most {MAX_VALUE_BYTES} bytes")
        cipher = self._require_cipher()
        bound = context(project_id, name, env)
        now = self._clock.now()
        existing = {c.name: c for c in await self._store.list_for_project(project_id)}.get(name)
        credential = SealedCredential(
            project_id=project_id,
            name=name,
            env=env,
            sealed=cipher.seal(plaintext, bound),
            fingerprint=cipher.fingerprint(plaintext, bound),
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        await self._store.put(credential)
        return credential

    async def list_for_project(self, project_id: str) -> list[SealedCredential]:
        return await self._store.list_for_project(project_id)

    async def delete(self, project_id: str, name: str) -> bool:
        return await self._store.delete(project_id, name)

    async def require(self, project_id: str, names: tuple[str, ...]) -> None:
        """InvalidRequest (422) naming those of `names` the project does not have."""
        if names:
            self._check_present(names, await self._store.list_for_project(project_id))

    async def for_run(self, project_id: str, required: tuple[str, ...] = ()) -> RunCredentials:
        """Every credential of the project, opened; InvalidRequest if one of `required` is
        missing, CredentialUnreadable if one does not open (a key missing from the ring, a
        ciphertext moved or altered)."""
        stored = await self._store.list_for_project(project_id)
        self._check_present(required, stored)
        if not stored:
            return NO_CREDENTIALS
        cipher = self._require_cipher()
        opened = tuple(
            OpenedCredential(
                c.name, c.env, cipher.open(c.sealed, context(project_id, c.name, c.env)).decode()
            )
            for c in stored
        )
        return RunCredentials(opened)

    async def value_of(self, project_id: str, name: str) -> str | None:
        """One credential's value, opened (a webhook's signing secret); None if missing."""
        for credential in await self._store.list_for_project(project_id):
            if credential.name == name:
                bound = context(project_id, name, credential.env)
                return self._require_cipher().open(credential.sealed, bound).decode()
        return None

    async def rotate(self) -> int:
        """Re-seals every credential not sealed with the primary key; returns how many."""
        cipher = self._require_cipher()
        rotated = 0
        for credential in await self._store.list_all():
            if cipher.key_of(credential.sealed) == cipher.primary:
                continue
            bound = context(credential.project_id, credential.name, credential.env)
            plaintext = cipher.open(credential.sealed, bound)
            await self._store.put(replace(credential, sealed=cipher.seal(plaintext, bound)))
            rotated += 1
        return rotated

    @staticmethod
    def _check_present(names: tuple[str, ...], stored: list[SealedCredential]) -> None:
        missing = sorted(set(names) - {c.name for c in stored})
        if missing:
            raise InvalidRequest("credentials", f"the project has no {', '.join(missing)}")

    def _require_cipher(self) -> SecretCipher:
        if self._cipher is None:
            raise CredentialsUnavailable(
                f"no key ring: set {KEYS_SETTING} (id:base64key,...) to store credentials"
            )
        return self._cipher
