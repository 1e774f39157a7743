"""Bearer tokens mapped to an identity, a role and the deployments it may see; refusals answered and
audited. Shared by every service that serves an API (DeploymentService, AlertService, console).

Tokens come from configuration (`LFR_AUTH_TOKENS`, or a mounted Kubernetes secret named by
`LFR_AUTH_TOKENS_FILE`), never from code. Only their SHA-256 digests are held in memory and no
token is ever logged. The file is read again when it changes, so tokens rotate without a restart.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field, ValidationError

from lfr_platform import metrics
from lfr_platform.logs import ID_LIMIT, printable

log = logging.getLogger(__name__)

MANAGER, SUPERVISOR, OFFICER, VIEWER = "manager", "supervisor", "officer", "viewer"
ROLES = (MANAGER, SUPERVISOR, OFFICER, VIEWER)

# What each kind of call needs. A manager runs deployments; officers decide alerts in the control
# room; a supervisor decides, may correct a decision (audited) and alone adjudicates an alert held for
# a supervisor (a lookalike scored within the policy's min_margin); a viewer only reads.
READ_DEPLOYMENTS = frozenset(ROLES)
WRITE_DEPLOYMENTS = frozenset({MANAGER})
READ_ALERTS = frozenset(ROLES)
DECIDE_ALERTS = frozenset({OFFICER, SUPERVISOR})
CORRECT_DECISIONS = frozenset({SUPERVISOR})
DECIDE_HELD_ALERTS = frozenset({SUPERVISOR})


class TokenGrant(BaseModel):
    """One bearer token and what it may do."""

    token: str = Field(min_length=16, description="The secret; at least 16 characters")
    identity: str = Field(min_length=1, max_length=200, description="Who holds it: written into the audit trail")
    role: str = Field(
        pattern=f"^({'|'.join(ROLES)})$",
        description="manager: deployments; officer: decide alerts; supervisor: also correct decisions; viewer: read",
    )
    deployments: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Deployment ids (or glob patterns) the token may see; default all",
    )


@dataclass(frozen=True)
class Principal:
    identity: str
    role: str
    deployments: tuple[str, ...] = ("*",)

    def may_see(self, deployment_id: str) -> bool:
        return any(fnmatch.fnmatchcase(deployment_id, pattern) for pattern in self.deployments)

    @property
    def scoped(self) -> bool:
        """The token is limited to some deployments (not `*`): it may not act beyond them, nor make new ones."""
        return "*" not in self.deployments


def parse_grants(data: str | bytes | list) -> list[TokenGrant]:
    """A JSON list of grants; raises ValueError naming what is wrong (never the token)."""
    items = json.loads(data) if isinstance(data, str | bytes) else data
    if not isinstance(items, list):
        raise ValueError("token grants must be a JSON list of {token, identity, role[, deployments]}")
    grants = []
    for i, item in enumerate(items):
        try:
            grants.append(TokenGrant.model_validate(item))
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "item" for e in exc.errors())
            raise ValueError(f"token grant {i} is invalid ({fields})") from None
    return grants


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """Token digests -> principals, from the inline grants and the grants file (re-read on change)."""

    def __init__(self, grants: Iterable[TokenGrant] = (), file: Path | None = None, recheck_s: float = 1.0) -> None:
        self._inline = {_digest(g.token): Principal(g.identity, g.role, tuple(g.deployments)) for g in grants}
        self._file = file
        self._recheck_s = recheck_s
        self._file_mtime: float | None = None
        self._checked_at = 0.0
        self._from_file: dict[str, Principal] = {}
        if file is not None:
            self._load_file(strict=True)

    def _load_file(self, strict: bool) -> None:
        assert self._file is not None
        try:
            mtime = self._file.stat().st_mtime
            if mtime == self._file_mtime:
                return
            grants = parse_grants(self._file.read_text())
        except (OSError, ValueError) as exc:
            if strict:
                raise ValueError(f"cannot read the token file {self._file}: {exc}") from None
            # A half-written or broken file during a rotation: keep the tokens we have.
            log.error("token file %s not reloaded, keeping the previous tokens: %s", self._file, exc)
            return
        self._from_file = {_digest(g.token): Principal(g.identity, g.role, tuple(g.deployments)) for g in grants}
        if self._file_mtime is not None:
            log.info("token file reloaded: %d grant(s)", len(grants))
        self._file_mtime = mtime

    def lookup(self, token: str) -> Principal | None:
        if self._file is not None and time.monotonic() - self._checked_at >= self._recheck_s:
            self._checked_at = time.monotonic()
            self._load_file(strict=False)
        digest = _digest(token)
        return self._inline.get(digest) or self._from_file.get(digest)

    def __len__(self) -> int:
        return len(self._inline) + len(self._from_file)


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value."""
    if isinstance(value, str) and value.startswith("Bearer "):
        return value[len("Bearer ") :].strip() or None
    return None


class Authenticator:
    """The gRPC side: who is calling, may they do this, to this deployment. Refusals are audited.

    A caller without a valid token is audited at most UNAUTHENTICATED_AUDITS_PER_MINUTE times a minute
    per peer address; beyond, the refusal is answered the same, counted
    (`lfr_audit_refusals_dropped_total`) and not written, so that an anonymous caller cannot fill the
    audit trail, which is kept forever."""

    UNAUTHENTICATED_AUDITS_PER_MINUTE = 20

    def __init__(self, book: TokenBook, audit) -> None:
        self.book = book
        self.audit = audit
        self._anonymous = MovingWindowRateLimiter(MemoryStorage())
        self._per_minute = RateLimitItemPerMinute(self.UNAUTHENTICATED_AUDITS_PER_MINUTE)

    def identify(self, metadata) -> Principal | None:
        for key, value in metadata or ():
            if key.lower() == "authorization":
                token = bearer(value)
                return self.book.lookup(token) if token else None
        return None

    async def require(self, context, roles: frozenset[str], action: str, deployment_id: str = "") -> Principal:
        principal = self.identify(context.invocation_metadata())
        if principal is None:
            if self._anonymous.hit(self._per_minute, _peer_host(context.peer())):
                await self.audit.record(
                    "access.denied", deployment_id, "unauthenticated", "", action=action, outcome="UNAUTHENTICATED"
                )
            else:
                metrics.AUDIT_REFUSALS_DROPPED.inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        if principal.role not in roles:
            await self.deny(context, principal, action, deployment_id, f"role {principal.role!r} may not {action}")
        if deployment_id:
            await self.require_deployment(context, principal, action, deployment_id)
        return principal

    async def require_deployment(self, context, principal: Principal, action: str, deployment_id: str) -> None:
        if not principal.may_see(deployment_id):
            await self.deny(
                context,
                principal,
                action,
                deployment_id,
                f"{principal.identity} may not {action} of {printable(deployment_id, ID_LIMIT)}",
            )

    async def require_every_deployment(self, context, principal: Principal, action: str) -> None:
        """An act that reaches beyond any one deployment (creating one): a token scoped to some
        deployments is refused, audited, as any other refusal."""
        if principal.scoped:
            await self.deny(
                context,
                principal,
                action,
                "",
                f"{principal.identity}'s token is scoped to {len(principal.deployments)} deployment pattern(s): "
                f"only a token for every deployment (`*`) may {action}",
            )

    async def deny(self, context, principal: Principal, action: str, deployment_id: str, message: str) -> None:
        await self.audit_denied(principal, action, deployment_id)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    async def audit_denied(self, principal: Principal, action: str, deployment_id: str) -> None:
        await self.audit.record(
            "access.denied",
            deployment_id,
            principal.identity,
            principal.role,
            action=action,
            outcome="PERMISSION_DENIED",
        )


def _peer_host(peer: str | None) -> str:
    """The caller's address without its port ("ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7")."""
    peer = peer or "unknown"
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer
