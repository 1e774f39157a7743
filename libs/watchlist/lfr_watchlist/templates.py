"""A subject enrolled from several photos also gets one template fused from them (gallery fusion).

Measured with `lfr eval --gallery 2` on LFW (docs/decisions/0017): a subject's photos kept as separate
entries found 51.6% of single-photo searches at the calibrated threshold, the photos and their fused
template together 66.5%, at the same false-match rate per comparison. Averaging photos of several
occasions cancels part of what each owes to its day (light, age, camera); the photo entries stay, for
a face that resembles one photo much more than the others.

The deployments service builds the templates when an officer reviews the watchlist (nothing is
matched before), from exactly the photos reviewed, and sends them on the watchlist log like any
entry; `lfr eval --gallery` builds them with this same function.
"""

from __future__ import annotations

import uuid

import numpy as np

from lfr_faces.fusion import fuse
from lfr_watchlist import Entry

# A template's entry id follows from its deployment and subject: building again replaces it.
_NAMESPACE = uuid.UUID("6f1d3c2e-8d5b-4b0e-9a57-0c1f6d1e7a42")


def most_entries(images: int) -> int:
    """The most entries a watchlist of `images` photos holds with its templates (one per subject of two
    photos or more): what a prediction of false alerts counts comparisons against."""
    return images + images // 2


def template_id(deployment_id: str, subject_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{deployment_id}/{subject_id}"))


def subject_templates(deployment_id: str, entries: list[Entry]) -> list[Entry]:
    """One template per subject with two or more photo entries among `entries` (templates among them
    are ignored): the mean of its photos' unit vectors, normalised again; its reference the subject's
    first photo enrolled."""
    photos: dict[str, list[Entry]] = {}
    for entry in entries:
        if not entry.template_of:
            photos.setdefault(entry.subject_id, []).append(entry)
    templates = []
    for subject_id, own in sorted(photos.items()):
        if len(own) < 2:
            continue
        own.sort(key=lambda e: (e.enrolled_at, e.entry_id))
        templates.append(
            Entry(
                entry_id=template_id(deployment_id, subject_id),
                vector=fuse(np.stack([e.vector for e in own]), [1.0] * len(own)),
                subject_id=subject_id,
                category=own[-1].category,
                source_reference=f"template of {len(own)} photos",
                approved_by="",
                enrolled_at=own[-1].enrolled_at,
                image_sha256="",
                template_of=len(own),
                reference_entry_id=own[0].entry_id,
            )
        )
    return templates
