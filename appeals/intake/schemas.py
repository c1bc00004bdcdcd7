"""The shapes of what platforms send in. Shared by the API and `manage.py import_cases`.

Validation problems come back as (field, problem) pairs so every caller can name the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

# How deep `metadata` may nest and how long it may be once encoded: enough for any real label set,
# small enough that one item cannot make the database or the JSON encoder work hard.
METADATA_MAX_DEPTH = 20
METADATA_MAX_CHARS = 64_000

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OptionalId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1, max_length=80)]
RuleId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def _content_field(description: str):
    return Field(min_length=1, max_length=settings.CONTENT_MAX_CHARS, description=description)


def _check_storable_text(value: str) -> None:
    # PostgreSQL refuses NUL in text and jsonb, and no database encodes an unpaired surrogate
    # (JSON allows both as \u escapes): refuse them here rather than fail at INSERT.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain unpaired surrogate characters") from None


def _check_storable(value: Any, depth: int = 0) -> None:
    if depth > METADATA_MAX_DEPTH:
        raise ValueError(f"must not nest more than {METADATA_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_storable_text(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must not contain NaN or infinite numbers")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable_text(str(key))
            _check_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_storable(item, depth + 1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        _check_storable(value)
        return value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return value
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2026-11-23T08:00:00Z")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1970 <= utc.year <= 9000:
        raise ValueError("must be between the years 1970 and 9000")
    # In UTC: ISO 8601 allows offsets up to ±23:59, PostgreSQL only up to ±15:59.
    return utc


class ItemIn(Strict):
    external_id: ExternalId = Field(description="Your id for the item; unique per platform.")
    policy: Slug = Field(description="Slug of the policy to review the item under.")
    content: str = _content_field("The content under review, as text (at most 100,000 characters).")
    content_type: Literal["text", "image", "video", "audio", "other"] = "text"
    author_id: OptionalId = ""
    reporter_id: OptionalId = ""
    source: Literal["user_report", "trusted_flagger", "automated", "own_initiative"] = "user_report"
    flagged_at: dt.datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    _flagged_at_aware = field_validator("flagged_at")(_aware)

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_storable(value)  # depth first, so the encoder below never recurses too far
        if len(json.dumps(value, ensure_ascii=False)) > METADATA_MAX_CHARS:
            raise ValueError(f"must be at most {METADATA_MAX_CHARS:,} characters as JSON")
        return value

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class OriginalDecisionIn(Strict):
    outcome: Literal["remove", "restrict", "label", "none"] = Field(
        description="What was done to the item: remove, restrict, label, or none."
    )
    rule_ids: list[RuleId] = Field(default_factory=list, max_length=50)
    decided_at: dt.datetime

    _decided_at_aware = field_validator("decided_at")(_aware)


class AppealIn(Strict):
    external_id: ExternalId
    item_external_id: ExternalId
    statement: str = Field(
        min_length=1, max_length=20_000, description="The appellant's own words."
    )
    original_decision: OriginalDecisionIn
    appellant_id: OptionalId = ""
    # Needed only when the item is not in the system yet.
    content: str | None = Field(default=None, min_length=1, max_length=settings.CONTENT_MAX_CHARS)
    policy: Slug | None = None
    content_type: Literal["text", "image", "video", "audio", "other"] = "text"
    author_id: OptionalId = ""

    @field_validator("statement", "content")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value


class FieldProblem(Exception):
    """A problem with one field of the input, named so the caller can fix it."""

    def __init__(self, field: str, problem: str, *, status: int = 422):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.status = status

    def as_dict(self) -> dict:
        return {"field": self.field, "problem": self.problem}


def problems_from_validation_error(error: ValidationError, *, prefix: str = "") -> list[dict]:
    problems = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(body)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "is not a known field"
        elif err["type"] == "missing":
            message = "is required"
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):
            message = str(err["ctx"]["error"])  # our own words, without pydantic's "Value error, "
        problems.append({"field": f"{prefix}{loc}", "problem": message})
    return problems


def parse_payload(model: type[Strict], data: Any) -> Strict:
    """Validate `data`; raise `InvalidPayload` listing every problem."""
    if not isinstance(data, dict):
        raise InvalidPayload([{"field": "(body)", "problem": "must be a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidPayload(problems_from_validation_error(error)) from None


class InvalidPayload(Exception):
    def __init__(self, problems: list[dict], status: int = 422):
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems
        self.status = status


def request_fingerprint(payload: BaseModel) -> str:
    """A hash of the validated request, for telling a retry from a conflicting resend."""
    canonical = json.dumps(payload.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
