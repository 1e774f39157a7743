"""The force's LFR policy (deploy/policy.yaml): the closed lists and limits every deployment is
checked against. Loaded and validated when the service starts: a file that is missing, unreadable,
not YAML, or has an unknown, missing or out-of-range field stops it, with the field named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from lfr_platform.equity import EquityPolicy

_CODE = r"^[a-z][a-z0-9_]{0,63}$"
# A perceived group's code: letters, digits, _ and - (the IC codes are upper case: IC1, ..., IC9).
_GROUP = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
# Reference shares are rounded by whoever writes them: they must sum to 1 within this.
_SHARES_SUM_TOLERANCE = 0.005


# The shipped policy (deploy/policy.yaml, packaged beside this module).
SHIPPED = Path(__file__).with_name("policy.yaml")


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and the field."""


def _not_a_boolean(value: object) -> object:
    # YAML reads true/false, on/off and yes/no as booleans, and pydantic would take True as 1:
    # `max_false_alerts_per_deployment: on` would be a cap of 1 false alert, not no cap.
    if isinstance(value, bool):
        raise ValueError(
            f"a number is required, not the boolean {str(value).lower()} (YAML reads true, on and yes as booleans)"
        )
    return value


# A number of the policy: never a boolean. Every policy field refuses one (`_Strict`); the shares'
# values, inside a mapping, through this type.
Share = Annotated[float, BeforeValidator(_not_a_boolean)]


class _Strict(BaseModel):
    """No field of the policy is a boolean: a field given one is refused, named, not read as 0 or 1."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        return _not_a_boolean(value)


class PerceivedGroups(_Strict):
    """The closed lists an officer records a perceived sex and ethnicity from, with an adjudication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sex: tuple[str, ...] = Field(description="Perceived sex: the values an officer may record")
    ethnicity: tuple[str, ...] = Field(description="Perceived ethnicity (the UK's IC codes as shipped)")

    @field_validator("sex", "ethnicity")
    @classmethod
    def _groups(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if not re.match(_GROUP, v)]
        if bad:
            raise ValueError(f"groups are 1-32 letters, digits, _ or -: {bad}")
        if len(set(values)) != len(values):
            raise ValueError("a group is listed twice")
        return values


class Equity(_Strict):
    """The live equity monitor: false alerts per perceived group against a reference share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference_shares: dict[str, dict[str, Share]] = Field(
        description="Per dimension, each group's share of the reference population (the area's census): sums to 1"
    )
    p_value: float = Field(gt=0, lt=1, description="A group's exact binomial test below this is a disparity")
    min_false_alerts: int = Field(ge=1, le=100000, description="...once at least this many false alerts are tested")
    window_days: int = Field(ge=1, le=3650, description="The fleet's rolling window, in days of capture time")

    @field_validator("reference_shares")
    @classmethod
    def _shares(cls, shares: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for dimension, groups in shares.items():
            if not groups:
                raise ValueError(f"{dimension}: no group has a share (leave the dimension out instead)")
            out_of_range = {g: s for g, s in groups.items() if not 0 < s <= 1}
            if out_of_range:
                raise ValueError(f"{dimension}: shares are above 0 and at most 1: {out_of_range}")
            total = sum(groups.values())
            if abs(total - 1) > _SHARES_SUM_TOLERANCE:
                raise ValueError(f"{dimension}: the shares sum to {total:.4f}, not 1")
        return shares

    def as_policy(self) -> EquityPolicy:
        return EquityPolicy(
            reference_shares=self.reference_shares,
            p_value=self.p_value,
            min_false_alerts=self.min_false_alerts,
            window_days=self.window_days,
        )


_BUDGET = re.compile(r"^\s*(\d[\d,_]*(?:\.\d+)?)\s+in\s+(\d[\d,_]*(?:\.\d+)?)\s*$")


def _budget(value: object) -> float:
    """'1 in 6000' (or a number, 1/6000 written as a fraction above 0 and under 1) -> 1/6000."""
    if isinstance(value, bool) or value is None:
        raise ValueError("a rate is required, written '1 in N' (e.g. '1 in 6000': one false alert per N faces scanned)")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        match = _BUDGET.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a rate: write '1 in N' (e.g. '1 in 6000')")
        alerts, faces = (float(x.replace(",", "").replace("_", "")) for x in match.groups())
        if faces <= 0:
            raise ValueError(f"{value!r}: the number of faces must be above 0")
        rate = alerts / faces
    if not 0 < rate < 1:
        raise ValueError(
            f"{value!r} is {rate:g} false alerts per face: a budget is above 0 and under 1 (e.g. '1 in 6000')"
        )
    return rate


# The false-alert budget: false alerts per face scanned, parsed from "1 in N".
Budget = Annotated[float, BeforeValidator(_budget)]


class DeploymentPolicy(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[2]
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
    false_alert_budget: Budget = Field(
        description="The public's risk: at most this many false alerts per face scanned (per pass), e.g. '1 in 1000'; "
        "every deployment's threshold is derived from it"
    )
    max_false_alerts_per_deployment: float | None = Field(
        gt=0, description="At most this many predicted false alerts per deployment (None: no limit)"
    )
    min_margin: float = Field(
        ge=0, lt=1, description="An alert whose runner-up scores within this of it is held for a supervisor"
    )
    perceived_groups: PerceivedGroups = Field(description="What an officer may record of a person's perceived group")
    equity: Equity = Field(description="The equity monitor: reference shares, p-value, minimum count, window")

    @model_validator(mode="after")
    def _shares_of_listed_groups(self) -> DeploymentPolicy:
        lists = self.perceived_groups.model_dump()
        for dimension, shares in self.equity.reference_shares.items():
            if dimension not in lists:
                raise ValueError(f"equity.reference_shares.{dimension}: not a perceived dimension ({', '.join(lists)})")
            unlisted = sorted(set(shares) - set(lists[dimension]))
            if unlisted:
                raise ValueError(f"equity.reference_shares.{dimension}: {unlisted} not in perceived_groups.{dimension}")
        return self

    @field_validator("where", "categories", "image_sources", "legal_bases")
    @classmethod
    def _codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in values if not re.match(_CODE, v)]
        if bad:
            raise ValueError(f"codes are lower-case letters, digits and _: {bad}")
        if len(set(values)) != len(values):
            raise ValueError("a code is listed twice")
        return values

    def check_watchlist_log(self, retention_s: int, source: object) -> None:
        """Refuse (PolicyError) a policy the watchlist log cannot serve: its entries must outlive the
        longest deployment (a match replica started late rebuilds its watchlist from the log), and an
        entry enrolled compile_before_start_h before the window must still be on the log at its end."""
        retention = f"LFR_WATCHLIST_RETENTION_S={retention_s} s ({retention_s / 3600:g} h)"
        if self.max_duration_h * 3600 >= retention_s:
            raise PolicyError(
                f"the policy's max_duration_h ({self.max_duration_h:g} h, {source}) is not shorter than the watchlist "
                f"log's retention, {retention}: a match replica started late in a long deployment could not rebuild "
                "its watchlist (raise the retention or lower the longest deployment)"
            )
        kept_h = self.compile_before_start_h + self.max_duration_h
        if kept_h * 3600 >= retention_s:
            raise PolicyError(
                f"the policy's compile_before_start_h ({self.compile_before_start_h:g} h, {source}) plus its "
                f"max_duration_h ({self.max_duration_h:g} h) is {kept_h:g} h, not shorter than the watchlist log's "
                f"retention, {retention}: an entry enrolled that early would leave the log before its deployment "
                "ends (raise the retention or lower compile_before_start_h)"
            )

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
        if type(data.get("version")) is int and data["version"] == 1:
            raise PolicyError(
                f"policy file {path} is version 1: in version 2, max_false_alerts_per_faces: N became "
                "false_alert_budget: '1 in N', from which each deployment's threshold is derived "
                "(docs/deployments.md#the-operating-point); change both and set version: 2"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
            raise PolicyError(f"policy file {path}: {problems}") from exc
