"""Signed-in users: a bearer token exchanged for a session, held in Redis.

The cookie holds a random session id; Redis holds only its SHA-256 (a copy of Redis gives no cookie),
the identity, role and deployments of the token, the officer's name given at sign-in, the CSRF
token, and the bearer token itself sealed with the console's session key (the console calls the
AlertService and the DeploymentService with it, so those services authorise and audit every call as
that user). A session ends at sign-out, after `idle_s` unused, after `ttl_s` in all, and as soon as
its bearer token is no longer granted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr_platform import sealing
from lfr_platform.auth import Principal
from lfr_platform.clock import Clock, system

_SEAL_CONTEXT = "console-session"


@dataclass(frozen=True)
class Session:
    session_id: str
    principal: Principal
    officer: str
    csrf: str
    token: str
    created_at: float


class SessionStore:
    def __init__(
        self, client: aioredis.Redis, prefix: str, key: bytes, ttl_s: int, idle_s: int, clock: Clock = system
    ) -> None:
        self.clock = clock
        self.client = client
        self.prefix = prefix
        self.key = key
        self.ttl_s = ttl_s
        self.idle_s = idle_s

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:console:session:{hashlib.sha256(session_id.encode()).hexdigest()}"

    async def create(self, principal: Principal, token: str, officer: str) -> Session:
        session = Session(
            session_id=secrets.token_urlsafe(32),
            principal=principal,
            officer=officer,
            csrf=secrets.token_urlsafe(32),
            token=token,
            created_at=self.clock(),
        )
        fields = {
            "identity": principal.identity,
            "role": principal.role,
            "deployments": json.dumps(list(principal.deployments)),
            "officer": officer,
            "csrf": session.csrf,
            "token": sealing.seal(self.key, token.encode(), _SEAL_CONTEXT),
            "created_at": repr(session.created_at),
        }
        key = self._key(session.session_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, min(self.idle_s, self.ttl_s))
            await pipe.execute()
        return session

    async def get(self, session_id: str) -> Session | None:
        """The session, its idle time restarted; None when it does not exist, ended or cannot be opened."""
        if not session_id or len(session_id) > 100:
            return None
        key = self._key(session_id)
        raw = await self.client.hgetall(key)
        if not raw:
            return None
        f = {k.decode(): v for k, v in raw.items()}
        created = float(f["created_at"].decode())
        left = created + self.ttl_s - self.clock()
        try:
            token = sealing.unseal(self.key, f["token"], _SEAL_CONTEXT).decode()
        except sealing.SealError:
            left = 0  # sealed by another key (the console restarted without a session key file)
        if left <= 0:
            await self.client.delete(key)
            return None
        await self.client.expire(key, int(min(self.idle_s, left)) or 1)
        return Session(
            session_id=session_id,
            principal=Principal(
                f["identity"].decode(), f["role"].decode(), tuple(json.loads(f["deployments"].decode()))
            ),
            officer=f["officer"].decode(),
            csrf=f["csrf"].decode(),
            token=token,
            created_at=created,
        )

    async def end(self, session_id: str) -> None:
        """End the session, and tell every console replica (each closes its streams of it at once)."""
        await self.client.delete(self._key(session_id))
        await self.client.publish(self._ended_channel(), session_id)

    def _ended_channel(self) -> str:
        return f"{self.prefix}:console:sessions-ended"

    async def alive(self, session: Session) -> bool:
        """The session has neither ended, nor outlived its shift, nor idled away (nothing is extended)."""
        if session.created_at + self.ttl_s <= self.clock():
            return False
        return bool(await self.client.exists(self._key(session.session_id)))

    async def follow_ends(self, on_end) -> None:
        """Call `on_end(session_id)` for every session ended on any replica, until cancelled."""
        pubsub = self.client.pubsub()
        await pubsub.subscribe(self._ended_channel())
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    data = message["data"]
                    on_end(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await pubsub.aclose()

    async def count(self) -> int:
        return len([k async for k in self.client.scan_iter(match=f"{self.prefix}:console:session:*", count=500)])
