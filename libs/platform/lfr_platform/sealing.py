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
