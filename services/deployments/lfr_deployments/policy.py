"""The force's LFR policy (deploy/policy.yaml): the closed lists and limits every deployment is
checked against. Loaded and validated when the service starts: a file that is missing, unreadable,
not YAML, or has an unknown, missing or out-of-range field stops it, with the field named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_CODE = r"^[a-z][a-z0-9_]{0,63}$"


# The shipped policy (deploy/policy.yaml, packaged beside this module).
SHIPPED = Path(__file__).with_name("policy.yaml")


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and the field."""


class DeploymentPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    where: tuple[str, ...] = Field(min_length=1, description="Where LFR may be used: each deployment names one")
    max_duration_h: float = Field(gt=0, le=24 * 31, description="Longest deployment, planned start to end")
    ratify_within_h: float = Field(gt=0, le=24 * 7, description="An urgent deployment is ratified within this")
    manifest_retention_days: float = Field(
        gt=0, le=3650, description="How long a closed deployment's ids-only manifest is kept (subject access)"
    )
    categories: tuple[str, ...] = Field(min_length=1, description="Who may be on a watchlist: each entry names one")
    image_sources: tuple[str, ...] = Field(min_length=1, description="Where a watchlist image may come from")
    legal_bases: tuple[str, ...] = Field(min_length=1, description="The legal bases an entry may be held under")
    max_image_age_years: float = Field(gt=0, le=100, description="An older image needs an age override reason")
    compile_before_start_h: float = Field(
        gt=0, le=24 * 90, description="A watchlist is enrolled no earlier than this before the window"
    )
    max_false_alerts_per_faces: int | None = Field(
        gt=0, description="At most 1 predicted false alert in this many faces scanned (None: no limit)"
    )
    max_false_alerts_per_deployment: float | None = Field(
        gt=0, description="At most this many predicted false alerts per deployment (None: no limit)"
    )
    min_margin: float = Field(
        ge=0, lt=1, description="An alert whose runner-up scores within this of it is held for a supervisor"
    )

    @field_validator("where", "categories", "image_sources", "legal_bases")
    @classmethod
    def _codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if not re.match(_CODE, v)]
        if bad:
            raise ValueError(f"codes are lower-case letters, digits and _: {bad}")
        if len(set(values)) != len(values):
            raise ValueError("a code is listed twice")
        return values

    @classmethod
    def load(cls, path: Path) -> DeploymentPolicy:
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise PolicyError(
                f"policy file {path} cannot be read ({exc.strerror}): set LFR_DEPLOYMENTS_POLICY_FILE"
            ) from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"policy file {path} is not YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise PolicyError(f"policy file {path} must be a mapping of fields (see deploy/policy.yaml)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
            raise PolicyError(f"policy file {path}: {problems}") from exc
