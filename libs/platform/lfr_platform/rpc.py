"""The gRPC server every API service runs: its servicers, gRPC health and reflection, optional TLS."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import redis.exceptions
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lfr_platform.deployment_record import RecordInvalid
from lfr_platform.http import Health

log = logging.getLogger(__name__)


# Redis (the deployment and alert store) restarting or unreachable: the caller may retry.
STORE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Unavailable(Exception):
    """A dependency other than the store is away (the broker, say): answered UNAVAILABLE with this
    message, which says what to retry."""


def _answer_unavailable(method):
    """Wrap a servicer method: a store that is down answers UNAVAILABLE with a reason, not UNKNOWN; a
    deployment record this release cannot read answers INTERNAL with the field named."""

    async def abort(context, exc):
        log.warning("answered UNAVAILABLE: the store is unreachable: %s", exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"the deployment store (Redis) is unreachable, retry: {exc}")

    async def unreadable(context, exc: RecordInvalid):
        log.error("answered INTERNAL: %s", exc, extra={"deployment_id": exc.deployment_id, "field": exc.field})
        await context.abort(grpc.StatusCode.INTERNAL, str(exc))

    if inspect.isasyncgenfunction(method):

        async def streamed(request, context):
            try:
                async for response in method(request, context):
                    yield response
            except STORE_DOWN as exc:
                await abort(context, exc)
            except Unavailable as exc:
                log.warning("answered UNAVAILABLE: %s", exc)
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except RecordInvalid as exc:
                await unreadable(context, exc)

        return streamed

    async def unary(request, context):
        try:
            return await method(request, context)
        except STORE_DOWN as exc:
            await abort(context, exc)
        except Unavailable as exc:
            log.warning("answered UNAVAILABLE: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except RecordInvalid as exc:
            await unreadable(context, exc)

    return unary


class _StoreDown(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        for kind, factory in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            method = getattr(handler, kind)
            if method is not None:
                return factory(
                    _answer_unavailable(method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


class GrpcServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        health_state: Health,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
        max_receive_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.health_state = health_state
        self.tls = (tls_cert_file, tls_key_file) if tls_cert_file and tls_key_file else None
        self.max_receive_bytes = max_receive_bytes
        self._servicers: list[tuple[object, Callable]] = []
        self._names: list[str] = []

    def add(self, servicer, add_to_server: Callable, service_name: str) -> None:
        """Serve `servicer` (`add_to_server` is the generated add_<Service>Servicer_to_server)."""
        self._servicers.append((servicer, add_to_server))
        self._names.append(service_name)

    async def start(self) -> None:
        # Made here, in the loop that runs it: a grpc.aio server is bound to the loop it was made in.
        self._server = grpc.aio.server(
            interceptors=[_StoreDown()],
            options=[("grpc.max_receive_message_length", self.max_receive_bytes)],
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for servicer, add_to_server in self._servicers:
            add_to_server(servicer, self._server)
        reflection.enable_server_reflection((*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server)
        address = f"{self.host}:{self.port}"
        if self.tls:
            cert, key = self.tls
            credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        await self._server.start()
        for name in ("", *self._names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.health_state.set("grpc", True)
        log.info("%s listening on %s:%d", ", ".join(self._names), self.host, self.port)

    async def stop(self, grace_s: float = 5.0) -> None:
        self.health_state.set("grpc", False)
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace=grace_s)
