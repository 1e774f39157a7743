"""The deployment a bench stack's cameras stream into: open, any camera, and its watchlist (the demo's)
enrolled and reviewed. Every stage admits a record only once its deployment's watchlist has been
reviewed as it stands (lfr_platform.registry.admit: `watchlist_not_reviewed`); without the review,
ingest publishes no frame and the stages measure nothing."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts.clients import DeploymentClient
from lfr_stack.state import StackState


def open_deployment(state: StackState, data_dir: Path) -> str:
    """A reviewed deployment of the stack, for an hour, covering any camera; returns its id."""
    with DeploymentClient(state.grpc_address, state.tokens["manager"]) as client:
        request = pb.CreateDeploymentRequest(
            name="bench",
            purpose="benchmark",
            authorising_officer="bench",
            location="bench",
            where="intelligence_led",
            cameras=[],  # any camera of the bench
        )
        request.planned_end.FromSeconds(int(time.time() + 3600))
        deployment_id = client.create(request).deployment_id
        with tempfile.TemporaryDirectory(prefix="lfr-bench-watchlist-") as tmp:
            watchlist = demo_data.build_watchlist(data_dir, Path(tmp) / "watchlist")
            list(client.enrol(deployment_id, iter_messages(scan(watchlist, approved_by="bench"))))
        client.review(deployment_id, "bench")
    return deployment_id
