"""The watchlists as a log (topic watchlist.changed.v1): what the deployments service writes and
every match replica reads whole into its own index (docs/decisions/0011-watchlist-log.md).

Entries travel sealed with their deployment's data key, so the log is as readable as the deployment
is open: once it is closed and its key destroyed, what is left of its entries on the topic is
unreadable (crypto-shredded) until retention removes it.
"""

from __future__ import annotations

import numpy as np

from lfr.v1 import watchlist_pb2 as pb
from lfr_platform import sealing
from lfr_watchlist import Entry


def _change(deployment_id: str) -> pb.WatchlistChanged:
    change = pb.WatchlistChanged(deployment_id=deployment_id)
    change.changed_at.GetCurrentTime()
    return change


def created(deployment_id: str, dimension: int, model_id: str) -> pb.WatchlistChanged:
    change = _change(deployment_id)
    change.created.dimension = dimension
    change.created.model_id = model_id
    return change


def upserted(deployment_id: str, data_key: bytes, entries: list[Entry]) -> pb.WatchlistChanged:
    change = _change(deployment_id)
    for entry in entries:
        plain = pb.WatchlistEntry(
            entry_id=entry.entry_id,
            vector=np.asarray(entry.vector, dtype="<f4").tobytes(),
            subject_id=entry.subject_id,
            category=entry.category,
            source_reference=entry.source_reference,
            approved_by=entry.approved_by,
            enrolled_at=entry.enrolled_at,
            image_sha256=entry.image_sha256,
            template_of=entry.template_of,
            reference_entry_id=entry.reference_entry_id,
        )
        change.upserted.entries.append(sealing.seal(data_key, plain.SerializeToString(), deployment_id))
    return change


def deleted(deployment_id: str, entry_ids: list[str]) -> pb.WatchlistChanged:
    change = _change(deployment_id)
    change.deleted.entry_ids.extend(entry_ids)
    return change


def dropped(deployment_id: str, reason: str) -> pb.WatchlistChanged:
    change = _change(deployment_id)
    change.dropped.reason = reason
    return change


def entries(change: pb.WatchlistChanged, data_key: bytes) -> list[Entry]:
    """The entries of an `upserted` change, unsealed (raises sealing.SealError with a wrong key)."""
    out = []
    for sealed in change.upserted.entries:
        plain = pb.WatchlistEntry()
        plain.ParseFromString(sealing.unseal(data_key, sealed, change.deployment_id))
        out.append(
            Entry(
                entry_id=plain.entry_id,
                vector=np.frombuffer(plain.vector, dtype="<f4").copy(),
                subject_id=plain.subject_id,
                category=plain.category,
                source_reference=plain.source_reference,
                approved_by=plain.approved_by,
                enrolled_at=plain.enrolled_at,
                image_sha256=plain.image_sha256,
                template_of=plain.template_of,
                reference_entry_id=plain.reference_entry_id,
            )
        )
    return out
