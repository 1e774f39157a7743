"""The console's HTTP side (aiohttp): the page, its JSON API, the live event stream and the images.

Security, as a page that shows police biometric data must have it:
- sign-in exchanges a bearer token for a session cookie (HttpOnly, SameSite=Strict, Secure over TLS);
- every state change needs the session's CSRF token in X-CSRF-Token and a same-origin Origin;
- a strict Content-Security-Policy (no inline script or style, nothing from elsewhere), no framing;
- `Cache-Control: no-store` on every API answer, event stream and image;
- every call to the AlertService and the DeploymentService carries the user's own token, so that
  they authorise (roles, deployments) and audit it as that user;
- an image is served only to a signed-in user who may see its deployment, and only while the
  deployment lives (410 Gone after close).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiohttp import web

from lfr.v1 import alerts_pb2, common_pb2, deployments_pb2
from lfr.v1 import alerts_pb2_grpc as alerts_grpc
from lfr.v1 import deployments_pb2_grpc as deployments_grpc
from lfr_console.feed import Feed
from lfr_console.sessions import Session, SessionStore
from lfr_console.signin import SignIns
from lfr_contracts.views import alert_json
from lfr_platform import metrics
from lfr_platform.auth import DECIDE_ALERTS, DECIDE_HELD_ALERTS, TokenBook

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
COOKIE = "lfr_session"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_OPEN_STATES = (deployments_pb2.DEPLOYMENT_STATE_PLANNED, deployments_pb2.DEPLOYMENT_STATE_ACTIVE)
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}
# A proxy closes an idle connection after about a minute: an open event stream writes a comment
# this often when it has nothing else to send.
_KEEP_ALIVE_S = 15.0
_OUTCOMES = {"true", "false", "undetermined"}
_FINAL_OUTCOMES = {"arrest", "no_further_action", "safeguarding", "other"}
_IMAGE_KINDS = {
    "probe": alerts_pb2.ALERT_IMAGE_KIND_PROBE,
    "reference": alerts_pb2.ALERT_IMAGE_KIND_REFERENCE,
    "scene": alerts_pb2.ALERT_IMAGE_KIND_SCENE,
}
# What a card says when an alert has no scene (SceneStatus, docs/alerts.md).
_NO_SCENE = {
    common_pb2.SCENE_STATUS_UNSPECIFIED: "no scene: none was made for this alert",
    common_pb2.SCENE_STATUS_COMPOSED: "no scene: it is no longer kept",
    common_pb2.SCENE_STATUS_FACE_NOT_FOUND: "no scene: the face was not clear in its frame",
    common_pb2.SCENE_STATUS_NO_ROOM: "no scene: the frame held too many faces to keep one",
}


def problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Backends:
    """gRPC stubs, made in the running loop (grpc.aio channels belong to the loop that made them)."""

    alerts: alerts_grpc.AlertServiceStub
    deployments: deployments_grpc.DeploymentServiceStub
    channels: tuple[grpc.aio.Channel, ...]


class Console:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        book: TokenBook,
        signins: SignIns,
        feed: Feed,
        connect: Callable[[], Backends],
        secure_cookies: bool,
        max_body_bytes: int,
        call_timeout_s: float = 10.0,
        stream_check_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.book = book
        self.signins = signins
        # How often an open event stream checks that its session and its token still stand: a token
        # removed from the tokens file ends its streams within this (plus the book's re-read, 1 s).
        self.stream_check_s = stream_check_s
        self.feed = feed
        self.connect = connect
        self.secure_cookies = secure_cookies
        self.max_body_bytes = max_body_bytes
        self.call_timeout_s = call_timeout_s
        self.backends: Backends | None = None

    # --- the application --------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self._guard])
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_post("/api/session", self.sign_in)
        app.router.add_get("/api/session", self.who)
        app.router.add_delete("/api/session", self.sign_out)
        app.router.add_get("/api/deployments", self.deployments)
        app.router.add_get("/api/alerts", self.alerts)
        app.router.add_get("/api/events", self.events)
        app.router.add_post("/api/alerts/{alert_id}/{step}", self.decide)
        app.router.add_get("/api/alerts/{alert_id}/{image}.jpg", self.image)
        app.router.add_get("/api/alerts/{alert_id}/scene", self.scene_status)
        app.router.add_get("/api/counters", self.counters)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        self.backends = self.connect()

    async def _close(self, _: web.Application) -> None:
        if self.backends is not None:
            for channel in self.backends.channels:
                await channel.close()

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        try:
            response = await handler(request)
        except Refused as exc:
            response = problem(exc.status, exc.message)
        except web.HTTPRequestEntityTooLarge:
            response = problem(413, f"request larger than {self.max_body_bytes} bytes")
        except web.HTTPException as exc:
            response = problem(exc.status, exc.reason)
        self._secure(request, response)
        metrics.WEB_REQUESTS.labels(route, str(response.status)).inc()
        return response

    @staticmethod
    def _secure(request: web.Request, response: web.StreamResponse) -> None:
        if response.prepared:  # an event stream: its headers went out when it started
            return
        headers = response.headers
        headers["Content-Security-Policy"] = CSP
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.path.startswith("/api/") or request.path == "/":
            headers["Cache-Control"] = "no-store"

    # --- the page ---------------------------------------------------------------------------
    async def index(self, _: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ("console.js", "console.css"):
            raise Refused(404, "not found")
        return web.FileResponse(STATIC / name)

    # --- sessions ---------------------------------------------------------------------------
    async def sign_in(self, request: web.Request) -> web.Response:
        self._same_origin(request)
        peer = self.signins.peer(request)
        throttled = await self.signins.refusal(peer)  # before any token is looked up
        if throttled is not None:
            return throttled
        body = await self._json(request)
        token, officer = str(body.get("token", "")).strip(), str(body.get("officer", "")).strip()
        if not officer or len(officer) > 200 or not officer.isprintable():
            raise Refused(400, "give your name or number (at most 200 characters): it is recorded with each decision")
        principal = self.book.lookup(token) if token else None
        if principal is None:
            await self.signins.failed(peer, "no token" if not token else "not a granted token")
            raise Refused(401, "this token is not valid")
        session = await self.sessions.create(principal, token, officer)
        await self.signins.succeeded(peer, principal, officer)
        response = web.json_response(self._session_view(session))
        response.set_cookie(
            COOKIE,
            session.session_id,
            httponly=True,
            secure=self.secure_cookies or request.secure,
            samesite="Strict",
            path="/",
        )
        return response

    async def who(self, request: web.Request) -> web.Response:
        return web.json_response(self._session_view(await self._session(request)))

    async def sign_out(self, request: web.Request) -> web.Response:
        session = await self._session(request, change=True)
        await self.sessions.end(session.session_id)
        self.feed.end_session(session.session_id)  # this replica's streams at once; the others hear it
        response = web.json_response({"signed_out": True})
        response.del_cookie(COOKIE, path="/")
        return response

    @staticmethod
    def _session_view(session: Session) -> dict:
        return {
            "identity": session.principal.identity,
            "role": session.principal.role,
            "officer": session.officer,
            "may_decide": session.principal.role in DECIDE_ALERTS,
            # An alert held for a supervisor (a lookalike within the policy's min_margin): its
            # adjudication is a supervisor's; the AlertService refuses anyone else's.
            "may_decide_held": session.principal.role in DECIDE_HELD_ALERTS,
            "csrf": session.csrf,
        }

    async def _session(self, request: web.Request, change: bool = False) -> Session:
        session = await self.sessions.get(request.cookies.get(COOKIE, ""))
        if session is None:
            raise Refused(401, "not signed in, or the session ended: sign in again")
        if self.book.lookup(session.token) is None:  # the token was revoked or rotated away
            await self.sessions.end(session.session_id)
            raise Refused(401, "your token is no longer valid: sign in again")
        if change:
            self._same_origin(request)
            sent = request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise Refused(403, "missing or wrong CSRF token: reload the page")
        return session

    @staticmethod
    def _same_origin(request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise Refused(403, "cross-origin requests are refused")

    async def _json(self, request: web.Request) -> dict:
        if request.content_type != "application/json":
            raise Refused(415, "send application/json")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        return body

    # --- data -------------------------------------------------------------------------------
    async def _call(self, session: Session, method: Callable[..., Awaitable], request) -> object:
        try:
            return await method(
                request,
                metadata=(("authorization", f"Bearer {session.token}"),),
                timeout=self.call_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            status = _HTTP_STATUS.get(exc.code(), 502)
            if status == 503:
                raise Refused(503, "the service behind the console cannot be reached; retrying") from None
            raise Refused(status, exc.details() or exc.code().name) from None

    async def _open_deployments(self, session: Session) -> list[deployments_pb2.Deployment]:
        response = await self._call(
            session, self.backends.deployments.ListDeployments, deployments_pb2.ListDeploymentsRequest()
        )
        return [d for d in response.deployments if d.state in _OPEN_STATES]

    async def _open_deployment(self, session: Session, deployment_id: str) -> bool:
        if not deployment_id or len(deployment_id) > 100:
            raise Refused(400, "give a deployment")
        if not session.principal.may_see(deployment_id):
            raise Refused(403, f"{session.principal.identity} may not see {deployment_id}")
        response = await self._call(
            session,
            self.backends.deployments.GetDeployment,
            deployments_pb2.GetDeploymentRequest(deployment_id=deployment_id),
        )
        return response.deployment.state in _OPEN_STATES

    async def deployments(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        return web.json_response(
            [
                {
                    "deployment_id": d.deployment_id,
                    "name": d.name,
                    "location": d.location,
                    "threshold": round(d.threshold, 4),
                    "vans": sorted({c.van_id for c in d.cameras}),
                    # What an officer may record of how they perceived the person (the policy's lists).
                    "perceived_groups": {
                        "sex": list(d.perceived_groups.sex),
                        "ethnicity": list(d.perceived_groups.ethnicity),
                    },
                }
                for d in await self._open_deployments(session)
            ]
        )

    async def alerts(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        deployment_id = request.query.get("deployment", "")
        if not await self._open_deployment(session, deployment_id):
            return web.json_response([])  # a closed deployment's queue is empty
        response = await self._call(
            session, self.backends.alerts.ListAlerts, alerts_pb2.ListAlertsRequest(deployment_id=deployment_id)
        )
        return web.json_response([alert_json(a) for a in response.alerts])

    async def events(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(request)
        deployment_id = request.query.get("deployment", "")
        if not await self._open_deployment(session, deployment_id):
            raise Refused(410, f"deployment {deployment_id} is closed")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        subscription = self.feed.subscribe(session.session_id)
        metrics.EVENT_STREAMS.set(self.feed.streams)
        # The stream lives while its session and its token do: ended by a sign-out (here or on another
        # replica) at once, by the end of its shift at that moment, by the token's removal from the
        # tokens file within seconds (checked every stream_check_s), and checked again before every
        # event it sends.
        shift_ends = session.created_at + self.sessions.ttl_s
        loop = asyncio.get_running_loop()
        written_at = loop.time()
        try:
            while True:
                getter = asyncio.ensure_future(subscription.queue.get())
                ender = asyncio.ensure_future(subscription.ended.wait())
                wait_s = max(0.0, min(self.stream_check_s, shift_ends - self.sessions.clock()))
                done, _ = await asyncio.wait({getter, ender}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
                for pending in (getter, ender):
                    if pending not in done:
                        pending.cancel()
                event = getter.result() if getter in done else None
                if ender in done or not await self._stream_may_go_on(session):
                    await response.write(b"event: signed_out\ndata: {}\n\n")
                    break
                if event is None:
                    if loop.time() - written_at >= _KEEP_ALIVE_S:
                        await response.write(b": keep-alive\n\n")
                        written_at = loop.time()
                    continue
                if event.kind == "alert" and event.data["deployment_id"] != deployment_id:
                    continue
                await response.write(event.encode())
                written_at = loop.time()
        except (ConnectionError, RuntimeError):
            pass  # the page went away (its connection reset, or closing under a write): nothing to tell
        finally:
            self.feed.unsubscribe(subscription)
            metrics.EVENT_STREAMS.set(self.feed.streams)
        return response

    async def _stream_may_go_on(self, session: Session) -> bool:
        """The session stands and its token is still granted; a revoked token ends the session too
        (every replica's streams of it, and its cookie)."""
        if self.book.lookup(session.token) is None:
            log.info("token no longer granted: session ended", extra={"identity": session.principal.identity})
            await self.sessions.end(session.session_id)
            return False
        return await self.sessions.alive(session)

    async def decide(self, request: web.Request) -> web.Response:
        session = await self._session(request, change=True)
        if session.principal.role not in DECIDE_ALERTS:
            raise Refused(403, f"role {session.principal.role!r} may read alerts, not decide them")
        body = await self._json(request)
        step, alert_id = request.match_info["step"], request.match_info["alert_id"]
        decision = alerts_pb2.DecisionRequest(
            alert_id=alert_id,
            officer=session.officer,
            note=str(body.get("note", ""))[:2000],
            correction_reason=str(body.get("correction_reason", ""))[:2000],
        )
        revision = body.get("revision", 0)
        if not isinstance(revision, int) or isinstance(revision, bool) or not 0 <= revision < 2**32:
            raise Refused(400, "revision must be the alert's revision the decision was made on")
        decision.revision = revision
        stub = self.backends.alerts
        if step == "adjudication":
            outcome = body.get("outcome")
            if outcome not in _OUTCOMES:
                raise Refused(400, f"outcome must be one of {', '.join(sorted(_OUTCOMES))}")
            perceived = {k: body.get(k, "") for k in ("perceived_sex", "perceived_ethnicity")}
            if not all(isinstance(v, str) and len(v) <= 64 for v in perceived.values()):
                raise Refused(400, "perceived_sex and perceived_ethnicity are values of the deployment's lists")
            call, message = (
                stub.AdjudicateAlert,
                alerts_pb2.AdjudicateAlertRequest(
                    decision=decision,
                    outcome=alerts_pb2.AdjudicationOutcome.Value(f"ADJUDICATION_OUTCOME_{outcome.upper()}"),
                    **perceived,  # checked against the deployment's lists by the AlertService
                ),
            )
        elif step == "engagement":
            if not isinstance(body.get("engaged"), bool):
                raise Refused(400, "engaged must be true or false")
            call, message = (
                stub.RecordEngagement,
                alerts_pb2.RecordEngagementRequest(decision=decision, engaged=body["engaged"]),
            )
        elif step == "outcome":
            outcome = body.get("outcome")
            if outcome not in _FINAL_OUTCOMES:
                raise Refused(400, f"outcome must be one of {', '.join(sorted(_FINAL_OUTCOMES))}")
            call, message = (
                stub.RecordOutcome,
                alerts_pb2.RecordOutcomeRequest(
                    decision=decision,
                    outcome=alerts_pb2.FinalOutcome.Value(f"FINAL_OUTCOME_{outcome.upper()}"),
                    detail=str(body.get("detail", ""))[:2000],
                ),
            )
        else:
            raise Refused(404, f"no step {step!r}: adjudication, engagement or outcome")
        response = await self._call(session, call, message)
        return web.json_response({**alert_json(response.alert), "changed": response.changed})

    async def _images(self, request: web.Request, kind: int) -> alerts_pb2.GetAlertImagesResponse:
        """One kind at a time: a probe or reference fetch never opens the scene."""
        session = await self._session(request)
        try:
            return await self._call(
                session,
                self.backends.alerts.GetAlertImages,
                alerts_pb2.GetAlertImagesRequest(alert_id=request.match_info["alert_id"], kinds=[kind]),
            )
        except Refused as exc:
            if exc.status == 404 and "deleted with deployment" in exc.message:
                raise Refused(410, exc.message) from None
            raise

    async def image(self, request: web.Request) -> web.Response:
        which = request.match_info["image"]
        if which not in _IMAGE_KINDS:
            raise Refused(404, "not found")
        images = await self._images(request, _IMAGE_KINDS[which])
        data = {"probe": images.probe_jpeg, "reference": images.reference_jpeg, "scene": images.scene_jpeg}[which]
        if not data:
            if which == "scene":
                raise Refused(404, _NO_SCENE.get(images.scene_status, _NO_SCENE[common_pb2.SCENE_STATUS_UNSPECIFIED]))
            raise Refused(404, f"alert has no {which} image")
        return web.Response(
            body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    async def scene_status(self, request: web.Request) -> web.Response:
        """Whether the alert has a scene, and if not, why (the card says so); the image is scene.jpg."""
        images = await self._images(request, alerts_pb2.ALERT_IMAGE_KIND_SCENE)
        composed = images.scene_status == common_pb2.SCENE_STATUS_COMPOSED and bool(images.scene_jpeg)
        return web.json_response(
            {
                "status": common_pb2.SceneStatus.Name(images.scene_status).removeprefix("SCENE_STATUS_").lower(),
                "composed": composed,
                "reason": "" if composed else _NO_SCENE.get(images.scene_status, _NO_SCENE[0]),
            }
        )

    async def counters(self, request: web.Request) -> web.Response:
        """The deployment's running figures, from its report (GetDeploymentReport): faces scanned, alerts,
        decided (adjudicated), true, false and held. The page polls it."""
        session = await self._session(request)
        deployment_id = request.query.get("deployment", "")
        if not await self._open_deployment(session, deployment_id):
            raise Refused(410, f"deployment {deployment_id} is closed")
        response = await self._call(
            session,
            self.backends.deployments.GetDeploymentReport,
            deployments_pb2.GetDeploymentReportRequest(deployment_id=deployment_id),
        )
        report = response.report
        outcomes = report.outcomes
        return web.json_response(
            {
                "faces_scanned": report.faces_scanned,
                "alerts": outcomes.alerts,
                "decided": outcomes.alerts - outcomes.unadjudicated,
                "true": outcomes.true_alerts,
                "false": outcomes.false_alerts,
                "held": outcomes.held,
            }
        )
