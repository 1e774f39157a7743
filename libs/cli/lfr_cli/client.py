"""A small synchronous client of the DeploymentService for the CLI and the tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grpc

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import deployments_pb2_grpc


class DeploymentClient:
    def __init__(self, address: str, token: str, *, tls_ca_file: str | None = None, timeout_s: float = 30.0) -> None:
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if tls_ca_file:
            with open(tls_ca_file, "rb") as f:
                credentials = grpc.ssl_channel_credentials(f.read())
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.stub = deployments_pb2_grpc.DeploymentServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.timeout_s = timeout_s

    def create(self, request: pb.CreateDeploymentRequest) -> pb.Deployment:
        return self.stub.CreateDeployment(request, metadata=self.metadata, timeout=self.timeout_s).deployment

    def get(self, deployment_id: str) -> pb.Deployment:
        request = pb.GetDeploymentRequest(deployment_id=deployment_id)
        return self.stub.GetDeployment(request, metadata=self.metadata, timeout=self.timeout_s).deployment

    def list(self) -> list[pb.Deployment]:
        response = self.stub.ListDeployments(
            pb.ListDeploymentsRequest(), metadata=self.metadata, timeout=self.timeout_s
        )
        return list(response.deployments)

    def close(self, deployment_id: str, reason: str = "") -> pb.Deployment:
        request = pb.CloseDeploymentRequest(deployment_id=deployment_id, reason=reason)
        return self.stub.CloseDeployment(request, metadata=self.metadata, timeout=self.timeout_s).deployment

    def enrol(
        self,
        deployment_id: str,
        images: Iterable[pb.WatchlistImage],
        expected: int = 0,
        timeout_s: float | None = None,
    ) -> Iterator[pb.EnrolWatchlistResponse]:
        """One result per image, as the service decides them."""

        def requests() -> Iterator[pb.EnrolWatchlistRequest]:
            yield pb.EnrolWatchlistRequest(header=pb.EnrolHeader(deployment_id=deployment_id, expected_images=expected))
            for image in images:
                yield pb.EnrolWatchlistRequest(image=image)

        return self.stub.EnrolWatchlist(requests(), metadata=self.metadata, timeout=timeout_s)

    def close_channel(self) -> None:
        self.channel.close()

    def __enter__(self) -> DeploymentClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close_channel()
