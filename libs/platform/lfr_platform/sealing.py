"""Authenticated encryption of biometric payloads with a per-deployment data key (crypto-shredding).

Kafka cannot delete a record on demand. Frames, face crops and vectors are therefore sealed with
their deployment's data key before they reach a topic; closing the deployment destroys the key, and
whatever is still on the topics becomes unreadable at once, whatever the topic retention.

Envelope: version byte 0x01, 12-byte random nonce, AES-256-GCM ciphertext with its 16-byte tag.
The deployment id is the associated data, so a payload cannot be replayed into another deployment.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12
OVERHEAD_BYTES = 1 + _NONCE_BYTES + 16


class SealError(ValueError):
    """The payload is not a sealed envelope, or not sealed with this key for this deployment."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def seal(key: bytes, plaintext: bytes, deployment_id: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, deployment_id.encode())


def unseal(key: bytes, sealed: bytes, deployment_id: str) -> bytes:
    if len(sealed) < OVERHEAD_BYTES or sealed[:1] != _VERSION:
        raise SealError("not a sealed payload")
    nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, deployment_id.encode())
    except InvalidTag as exc:
        raise SealError("payload was not sealed with this deployment's key") from exc


# --- authenticity of records that are not secret but must not be forged (MatchFound) -------------
SIGNATURE_BYTES = 32


def _signing_key(key: bytes, purpose: str) -> bytes:
    """A key of its own per purpose, derived from the data key (a key is not used for two algorithms)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"lfr {purpose}".encode()).derive(key)


def sign(key: bytes, data: bytes, purpose: str) -> bytes:
    """HMAC-SHA256 of `data` under the data key's `purpose` sub-key: only a holder of the deployment's
    data key can make it, and closing the deployment (destroying the key) ends every signature."""
    import hmac

    return hmac.new(_signing_key(key, purpose), data, "sha256").digest()


def verify(key: bytes, data: bytes, signature: bytes, purpose: str) -> bool:
    import hmac

    return len(signature) == SIGNATURE_BYTES and hmac.compare_digest(sign(key, data, purpose), signature)


def sign_message(key: bytes, message, purpose: str) -> None:
    """Set `message.signature`: the signature of the message's deterministic serialisation without it."""
    message.signature = b""
    message.signature = sign(key, message.SerializeToString(deterministic=True), purpose)


def verify_message(key: bytes, message, purpose: str) -> bool:
    unsigned = type(message)()
    unsigned.CopyFrom(message)
    unsigned.signature = b""
    return verify(key, unsigned.SerializeToString(deterministic=True), message.signature, purpose)


# --- data keys at rest: wrapped by a key-encryption key held outside Redis ----------------------
class KeyWrap:
    """Data keys are stored in Redis sealed under a key-encryption key (KEK) that Redis never holds
    (a file, a mounted Kubernetes Secret; a KMS can write that file): a copy of Redis alone opens
    nothing. The deployment id is bound in, so a wrapped key cannot be moved to another deployment."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEY_BYTES:
            raise ValueError(f"a key-encryption key is {KEY_BYTES} random bytes, not {len(kek)}")
        self._kek = kek

    @classmethod
    def from_file(cls, path) -> KeyWrap:
        from pathlib import Path

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the key-encryption key {path}: {exc.strerror}") from None
        if len(data) != KEY_BYTES:
            raise ValueError(
                f"{path} holds {len(data)} bytes: a key-encryption key is {KEY_BYTES} random bytes "
                f"(head -c {KEY_BYTES} /dev/urandom > {path.name})"
            )
        return cls(data)

    def wrap(self, data_key: bytes, deployment_id: str) -> bytes:
        return seal(self._kek, data_key, f"data-key:{deployment_id}")

    def unwrap(self, wrapped: bytes, deployment_id: str) -> bytes:
        return unseal(self._kek, wrapped, f"data-key:{deployment_id}")

    def derive(self, purpose: str) -> bytes:
        """32 bytes of a key of its own for `purpose` (HKDF-SHA256 of the KEK): the same for as long
        as the KEK is, without being stored anywhere (the audit root key: lfr_platform.audit_roots)."""
        return _signing_key(self._kek, f"kek {purpose}")
