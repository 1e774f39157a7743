"""The gRPC server every API service runs: its servicers, gRPC health and reflection, optional TLS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lfr_platform.http import Health

log = logging.getLogger(__name__)


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
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", self.max_receive_bytes)])
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
