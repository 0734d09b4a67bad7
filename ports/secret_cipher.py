from __future__ import annotations

from typing import Protocol


class SecretCipher(Protocol):
    """Authenticated encryption of credential values under a key ring.

    Guarantees of every implementation: `seal` encrypts with the primary key and binds
    `context` (the project and the credential's name) into the ciphertext, which names the
    key's id (`key_of`). `open` returns the plaintext, or raises CredentialUnreadable when
    the key is not in the ring, or the ciphertext or its context do not match (a ciphertext
    moved to another project or name does not open). `fingerprint` is a keyed digest that
    says whether two values are equal and nothing else about them."""

    @property
    def primary(self) -> str: ...

    def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    def open(self, sealed: bytes, context: bytes) -> bytes: ...

    def key_of(self, sealed: bytes) -> str: ...

    def fingerprint(self, plaintext: bytes, context: bytes) -> str: ...
