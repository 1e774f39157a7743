"""The stage skeleton: admit, open, handle, seal (a fake registry; real sealing)."""

from aiokafka.structs import ConsumerRecord

from lfr.v1 import common_pb2, frames_pb2
from lfr_contracts import FRAMES_CAPTURED
from lfr_platform import sealing
from lfr_platform.registry import DeploymentView
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import Incoming, Output, Rejected, Skipped

KEY = sealing.new_data_key()


class Registry:
    """Deployments by id: dep-open (active, with its key) and dep-closed."""

    async def lookup(self, deployment_id: str) -> DeploymentView | None:
        states = {"dep-open": ("active", KEY), "dep-closed": ("closed", None)}
        if deployment_id not in states:
            return None
        state, key = states[deployment_id]
        return DeploymentView(deployment_id, state, 0.6, "m", key, frozenset())


class Echo(DeploymentStage[frames_pb2.FrameCaptured]):
    """Opens the frame and seals it again onto the same topic."""

    input = FRAMES_CAPTURED

    def __init__(self) -> None:
        self.registry = Registry()
        self.refusals = []

    async def one(self, record: Admitted[frames_pb2.FrameCaptured]) -> list[Output]:
        plain = record.open(record.message.image)
        out = frames_pb2.FrameCaptured(camera=record.message.camera, image=record.seal(plain.upper()))
        return [Output(FRAMES_CAPTURED, b"k", out)]

    def refused(self, message, outcome) -> None:
        self.refusals.append((message.camera.deployment_id, outcome.reason))


def _frame(deployment_id: str, image: bytes, *, captured: bool = True) -> Incoming:
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="v", camera_id="c")
    record = ConsumerRecord("t", 0, 0, 0, 0, None, b"", None, 0, 0, [])
    frame = frames_pb2.FrameCaptured(camera=camera, image=image)
    if captured:
        frame.captured_at.FromSeconds(1_800_000_000)
    return Incoming(frame, record)


async def test_admitted_records_are_opened_and_sealed_and_the_others_get_their_reason():
    stage = Echo()
    outcomes = await stage.handle(
        [
            _frame("dep-open", sealing.seal(KEY, b"jpeg", "dep-open")),
            _frame("dep-closed", b"whatever"),
            _frame("dep-open", sealing.seal(sealing.new_data_key(), b"jpeg", "dep-open")),  # another key
            _frame("dep-nowhere", b"whatever"),
        ]
    )
    [output] = outcomes[0]
    assert sealing.unseal(KEY, output.message.image, "dep-open") == b"JPEG"
    assert outcomes[1] == Skipped("deployment_closed")
    assert isinstance(outcomes[2], Rejected) and outcomes[2].reason == "unsealable"
    assert isinstance(outcomes[3], Rejected) and outcomes[3].reason == "unknown_deployment"
    assert stage.refusals == [("dep-closed", "deployment_closed"), ("dep-nowhere", "unknown_deployment")]


async def test_a_record_without_a_capture_time_is_dead_lettered_not_waved_through_the_window():
    stage = Echo()
    [outcome] = await stage.handle([_frame("dep-open", sealing.seal(KEY, b"jpeg", "dep-open"), captured=False)])
    assert isinstance(outcome, Rejected) and outcome.reason == "no_capture_time"
    assert "without captured_at" in outcome.detail and "dep-open" in outcome.detail
    # A closed deployment's record is still skipped as closed, whatever its capture time.
    [closed] = await stage.handle([_frame("dep-closed", b"whatever", captured=False)])
    assert closed == Skipped("deployment_closed")
