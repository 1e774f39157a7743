"""Bearer tokens mapped to roles; a refused call is answered and audited.

Tokens come from configuration (an environment variable or a mounted Kubernetes secret), never
from code. Only their SHA-256 digests are held in memory, and no token is ever logged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import grpc

from lfr_match.deployments.audit import AuditLog
from lfr_match.settings import TokenGrant

MANAGER, VIEWER = "manager", "viewer"
READ = frozenset({MANAGER, VIEWER})
WRITE = frozenset({MANAGER})


@dataclass(frozen=True)
class Principal:
    identity: str
    role: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, grants: list[TokenGrant], audit: AuditLog) -> None:
        self._by_digest = {_digest(g.token): Principal(g.identity, g.role) for g in grants}
        self.audit = audit

    def identify(self, metadata) -> Principal | None:
        for key, value in metadata or ():
            if key.lower() == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return self._by_digest.get(_digest(value[len("Bearer ") :].strip()))
        return None

    async def require(
        self, context: grpc.aio.ServicerContext, roles: frozenset[str], action: str, deployment_id: str = ""
    ) -> Principal:
        principal = self.identify(context.invocation_metadata())
        if principal is None:
            await self.audit.record(
                "access.denied",
                deployment_id,
                "unauthenticated",
                "",
                action=action,
                outcome="UNAUTHENTICATED",
            )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        if principal.role not in roles:
            await self.audit.record(
                "access.denied",
                deployment_id,
                principal.identity,
                principal.role,
                action=action,
                outcome="PERMISSION_DENIED",
            )
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"role {principal.role!r} may not {action}")
        return principal
