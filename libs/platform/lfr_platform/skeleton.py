"""The one skeleton of every stage: admit, open, handle, seal; the StageRunner publishes and commits.

Every record of the pipeline belongs to a deployment's camera. A stage admits it first (its
deployment open and covering the camera: `registry.admit`), then its domain code opens the sealed
payloads it needs, does its work, and seals what it sends on, always through `Admitted`: no stage
handles a data key itself. ingest, which consumes no topic, admits and seals its frames through the
same `Admitted` before it publishes them.

    class DetectHandler(DeploymentStage[FrameCaptured]):
        input = FRAMES_CAPTURED

        async def one(self, frame: Admitted[FrameCaptured]) -> Outcome:
            jpeg = frame.open(frame.message.image)        # raises SealError: dead-lettered, unsealable
            ...
            return [Output(FACES_DETECTED, key, faces_detected(..., seal=frame.seal))]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

from lfr_contracts import Topic
from lfr_platform import sealing
from lfr_platform.registry import DeploymentRegistry, DeploymentView, admit
from lfr_platform.stage import Incoming, M, Outcome, Rejected, Skipped


@dataclass(frozen=True)
class Admitted(Generic[M]):
    """A record (or, in ingest, a camera's frame) whose deployment may be processed now, with what
    a stage's domain code needs of that deployment: its threshold and model, and its key to open
    and seal payloads with."""

    message: M
    deployment: DeploymentView

    @property
    def deployment_id(self) -> str:
        return self.deployment.deployment_id

    def open(self, sealed: bytes) -> bytes:
        """A payload sealed for this deployment (sealing.SealError if it was not)."""
        assert self.deployment.data_key is not None  # admitted: the deployment has its key
        return sealing.unseal(self.deployment.data_key, sealed, self.deployment_id)

    def seal(self, plain: bytes) -> bytes:
        assert self.deployment.data_key is not None
        return sealing.seal(self.deployment.data_key, plain, self.deployment_id)

    def sign(self, message, purpose: str) -> None:
        """Sign a message for `purpose` with the deployment's key (only its stages can)."""
        assert self.deployment.data_key is not None
        sealing.sign_message(self.deployment.data_key, message, purpose)

    def verify(self, message, purpose: str) -> bool:
        assert self.deployment.data_key is not None
        return sealing.verify_message(self.deployment.data_key, message, purpose)


async def admitted(registry: DeploymentRegistry, message, camera=None) -> Admitted | Rejected | Skipped:
    """The record admitted, or why not (`registry.admit`, with the message's capture time). `camera`
    defaults to the message's.

    A record whose message carries a capture time but has it unset is dead-lettered as
    `no_capture_time`: the authorised window is decided on capture time, so a record without one
    cannot be shown to fall inside it (admit alone would skip the window check)."""
    captured_at = getattr(message, "captured_at", None)  # a record's Timestamp, or ingest's frame's seconds
    unset = False
    if captured_at is not None and not isinstance(captured_at, int | float):
        unset = not message.HasField("captured_at")
        captured_at = None if unset else captured_at.ToNanoseconds() / 1e9
    deployment = await admit(registry, camera if camera is not None else message.camera, captured_at)
    if isinstance(deployment, Rejected | Skipped):
        return deployment
    if unset:
        return Rejected(
            "no_capture_time",
            f"a {type(message).__name__} of {deployment.deployment_id!r} without captured_at: its authorised "
            "window cannot be checked",
        )
    return Admitted(message, deployment)


class DeploymentStage(Generic[M]):
    """A stage handler of the skeleton. A subclass sets `input` and `registry`, and gives either
    `one` (a record at a time) or `process` (the admitted records of a batch together, as embed runs
    its model once per batch). A payload that does not open with its deployment's key is dead-lettered
    as `unsealable`; a record not admitted is dead-lettered or skipped with the reason admit gave, after
    `refused` has seen it."""

    input: Topic[M]
    registry: DeploymentRegistry

    async def handle(self, batch: Sequence[Incoming[M]]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        todo: list[tuple[int, Admitted[M]]] = []
        for i, item in enumerate(batch):
            record = await admitted(self.registry, item.message)
            if isinstance(record, Rejected | Skipped):
                self.refused(item.message, record)
                outcomes[i] = record
            else:
                todo.append((i, record))
        if todo:
            results = await self.process([record for _, record in todo])
            for (i, _), outcome in zip(todo, results, strict=True):
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    async def process(self, records: list[Admitted[M]]) -> list[Outcome]:
        return [await self._opened(record) for record in records]

    async def _opened(self, record: Admitted[M]) -> Outcome:
        try:
            return await self.one(record)
        except sealing.SealError as exc:
            return Rejected("unsealable", str(exc))

    async def one(self, record: Admitted[M]) -> Outcome:
        raise NotImplementedError(f"{type(self).__name__} gives one() or process()")

    def refused(self, message: M, outcome: Rejected | Skipped) -> None:
        """A record that was not admitted (a hook: match forgets a closed deployment's tracks)."""

    async def published(self, done: list[tuple[M, Outcome]]) -> None:
        """After the broker took the batch's outputs, before its commit (a hook: alert remembers the
        match ids it announced, so that a replay of one is refused)."""
