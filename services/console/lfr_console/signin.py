"""Sign-in attempts: limited per peer and each one audited.

A bearer token is a secret of at least 16 characters, but nothing stopped a client from trying 600
of them in 0.2 s. Failed sign-ins are limited per peer address: after FAILURES_PER_MINUTE in a
moving minute, every sign-in from that peer is answered 429 (with Retry-After) until the oldest
failure is a minute old, before any token is looked up. A failure is audited as `access.denied`
(UNAUTHENTICATED, as the gRPC services audit a call without a valid token), a sign-in as
`console.signed_in`, and a peer refused for its rate at most once a minute as
`console.sign_in_throttled`: the audit trail, kept forever, grows by a few events a minute per peer
whatever a flood sends. No token, nor any part of one, is logged or audited.

The console holds no key-encryption key, hence not the audit key that signs every entry: its events
are kept in the installation's outbox (Redis), and the deployments service and alert, which drain it,
chain, sign and send them (within about a second while either runs).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from lfr_contracts import AUDIT_RECORDED
from lfr_platform import metrics
from lfr_platform.audit import audit_event
from lfr_platform.auth import Principal
from lfr_platform.logs import printable
from lfr_platform.outbox import Outbox, OutboxRecord

log = logging.getLogger(__name__)

ACTION = "sign in to the console"
# What a person mistyping a token needs, far from what guessing one needs.
FAILURES_PER_MINUTE = 5


class KeptAudit:
    """The audit port (`record`, as lfr_platform.audit.AuditLog) of a process without the audit key:
    each event kept in the outbox for a service that has it to chain, sign and send."""

    def __init__(self, outbox: Outbox, topic_prefix: str) -> None:
        self.outbox = outbox
        self.topic = AUDIT_RECORDED.name(topic_prefix)

    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> None:
        message = audit_event(event, deployment_id, actor, role, **details)
        await self.outbox.keep(OutboxRecord(self.topic, message.deployment_id.encode(), AUDIT_RECORDED.encode(message)))


class SignIns:
    def __init__(
        self, audit: KeptAudit, *, forwarded_for: bool = False, failures_per_minute: int = FAILURES_PER_MINUTE
    ) -> None:
        self.audit = audit
        # Behind a proxy (an Ingress) every request comes from the proxy's address: its client is the
        # last X-Forwarded-For entry, the one the proxy itself appended (earlier ones the client wrote).
        self.forwarded_for = forwarded_for
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._failures = RateLimitItemPerMinute(failures_per_minute)
        self._throttle_audits = RateLimitItemPerMinute(1)

    def peer(self, request: web.Request) -> str:
        if self.forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
            if forwarded:
                return printable(forwarded, 64)
        return request.remote or "unknown"

    async def refusal(self, peer: str) -> web.Response | None:
        """A 429 for a peer over its failures (counted, audited once a minute); None if it may try."""
        if self._limiter.test(self._failures, "failures", peer):
            return None
        metrics.SIGN_INS.labels("throttled").inc()
        if self._limiter.hit(self._throttle_audits, "throttled", peer):
            log.warning("sign-ins from %s refused: over %d failures a minute", peer, self._failures.amount)
            await self.audit.record(
                "console.sign_in_throttled",
                "",
                "unauthenticated",
                "",
                action=ACTION,
                peer=peer,
                failures_per_minute=self._failures.amount,
            )
        reset_at = self._limiter.get_window_stats(self._failures, "failures", peer).reset_time
        message = (
            f"too many failed sign-ins from this address (at most {self._failures.amount} a minute): "
            "try again in a minute"
        )
        response = web.json_response({"error": message}, status=429)
        response.headers["Retry-After"] = str(max(1, int(reset_at - time.time()) + 1))
        return response

    async def failed(self, peer: str, why: str) -> None:
        self._limiter.hit(self._failures, "failures", peer)
        metrics.SIGN_INS.labels("refused").inc()
        await self.audit.record(
            "access.denied", "", "unauthenticated", "", action=ACTION, outcome="UNAUTHENTICATED", peer=peer, why=why
        )

    async def succeeded(self, peer: str, principal: Principal, officer: str) -> None:
        metrics.SIGN_INS.labels("signed_in").inc()
        log.info("signed in", extra={"identity": principal.identity, "role": principal.role})
        await self.audit.record(
            "console.signed_in",
            "",
            principal.identity,
            principal.role,
            officer=officer,
            peer=peer,
            deployments=list(principal.deployments),
        )
