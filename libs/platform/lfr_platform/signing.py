"""Alert revisions anyone can check: Ed25519, a key pair per deployment.

The deployments service makes the pair when it creates the deployment: the public key goes into the
deployment's record (kept after close, and in DeploymentService answers), the private key into Redis
wrapped by the key-encryption key, outside the deployment's keys, so that it lives on after the close
for the operational retention: officers may still decide an alert then, and each revision they cause
is signed too. It signs; it opens nothing. Only alert (which holds the key-encryption key) signs;
anyone with the public key verifies, without any secret: the console, `lfr alert list`, a control-room
system reading alerts.raised.v1.

The signed bytes: "lfr.v1.AlertRaised" + a zero byte + the message serialised deterministically (fields
in number order) with its `signature` field empty (docs/decisions/0015-signed-alert-revisions.md).
"""

from __future__ import annotations

from collections import OrderedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

CONTEXT = b"lfr.v1.AlertRaised\x00"  # each signed type's context is its full name and a zero byte


def new_alert_key() -> tuple[bytes, bytes]:
    """(private, public): the raw 32 bytes of each."""
    private = Ed25519PrivateKey.generate()
    return (
        private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )


def _signed_bytes(message) -> bytes:
    unsigned = type(message)()
    unsigned.CopyFrom(message)
    unsigned.signature = b""
    return message.DESCRIPTOR.full_name.encode() + b"\x00" + unsigned.SerializeToString(deterministic=True)


def sign_alert(private_key: bytes, message) -> None:
    """Set `message.signature` (an AlertRaised or an AlertAdjudicated, signed with its deployment's
    private alert key)."""
    message.signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(_signed_bytes(message))


def verify_alert(public_key: bytes, message) -> bool:
    """The revision was signed by its deployment's alert key (False for a forged or altered one)."""
    if not message.signature or len(public_key) != 32:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(message.signature, _signed_bytes(message))
        return True
    except InvalidSignature:
        return False


class Revisions:
    """What a reader of alert revisions shows: each genuine (signed by its deployment's alert key) and
    newer than the revision of that alert already shown. `check` says why one is refused."""

    FORGED = "forged"
    OUT_OF_ORDER = "out_of_order"

    def __init__(self, kept: int = 20_000) -> None:
        self.kept = kept  # alerts whose latest revision is remembered (the oldest forgotten first)
        self._latest: OrderedDict[str, int] = OrderedDict()

    def check(self, public_key: bytes | None, alert) -> str | None:
        """None when the revision is to be shown (and is now the latest), else the reason it is not."""
        if public_key is None or not verify_alert(public_key, alert):
            return self.FORGED
        if self._latest.get(alert.alert_id, 0) >= alert.revision:
            return self.OUT_OF_ORDER
        self._latest[alert.alert_id] = alert.revision
        self._latest.move_to_end(alert.alert_id)
        while len(self._latest) > self.kept:
            self._latest.popitem(last=False)
        return None
