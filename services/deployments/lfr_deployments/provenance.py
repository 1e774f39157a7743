"""A watchlist image's provenance, checked against the force's policy before any pixel is decoded,
free of I/O (the College of Policing's APP on watchlists: each entry's category, image source, legal
basis and the image's date, approved; a child's by a second person).

Every check names the field and what to do; a refusal is one of the enrolment's rejection reasons
(`invalid_item`, or `image_too_old` for a photo older than the policy allows without a reason).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from lfr_deployments.lifecycle import valid_subject_id
from lfr_deployments.policy import DeploymentPolicy
from lfr_faces.enrolment import EnrolRejected

# Each field's length limit: free text goes into Redis, the audit trail (kept for good) and the manifest.
LIMITS = {
    "category": 64,
    "image_source": 64,
    "legal_basis": 64,
    "image_date": 10,
    "source_reference": 512,
    "approved_by": 200,
    "second_approver": 200,
    "age_override_reason": 1000,
}
REQUIRED = ("subject_id", "category", "image_source", "legal_basis", "image_date", "source_reference", "approved_by")
# A year of the policy's max_image_age_years.
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Provenance:
    subject_id: str
    category: str
    image_source: str
    legal_basis: str
    image_date: str  # YYYY-MM-DD
    source_reference: str
    approved_by: str
    minor: bool = False
    second_approver: str = ""
    age_override_reason: str = ""  # set only when the photo is older than the policy allows

    def manifest_row(self) -> dict:
        """What the ids-only manifest keeps of it (no image, no template)."""
        return {
            "subject_id": self.subject_id,
            "category": self.category,
            "image_source": self.image_source,
            "legal_basis": self.legal_basis,
            "image_date": self.image_date,
            "minor": self.minor,
            "source_reference": self.source_reference,
            "approved_by": self.approved_by,
            "second_approver": self.second_approver,
        }


def pseudonym(key: bytes, subject_id: str) -> str:
    """A subject as the audit trail names it: HMAC-SHA256 of the id under its deployment's pseudonym
    key (80 bits, hex). While the key lives (as long as the deployment's manifest) the force can link
    an audit entry to its subject by computing this again; once the key expires with the manifest, no
    one can, and the entries, their hashes and signatures are unchanged (docs/audit.md)."""
    return "subj-" + hmac.new(key, subject_id.encode(), hashlib.sha256).hexdigest()[:20]


def audit_row(provenance: Provenance, subject: str) -> dict:
    """What the audit trail (kept for good) records of an enrolled image: its manifest row without
    the subject id and the image's source reference (both identify the person, and the manifest keeps
    them for its retention only), with the subject's pseudonym."""
    row = provenance.manifest_row()
    del row["subject_id"], row["source_reference"]
    return {"subject": subject, **row}


def checked(image, policy: DeploymentPolicy, today: dt.date) -> Provenance:
    """The provenance of a WatchlistImage, or EnrolRejected naming the field."""
    values = {name: getattr(image, name).strip() for name in (*REQUIRED, "second_approver", "age_override_reason")}
    missing = [name for name in REQUIRED if not values[name]]
    if missing:
        raise EnrolRejected(
            "invalid_item", f"missing {', '.join(missing)}: every image needs its provenance (docs/deployments.md)"
        )
    if not valid_subject_id(values["subject_id"]):
        raise EnrolRejected("invalid_item", "subject_id must be 1-128 letters, digits or ._@:-")
    for name, limit in LIMITS.items():
        if len(values[name]) > limit or not values[name].isprintable():
            raise EnrolRejected(
                "invalid_item", f"{name} must be at most {limit} printable characters (it is {len(values[name])})"
            )
    for name, allowed in (
        ("category", policy.categories),
        ("image_source", policy.image_sources),
        ("legal_basis", policy.legal_bases),
    ):
        if values[name] not in allowed:
            raise EnrolRejected(
                "invalid_item", f"{name} {values[name]!r} is not one of the policy's: {', '.join(allowed)}"
            )
    try:
        taken = dt.date.fromisoformat(values["image_date"])
    except ValueError:
        raise EnrolRejected(
            "invalid_item", f"image_date must be a date, YYYY-MM-DD (it is {values['image_date']!r})"
        ) from None
    if taken > today + dt.timedelta(days=1):  # a day's grace for time zones
        raise EnrolRejected("invalid_item", f"image_date {taken} is in the future")
    if image.minor:
        if not values["second_approver"]:
            raise EnrolRejected("invalid_item", "a minor's image needs a second approver (second_approver)")
        if values["second_approver"].casefold() == values["approved_by"].casefold():
            raise EnrolRejected("invalid_item", "a minor's second approver must be another person than approved_by")
    years = (today - taken).days / YEAR_DAYS
    old = years > policy.max_image_age_years
    if old and not values["age_override_reason"]:
        raise EnrolRejected(
            "image_too_old",
            f"taken {taken}, {years:.1f} years ago; the policy allows {policy.max_image_age_years:g} years "
            "(max_image_age_years): use a recent photo, or give age_override_reason (audited)",
        )
    return Provenance(
        subject_id=values["subject_id"],
        category=values["category"],
        image_source=values["image_source"],
        legal_basis=values["legal_basis"],
        image_date=taken.isoformat(),
        source_reference=values["source_reference"],
        approved_by=values["approved_by"],
        minor=bool(image.minor),
        second_approver=values["second_approver"] if image.minor else "",
        age_override_reason=values["age_override_reason"] if old else "",
    )
