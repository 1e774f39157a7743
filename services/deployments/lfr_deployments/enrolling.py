"""Enrolment: the EnrolWatchlist stream, one photo at a time. Each is checked (provenance, image,
face), refused when it duplicates a photo enrolled or seems to show another person than its
subject's photos, searched for lookalikes among other subjects, then written to this service's
index, onto the watchlist log (the match replicas' copies) and into Redis with its audit event; if
the log or Redis does not take it, it is taken back out of both."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments import wire
from lfr_deployments.decoding import DecoderPool
from lfr_deployments.lifecycle import PRECONDITION, InvalidRequest, Refused, ThresholdPolicy
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.provenance import Provenance, audit_row, checked, pseudonym
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.rules import room_for, room_for_one
from lfr_deployments.store import DeploymentStore
from lfr_faces.enrolment import Enroller, EnrolRejected
from lfr_faces.images import ImageRejected
from lfr_platform import metrics
from lfr_platform.audit import AuditLog
from lfr_platform.auth import Principal
from lfr_platform.clock import Clock, system
from lfr_platform.deployment_record import DeploymentRecord
from lfr_platform.rpc import Unavailable
from lfr_platform.stage import TRANSIENT_ERRORS
from lfr_watchlist import CollectionMissing, Entry, WatchlistIndex
from lfr_watchlist import log as changes

log = logging.getLogger(__name__)

# Candidates looked at for lookalikes of a newly enrolled photo (other subjects scoring at or above
# the deployment's threshold): more than a few means the watchlist is unusable for those subjects anyway.
LOOKALIKE_CANDIDATES = 10


class DeploymentClosedDuringEnrolment(RuntimeError):
    pass


class Enrolment:
    def __init__(
        self,
        *,
        store: DeploymentStore,
        index: WatchlistIndex,
        watchlist_log: WatchlistLog,
        enroller: Enroller,
        decoder: DecoderPool,
        audit: AuditLog,
        policy: ThresholdPolicy,
        duplicate_similarity: float,
        rules: DeploymentPolicy,
        max_concurrent: int = 2,
        clock: Clock = system,
    ) -> None:
        self.store = store
        self.index = index
        self.watchlist_log = watchlist_log
        self.enroller = enroller
        self.decoder = decoder
        self.audit = audit
        self.policy = policy
        self.duplicate_similarity = duplicate_similarity
        self.rules = rules  # the force's policy file (deploy/policy.yaml)
        self.clock = clock
        # A few photos at a time, whatever the number of enrolment streams, so enrolment never takes
        # live matching down: each is decoded in a worker process the OS bounds (the decoder's pool,
        # as many workers), and this process only analyses the reduced photo it gets back.
        self._analysing = asyncio.Semaphore(max_concurrent)
        self._locks: dict[str, asyncio.Lock] = {}

    async def stream(
        self,
        record: DeploymentRecord,
        expected_images: int,
        requests: AsyncIterator[pb.EnrolWatchlistRequest],
        who: Principal,
    ) -> AsyncIterator[pb.EnrolWatchlistResponse]:
        """One result per image of the stream (after its header), one stream of a deployment at a
        time. Raises Refused: images announced that would not fit (nothing enrolled), an image over
        the limit, a second header, the deployment closed meanwhile."""
        deployment_id = record.deployment_id
        async with self._locks.setdefault(deployment_id, asyncio.Lock()):
            limit = record.watchlist_size_limit
            count = await asyncio.get_running_loop().run_in_executor(None, self._images, deployment_id)
            room_for(expected_images, count, limit)
            outcomes: Counter[str] = Counter()
            try:
                async for request in requests:
                    if not request.HasField("image"):
                        raise InvalidRequest("only one EnrolHeader per stream")
                    room_for_one(count, limit, request.image.client_ref)
                    try:
                        result = await self.enrol_one(
                            deployment_id, request.image, who, self._lookalike_threshold(record)
                        )
                    except DeploymentClosedDuringEnrolment:
                        raise Refused(PRECONDITION, f"deployment {deployment_id} was closed during enrolment") from None
                    outcomes[
                        "enrolled"
                        if result.status == pb.ENROL_STATUS_ENROLLED
                        else pb.RejectionReason.Name(result.reason).removeprefix("REJECTION_REASON_").lower()
                    ] += 1
                    if result.status == pb.ENROL_STATUS_ENROLLED:
                        count += 1
                    yield result
            finally:
                await self._finish(deployment_id, who, outcomes, count, record.reviewed)

    async def enrol_one(
        self, deployment_id: str, image: pb.WatchlistImage, who: Principal, threshold: float
    ) -> pb.EnrolWatchlistResponse:
        def rejected(reason: str, detail: str) -> pb.EnrolWatchlistResponse:
            metrics.ENROLMENTS.labels("rejected", reason).inc()
            return pb.EnrolWatchlistResponse(
                client_ref=image.client_ref,
                subject_id=image.subject_id,
                status=pb.ENROL_STATUS_REJECTED,
                reason=wire.REASONS[reason],
                detail=detail,
            )

        try:
            provenance = checked(image, self.rules, dt.datetime.fromtimestamp(self.clock(), dt.UTC).date())
        except EnrolRejected as exc:
            return rejected(exc.reason, exc.detail)
        loop = asyncio.get_running_loop()
        try:
            decoding = self.enroller.plan(image.image)  # the header only: bytes, pixels, format
            async with self._analysing:
                pixels = await self.decoder.decode(image.image, decoding.flag)
                analysed = await loop.run_in_executor(None, self.enroller.analyse, image.image, pixels)
        except ImageRejected as exc:
            return rejected(exc.reason, exc.detail)
        except EnrolRejected as exc:
            return rejected(exc.reason, exc.detail)
        if await self.store.image_enrolled(deployment_id, analysed.image_sha256):
            return rejected("duplicate", "this exact file is already enrolled in this deployment")
        nearest = await loop.run_in_executor(None, self.index.search, deployment_id, analysed.vector, 1)
        if nearest and nearest[0].score >= self.duplicate_similarity:
            return rejected(
                "duplicate",
                f"near-identical (similarity {nearest[0].score:.3f}) to an image already enrolled "
                f"for subject {nearest[0].subject_id}",
            )
        mismatch = await self._other_person(deployment_id, image, analysed.vector)
        if mismatch:
            return rejected("subject_mismatch", mismatch)
        entry = Entry(
            entry_id=str(uuid.uuid4()),
            vector=analysed.vector,
            subject_id=provenance.subject_id,
            category=provenance.category,
            source_reference=provenance.source_reference,
            approved_by=provenance.approved_by,
            enrolled_at=self.clock(),
            image_sha256=analysed.image_sha256,
        )
        lookalikes = await self._lookalikes(deployment_id, provenance.subject_id, analysed.vector, threshold)
        # One unit, shielded from the client: a client that goes away mid-way does not interrupt it
        # (a Redis transaction half-sent is never second-guessed); it ends recorded, or undone.
        await asyncio.shield(
            asyncio.ensure_future(self._add_entry(deployment_id, entry, provenance, analysed.thumbnail, who))
        )
        metrics.ENROLMENTS.labels("enrolled", "").inc()
        key = await self.store.pseudonym_key(deployment_id) if lookalikes else b""
        for other in lookalikes:
            await self.audit.record(
                "watchlist.lookalike",
                deployment_id,
                who.identity,
                who.role,
                subject=pseudonym(key, provenance.subject_id),
                entry_id=entry.entry_id,
                other_subject=pseudonym(key, other.subject_id),
                score=round(other.score, 4),
            )
        return pb.EnrolWatchlistResponse(
            client_ref=image.client_ref,
            subject_id=provenance.subject_id,
            status=pb.ENROL_STATUS_ENROLLED,
            entry_id=entry.entry_id,
            lookalikes=lookalikes,
        )

    def _lookalike_threshold(self, record: DeploymentRecord) -> float:
        """Photos are checked for lookalikes at the lowest threshold the deployment may run at: the review
        derives its threshold again from the entries (a smaller list than its limit runs lower), so the
        threshold at enrolment is not the one that will decide."""
        lowest = self.policy.lowest_derivable
        return lowest if record.threshold is None else min(record.threshold, lowest)

    async def _lookalikes(self, deployment_id: str, subject_id: str, vector, threshold: float) -> list[pb.Lookalike]:
        """Other subjects whose photos score at or above the deployment's threshold against this one:
        the same person enrolled twice, or relatives. A face of one would alert as the other."""
        search = functools.partial(self.index.search, exact=True)
        nearest = await asyncio.get_running_loop().run_in_executor(
            None, search, deployment_id, vector, LOOKALIKE_CANDIDATES
        )
        best: dict[str, float] = {}
        for hit in nearest:
            if hit.subject_id != subject_id and hit.score >= threshold:
                best[hit.subject_id] = max(best.get(hit.subject_id, 0.0), hit.score)
        return [pb.Lookalike(subject_id=s, score=v) for s, v in sorted(best.items(), key=lambda kv: -kv[1])]

    async def _other_person(self, deployment_id: str, image: pb.WatchlistImage, vector) -> str | None:
        """Why this photo seems to show someone else than the subject's photos enrolled so far, or None."""
        least = self.policy.same_subject_min
        if least is None:
            return None
        search = functools.partial(self.index.search, exact=True, subject_id=image.subject_id)
        own = await asyncio.get_running_loop().run_in_executor(None, search, deployment_id, vector, 1)
        if not own or own[0].score >= least:
            return None
        return (
            f"{image.client_ref or 'this photo'} and {own[0].source_reference or 'a photo enrolled before'}, both of "
            f"subject {image.subject_id}, score {own[0].score:.2f} together, under the {least:.2f} that two photos "
            "of one person reach 99 times in 100: two different people (a photo in the wrong folder?), or a photo "
            "too old or too poor to match the other; nothing of this photo was enrolled"
        )

    async def _add_entry(
        self, deployment_id: str, entry: Entry, provenance: Provenance, thumbnail: bytes, who: Principal
    ) -> None:
        """The entry into this service's index, onto the watchlist log (the match replicas' copies),
        then its record into Redis with its audit event (`watchlist.image_enrolled`, in the same
        transaction: an acknowledged image is audited whatever happens next). If the log or Redis does
        not take it, the entry is taken back out of both: the watchlist never holds a face whose
        subject and file Redis does not know (it would match, and alert would refuse the match as not
        enrolled)."""
        loop = asyncio.get_running_loop()
        data_key = await self.store.data_key(deployment_id)
        if data_key is None:
            raise DeploymentClosedDuringEnrolment(deployment_id)
        subject = pseudonym(await self.store.pseudonym_key(deployment_id), entry.subject_id)  # for the audit
        # Pending, and the review cleared, before anything of it is written: a crash from here on leaves
        # an entry the janitor takes back out (audited), never one matched under the old review.
        await self.store.prepare_entry(deployment_id, entry.entry_id, self.clock())
        try:
            await loop.run_in_executor(None, self.index.upsert, deployment_id, [entry])
        except CollectionMissing:
            raise DeploymentClosedDuringEnrolment(deployment_id) from None
        logged = False
        try:
            await self.watchlist_log.publish(changes.upserted(deployment_id, data_key, [entry]))
            logged = True
            count = await loop.run_in_executor(None, self._images, deployment_id)
            await self.store.record_enrolled(
                deployment_id,
                entry.subject_id,
                entry.image_sha256,
                count,
                entry.entry_id,
                thumbnail,
                manifest_row={**provenance.manifest_row(), "enrolled_at": entry.enrolled_at},
                audited=lambda pipe: self.audit.add(
                    pipe,
                    "watchlist.image_enrolled",
                    deployment_id,
                    who.identity,
                    who.role,
                    entry_id=entry.entry_id,
                    **audit_row(provenance, subject),
                    age_override_reason=provenance.age_override_reason or None,
                ),
            )
        except asyncio.CancelledError:  # the process is stopping: undone in a worker thread
            loop.run_in_executor(None, self._forget, deployment_id, entry.entry_id)
            asyncio.ensure_future(self._unlog(deployment_id, entry.entry_id, logged))
            raise
        except LookupError:
            raise DeploymentClosedDuringEnrolment(deployment_id) from None
        except Exception:
            # The log or Redis did not take it (unreachable, restarting): the client is told the call
            # failed (UNAVAILABLE) and can send the image again.
            await loop.run_in_executor(None, self._forget, deployment_id, entry.entry_id)
            await self._unlog(deployment_id, entry.entry_id, logged)
            raise

    def _images(self, deployment_id: str) -> int:
        """Images enrolled: the index's entries but the subjects' templates."""
        return self.index.count(deployment_id, templates=False)

    async def _unlog(self, deployment_id: str, entry_id: str, logged: bool = True) -> None:
        """The undone entry out of the watchlist log (if it reached it), then no longer pending. If the
        log or Redis cannot be reached, it stays pending: the janitor takes it out later."""
        try:
            if logged:
                await self.watchlist_log.publish(changes.deleted(deployment_id, [entry_id]))
            await self.store.drop_pending(deployment_id, entry_id)
        except (Unavailable, *TRANSIENT_ERRORS) as exc:
            log.error(
                "an undone entry stays pending, for the janitor to take out: %s",
                exc,
                extra={"deployment_id": deployment_id},
            )

    def _forget(self, deployment_id: str, entry_id: str) -> None:
        try:
            self.index.delete(deployment_id, [entry_id])
        except CollectionMissing:
            pass  # the deployment was closed meanwhile: its whole watchlist is gone
        log.warning("enrolment undone: it could not be recorded", extra={"deployment_id": deployment_id})

    async def _finish(
        self, deployment_id: str, who: Principal, outcomes: Counter[str], count: int, reviewed: bool = False
    ) -> None:
        rejected = sum(n for k, n in outcomes.items() if k != "enrolled")
        try:
            await self.store.record_rejected(deployment_id, rejected)
        except TRANSIENT_ERRORS as exc:  # Redis is away: what was enrolled is still audited below
            log.warning("count of rejected images not updated: %s", exc, extra={"deployment_id": deployment_id})
        if outcomes:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.index.optimize, deployment_id)
            except CollectionMissing:
                pass  # closed meanwhile, or this service is stopping: nothing left to index
        try:
            await self.audit.outbox.drain()  # each image's audit event, now rather than at the next sweep
        except Exception as exc:  # noqa: BLE001 - kept in the outbox: the janitor's drain sends them
            log.warning("audit events of enrolled images not sent yet: %s", exc, extra={"deployment_id": deployment_id})
        await self.audit.record(
            "watchlist.enrolled",
            deployment_id,
            who.identity,
            who.role,
            enrolled=outcomes.get("enrolled", 0),
            rejected=rejected,
            rejections={k: n for k, n in outcomes.items() if k != "enrolled"},
            watchlist_size=count,
            # Enrolled after its review: the watchlist needs reviewing again before anything is matched.
            review_cleared=reviewed and bool(outcomes.get("enrolled")),
        )
