"""Credential values sealed with AES-256-GCM (`cryptography`), under a key ring: the first
key seals, every key opens. A ciphertext is `key id | 0x00 | 12-byte nonce | ciphertext and
tag`; the context (project and name) is its associated data."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import CredentialUnreadable

KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
NONCE_BYTES = 12


class AesGcmKeyRing:
    """SecretCipher. Nonces are random: 2^32 seals per key keep the collision odds far
    below 2^-32 (NIST SP 800-38D); rotate to a new key long before that."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("the key ring needs at least one key")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise ValueError(f"key ids must differ: {', '.join(ids)}")
        for key_id, key in keys:
            if not KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r}: letters, digits, '_', '.', '-' (1-32)")
            if len(key) != 32:
                raise ValueError(f"key {key_id!r}: {len(key)} bytes, AES-256 needs 32")
        self._primary = keys[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        # Fingerprints are keyed by a key of their own, derived from the primary: computed
        # when a value is stored, so they compare values stored under the same primary.
        self._fingerprint_key = hmac.digest(keys[0][1], b"agent-gateway fingerprint", "sha256")

    @classmethod
    def from_setting(cls, text: str) -> AesGcmKeyRing:
        """`id:base64key,id:base64key`; ValueError says what is wrong (never a key)."""
        keys = []
        for index, entry in enumerate(e.strip() for e in text.split(",") if e.strip()):
            key_id, colon, encoded = entry.partition(":")
            if not colon:
                raise ValueError(f"entry {index + 1} is not id:base64key")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"key {key_id!r} is not valid base64") from None
            keys.append((key_id, key))
        return cls(keys)

    @classmethod
    def ephemeral(cls) -> AesGcmKeyRing:
        """A key of this process only: for the memory backend, whose credentials die with it."""
        return cls([("process", AESGCM.generate_key(bit_length=256))])

    @property
    def primary(self) -> str:
        return self._primary

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._primary].encrypt(nonce, plaintext, context)
        return self._primary.encode() + b"\0" + nonce + sealed

    def open(self, sealed: bytes, context: bytes) -> bytes:
        key_id = self.key_of(sealed)
        key = self._keys.get(key_id)
        if key is None:
            raise CredentialUnreadable(f"sealed with key {key_id!r}, which is not in the ring")
        body = sealed[len(key_id) + 1 :]
        if len(body) < NONCE_BYTES + 16:  # a nonce and a tag at least
            raise CredentialUnreadable("truncated")
        try:
            return key.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], context)
        except InvalidTag:
            raise CredentialUnreadable(
                "does not open: altered, or stored for another project or name"
            ) from None

    def key_of(self, sealed: bytes) -> str:
        key_id, zero, _ = sealed.partition(b"\0")
        if not zero:
            raise CredentialUnreadable("not a sealed credential")
        return key_id.decode(errors="replace")

    def fingerprint(self, plaintext: bytes, context: bytes) -> str:
        digest = hmac.new(self._fingerprint_key, context + b"\0" + plaintext, hashlib.sha256)
        return "hmac-sha256:" + digest.hexdigest()[:16]
