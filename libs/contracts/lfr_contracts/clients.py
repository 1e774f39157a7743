"""Small synchronous clients of the DeploymentService and the AlertService, for applications (the CLI, the
local stack, the tests, the benchmarks): a channel, a bearer token and a deadline per call."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import grpc

from lfr.v1 import alerts_pb2, alerts_pb2_grpc, deployments_pb2_grpc
from lfr.v1 import deployments_pb2 as pb


class _Client:
    def __init__(self, address: str, token: str, *, tls_ca_file: str | None = None, timeout_s: float = 30.0) -> None:
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if tls_ca_file:
            with open(tls_ca_file, "rb") as f:
                credentials = grpc.ssl_channel_credentials(f.read())
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.timeout_s = timeout_s
        self.stub = self._stub(self.channel)

    def _stub(self, channel):
        raise NotImplementedError

    def close_channel(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close_channel()


class DeploymentClient(_Client):
    def _stub(self, channel):
        return deployments_pb2_grpc.DeploymentServiceStub(channel)

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

    def manifest(self, deployment_id: str) -> pb.GetWatchlistManifestResponse:
        request = pb.GetWatchlistManifestRequest(deployment_id=deployment_id)
        return self.stub.GetWatchlistManifest(request, metadata=self.metadata, timeout=self.timeout_s)

    def was_listed(self, subject_id: str) -> pb.WasListedResponse:
        request = pb.WasListedRequest(subject_id=subject_id)
        return self.stub.WasListed(request, metadata=self.metadata, timeout=self.timeout_s)

    def review(self, deployment_id: str, officer: str) -> pb.ReviewWatchlistResponse:
        """The deployment as reviewed, and the lookalikes its subjects' templates made."""
        request = pb.ReviewWatchlistRequest(deployment_id=deployment_id, officer=officer)
        return self.stub.ReviewWatchlist(request, metadata=self.metadata, timeout=self.timeout_s)

    def plan(self, entries: int, expected_faces: int = 0) -> pb.PlanDeploymentResponse:
        """The operating point a list of `entries` would get under the force's budget; nothing is created."""
        request = pb.PlanDeploymentRequest(entries=entries, expected_faces=expected_faces)
        return self.stub.PlanDeployment(request, metadata=self.metadata, timeout=self.timeout_s)

    def ratify(self, deployment_id: str, officer: str) -> pb.Deployment:
        request = pb.RatifyDeploymentRequest(deployment_id=deployment_id, officer=officer)
        return self.stub.RatifyDeployment(request, metadata=self.metadata, timeout=self.timeout_s).deployment

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

    def report(self, deployment_id: str) -> pb.DeploymentReport:
        request = pb.GetDeploymentReportRequest(deployment_id=deployment_id)
        return self.stub.GetDeploymentReport(request, metadata=self.metadata, timeout=self.timeout_s).report


class AlertClient(_Client):
    def _stub(self, channel):
        return alerts_pb2_grpc.AlertServiceStub(channel)

    def list(self, deployment_id: str, states=(), van_id: str = "") -> list[alerts_pb2.AlertRaised]:
        request = alerts_pb2.ListAlertsRequest(deployment_id=deployment_id, states=list(states), van_id=van_id)
        return list(self.stub.ListAlerts(request, metadata=self.metadata, timeout=self.timeout_s).alerts)

    def get(self, alert_id: str) -> alerts_pb2.AlertRaised:
        request = alerts_pb2.GetAlertRequest(alert_id=alert_id)
        return self.stub.GetAlert(request, metadata=self.metadata, timeout=self.timeout_s).alert

    def images(self, alert_id: str, kinds: Sequence[int] = ()) -> alerts_pb2.GetAlertImagesResponse:
        """`kinds`: the AlertImageKind values wanted, each once; empty: every kind (the scene is opened
        only when asked for)."""
        request = alerts_pb2.GetAlertImagesRequest(alert_id=alert_id, kinds=list(kinds))
        return self.stub.GetAlertImages(request, metadata=self.metadata, timeout=self.timeout_s)

    @staticmethod
    def _decision(
        alert_id: str, officer: str, note: str, correction_reason: str, revision: int
    ) -> alerts_pb2.DecisionRequest:
        return alerts_pb2.DecisionRequest(
            alert_id=alert_id, officer=officer, note=note, correction_reason=correction_reason, revision=revision
        )

    def adjudicate(
        self,
        alert_id: str,
        outcome: int,
        officer: str,
        note: str = "",
        correction_reason: str = "",
        revision: int = 0,
        *,
        perceived_sex: str = "",
        perceived_ethnicity: str = "",
    ) -> alerts_pb2.AdjudicateAlertResponse:
        """`perceived_*`: how the officer perceived the person, from the deployment's lists ("": not recorded)."""
        request = alerts_pb2.AdjudicateAlertRequest(
            decision=self._decision(alert_id, officer, note, correction_reason, revision),
            outcome=outcome,
            perceived_sex=perceived_sex,
            perceived_ethnicity=perceived_ethnicity,
        )
        return self.stub.AdjudicateAlert(request, metadata=self.metadata, timeout=self.timeout_s)

    def engage(
        self, alert_id: str, engaged: bool, officer: str, note: str = "", correction_reason: str = "", revision: int = 0
    ) -> alerts_pb2.RecordEngagementResponse:
        request = alerts_pb2.RecordEngagementRequest(
            decision=self._decision(alert_id, officer, note, correction_reason, revision), engaged=engaged
        )
        return self.stub.RecordEngagement(request, metadata=self.metadata, timeout=self.timeout_s)

    def outcome(
        self,
        alert_id: str,
        outcome: int,
        officer: str,
        detail: str = "",
        note: str = "",
        correction_reason: str = "",
        revision: int = 0,
    ) -> alerts_pb2.RecordOutcomeResponse:
        request = alerts_pb2.RecordOutcomeRequest(
            decision=self._decision(alert_id, officer, note, correction_reason, revision),
            outcome=outcome,
            detail=detail,
        )
        return self.stub.RecordOutcome(request, metadata=self.metadata, timeout=self.timeout_s)
