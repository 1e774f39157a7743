"""The console's sessions and CSRF check without Redis or a browser: the session store over an
in-memory fake of the few Redis calls it makes (with expiry on the same moved clock), and the page's
handlers called with requests built in memory. What is checked: what Redis holds of a session, its
idle and absolute expiry, and that every state change needs the session's own CSRF token and a
same-origin request while reads need only a live session."""

from __future__ import annotations

import hashlib
import json

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from lfr_console.sessions import SessionStore
from lfr_console.signin import SignIns
from lfr_console.web import COOKIE, Console, Refused
from lfr_platform import sealing
from lfr_platform.auth import Principal, TokenBook, TokenGrant

PREFIX = "t"
IDLE_S, TTL_S = 30 * 60, 8 * 3600
OFFICER_TOKEN = "officer-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
HOST = "console.example:8443"
ORIGIN = f"http://{HOST}"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Redis:
    """The calls SessionStore makes, over dicts: hashes with an expiry on `clock`, and what was published."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.expires_at: dict[str, float] = {}
        self.published: list[tuple[str, str]] = []
        self.calls = 0

    def _live(self, key: str) -> dict[bytes, bytes] | None:
        self.calls += 1
        if key in self.expires_at and self.expires_at[key] <= self.clock():
            del self.hashes[key], self.expires_at[key]
        return self.hashes.get(key)

    def ttl(self, key: str) -> float:
        return self.expires_at[key] - self.clock()

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self._live(key) or {})

    async def expire(self, key: str, seconds: int) -> None:
        if self._live(key) is not None:
            self.expires_at[key] = self.clock() + seconds

    async def exists(self, key: str) -> int:
        return int(self._live(key) is not None)

    async def delete(self, key: str) -> None:
        self.calls += 1
        self.hashes.pop(key, None)
        self.expires_at.pop(key, None)

    async def publish(self, channel: str, message: str) -> None:
        self.published.append((channel, message))

    def pipeline(self, transaction: bool = True) -> Redis._Pipeline:
        return Redis._Pipeline(self)

    class _Pipeline:
        def __init__(self, redis: Redis) -> None:
            self.redis = redis
            self.ops: list = []

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc) -> None:
            return None

        def hset(self, key: str, mapping: dict) -> None:
            self.ops.append(("hset", key, mapping))

        def expire(self, key: str, seconds: int) -> None:
            self.ops.append(("expire", key, seconds))

        async def execute(self) -> None:
            for op, key, arg in self.ops:
                if op == "hset":
                    encoded = {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in arg.items()}
                    self.redis.hashes.setdefault(key, {}).update(encoded)
                else:
                    await self.redis.expire(key, arg)


class Audit:
    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> None:
        pass


class Feed:
    """What the handlers tell the feed: the sessions whose streams must end."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def end_session(self, session_id: str) -> None:
        self.ended.append(session_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis(clock) -> Redis:
    return Redis(clock)


@pytest.fixture
def store(redis, clock) -> SessionStore:
    return SessionStore(redis, PREFIX, sealing.new_data_key(), TTL_S, IDLE_S, clock)


@pytest.fixture
def console(store) -> Console:
    grants = [
        TokenGrant(token=OFFICER_TOKEN, identity="control-room", role="officer"),
        TokenGrant(token=VIEWER_TOKEN, identity="auditor", role="viewer"),
    ]
    return Console(
        sessions=store,
        book=TokenBook(grants),
        signins=SignIns(Audit()),
        feed=Feed(),
        connect=lambda: None,  # no backends: a handler that reached the AlertService would fail
        secure_cookies=True,
        max_body_bytes=16 * 1024,
    )


def _key(session_id: str) -> str:
    return f"{PREFIX}:console:session:{hashlib.sha256(session_id.encode()).hexdigest()}"


def _request(
    method: str, path: str, session_id: str = "", csrf: str | None = None, origin: str | None = ORIGIN, body=None
):
    """A request as the page sends it: its cookie, its CSRF header and Origin when given, a JSON body."""
    headers = {"Host": HOST}
    if session_id:
        headers["Cookie"] = f"{COOKIE}={session_id}"
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    if origin is not None:
        headers["Origin"] = origin
    if body is None:
        return make_mocked_request(method, path, headers=headers)
    data = json.dumps(body).encode()
    headers |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
    payload = StreamReader(BaseProtocol(None), 2**16)  # type: ignore[arg-type]
    payload.feed_data(data)
    payload.feed_eof()
    return make_mocked_request(method, path, headers=headers, payload=payload)


async def _refused(call) -> Refused:
    with pytest.raises(Refused) as refused:
        await call
    return refused.value


# --- the session store ------------------------------------------------------------------------


async def test_redis_holds_neither_the_cookie_nor_the_token_and_a_new_session_lasts_its_idle_time(store, redis):
    session = await store.create(Principal("control-room", "officer"), OFFICER_TOKEN, "PC 1")
    assert list(redis.hashes) == [_key(session.session_id)]  # the cookie's digest, not the cookie
    held = b" ".join(redis.hashes[_key(session.session_id)].values())
    assert session.session_id.encode() not in held and OFFICER_TOKEN.encode() not in held
    assert session.csrf.encode() in held and session.csrf != session.session_id and len(session.csrf) >= 32
    assert redis.ttl(_key(session.session_id)) == IDLE_S
    again = await store.get(session.session_id)
    assert again == session  # identity, role, officer, CSRF token and the unsealed bearer token


async def test_each_use_restarts_the_idle_time_and_the_shift_ends_the_session_however_busy(store, redis, clock):
    session = await store.create(Principal("control-room", "officer"), OFFICER_TOKEN, "PC 1")
    started = clock.now
    while clock.now + IDLE_S - 60 < started + TTL_S:  # used every 29 minutes all shift long
        clock.now += IDLE_S - 60
        assert await store.get(session.session_id) is not None
        assert redis.ttl(_key(session.session_id)) == min(IDLE_S, started + TTL_S - clock.now)
    clock.now = started + TTL_S - 600
    assert await store.get(session.session_id) is not None
    assert redis.ttl(_key(session.session_id)) == 600  # never kept past the shift's end
    assert await store.alive(session)
    clock.now = started + TTL_S
    assert not await store.alive(session)  # an open event stream ends at the shift's end
    assert await store.get(session.session_id) is None


async def test_a_session_unused_for_its_idle_time_is_gone(store, clock):
    session = await store.create(Principal("control-room", "officer"), OFFICER_TOKEN, "PC 1")
    clock.now += IDLE_S - 1
    assert await store.get(session.session_id) is not None
    clock.now += IDLE_S
    assert await store.get(session.session_id) is None
    assert not await store.alive(session)


async def test_a_session_sealed_with_another_key_ends_and_is_deleted(store, redis, clock):
    session = await store.create(Principal("control-room", "officer"), OFFICER_TOKEN, "PC 1")
    restarted = SessionStore(redis, PREFIX, sealing.new_data_key(), TTL_S, IDLE_S, clock)  # no key file
    assert await restarted.get(session.session_id) is None
    assert redis.hashes == {}


async def test_an_empty_or_oversized_cookie_never_reaches_redis(store, redis):
    assert await store.get("") is None and await store.get("x" * 101) is None
    assert redis.calls == 0


async def test_ending_a_session_deletes_it_and_tells_every_replica(store, redis):
    session = await store.create(Principal("control-room", "officer"), OFFICER_TOKEN, "PC 1")
    await store.end(session.session_id)
    assert await store.get(session.session_id) is None
    assert redis.published == [(f"{PREFIX}:console:sessions-ended", session.session_id)]


# --- the page: sign-in cookie and CSRF --------------------------------------------------------


async def test_sign_in_sets_a_strict_cookie_and_answers_the_sessions_csrf_token(console, store):
    response = await console.sign_in(_request("POST", "/api/session", body={"token": OFFICER_TOKEN, "officer": "PC 1"}))
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    session = await store.get(cookie.value)
    view = json.loads(response.text)
    assert session is not None and view["csrf"] == session.csrf and view["officer"] == "PC 1"
    assert (view["identity"], view["may_decide"], view["may_decide_held"]) == ("control-room", True, False)


@pytest.mark.parametrize(
    ("body", "origin", "status"),
    [
        ({"token": "not-a-granted-token-at-all", "officer": "PC 1"}, ORIGIN, 401),
        ({"token": OFFICER_TOKEN, "officer": ""}, ORIGIN, 400),
        ({"token": OFFICER_TOKEN, "officer": "PC 1"}, "https://elsewhere.example", 403),
    ],
    ids=["unknown_token", "no_officer", "cross_origin"],
)
async def test_a_refused_sign_in_makes_no_session(console, redis, body, origin, status):
    refused = await _refused(console.sign_in(_request("POST", "/api/session", origin=origin, body=body)))
    assert refused.status == status and redis.hashes == {}


async def _signed_in(store, token: str = OFFICER_TOKEN, role: str = "officer"):
    return await store.create(Principal("someone", role), token, "PC 1")


@pytest.mark.parametrize(
    "csrf",
    [None, "", "not-the-token", "other-session"],
    ids=["missing", "empty", "wrong", "another_sessions"],
)
async def test_a_state_change_without_the_sessions_own_csrf_token_is_refused(console, store, csrf):
    session = await _signed_in(store)
    other = await _signed_in(store)
    sent = other.csrf if csrf == "other-session" else csrf
    for call in (
        lambda: console.sign_out(_request("DELETE", "/api/session", session.session_id, sent)),
        lambda: console.decide(_request("POST", "/api/alerts/a-1/adjudication", session.session_id, sent, body={})),
    ):
        refused = await _refused(call())
        assert refused.status == 403 and "CSRF" in refused.message
    assert await store.get(session.session_id) is not None  # not signed out
    assert console.feed.ended == []


async def test_a_cross_origin_state_change_is_refused_even_with_the_token(console, store):
    session = await _signed_in(store)
    request = _request("DELETE", "/api/session", session.session_id, session.csrf, origin="https://evil.example")
    assert (await _refused(console.sign_out(request))).status == 403
    assert await store.get(session.session_id) is not None


async def test_sign_out_with_the_token_ends_the_session_its_streams_and_its_cookie(console, store):
    session = await _signed_in(store)
    response = await console.sign_out(_request("DELETE", "/api/session", session.session_id, session.csrf))
    assert response.status == 200 and json.loads(response.text) == {"signed_out": True}
    assert response.cookies[COOKIE].value == "" and response.cookies[COOKIE]["max-age"] == "0"
    assert await store.get(session.session_id) is None
    assert console.feed.ended == [session.session_id]  # this replica's event streams of it close at once
    # A request without an Origin header (not every client sends one) passes on the CSRF token alone.
    other = await _signed_in(store)
    assert (
        await console.sign_out(_request("DELETE", "/api/session", other.session_id, other.csrf, origin=None))
    ).status == 200


async def test_a_role_that_may_only_read_cannot_decide_even_with_the_token(console, store):
    session = await _signed_in(store, VIEWER_TOKEN, "viewer")
    request = _request("POST", "/api/alerts/a-1/adjudication", session.session_id, session.csrf, body={})
    refused = await _refused(console.decide(request))
    assert refused.status == 403 and "may read alerts, not decide them" in refused.message


async def test_a_read_needs_a_live_session_not_the_csrf_token(console, store, clock):
    session = await _signed_in(store)
    response = await console.who(_request("GET", "/api/session", session.session_id, origin=None))
    assert json.loads(response.text)["csrf"] == session.csrf
    assert (await _refused(console.who(_request("GET", "/api/session")))).status == 401  # no cookie
    assert (await _refused(console.who(_request("GET", "/api/session", "forged-session-id")))).status == 401
    clock.now += IDLE_S
    assert (await _refused(console.who(_request("GET", "/api/session", session.session_id)))).status == 401


async def test_a_session_whose_token_is_no_longer_granted_ends_at_its_next_request(console, store):
    session = await _signed_in(store)
    console.book = TokenBook([TokenGrant(token=VIEWER_TOKEN, identity="auditor", role="viewer")])  # rotated away
    refused = await _refused(console.who(_request("GET", "/api/session", session.session_id)))
    assert refused.status == 401 and "no longer valid" in refused.message
    assert await store.get(session.session_id) is None
