"""Sign-in attempts (lfr_console.signin): failures limited per peer, each try audited (a fake audit log)."""

from aiohttp.test_utils import make_mocked_request

from lfr_console.signin import ACTION, SignIns
from lfr_platform.auth import Principal


class Audit:
    """The AuditLog port: events as (event, actor, details)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> None:
        self.events.append((event, actor, details))


async def test_failures_are_limited_per_peer_and_another_peer_may_still_sign_in():
    audit = Audit()
    signins = SignIns(audit, failures_per_minute=3)
    for _ in range(3):
        assert await signins.refusal("10.0.0.7") is None
        await signins.failed("10.0.0.7", "not a granted token")
    refused = await signins.refusal("10.0.0.7")
    assert refused is not None and refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
    assert await signins.refusal("10.0.0.7") is not None  # still refused; audited once a minute only
    assert await signins.refusal("10.0.0.8") is None  # another peer is not locked out
    await signins.succeeded("10.0.0.8", Principal("control-room-2", "officer"), "PC 2")
    kinds = [(event, actor) for event, actor, _ in audit.events]
    assert kinds == [("access.denied", "unauthenticated")] * 3 + [
        ("console.sign_in_throttled", "unauthenticated"),
        ("console.signed_in", "control-room-2"),
    ]
    assert audit.events[0][2] == {
        "action": ACTION,
        "outcome": "UNAUTHENTICATED",
        "peer": "10.0.0.7",
        "why": "not a granted token",
    }
    assert audit.events[-1][2]["officer"] == "PC 2"


def test_the_peer_is_the_address_the_proxy_saw_only_behind_a_proxy():
    request = make_mocked_request("POST", "/api/session", headers={"X-Forwarded-For": "6.6.6.6, 10.1.2.3"})
    assert SignIns(Audit(), forwarded_for=True).peer(request) == "10.1.2.3"  # the entry the proxy appended
    assert SignIns(Audit()).peer(request) != "6.6.6.6"  # a client's own header is not trusted
