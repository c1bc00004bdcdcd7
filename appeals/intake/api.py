"""The intake API under /api/v1: platforms send flagged items and appeals, and read cases back.

Thin views over `appeals.intake.services` (and `appeals.intake.bulk`). Every answer that is not
a success has the same shape, `{"errors": [{"field": ..., "problem": ...}]}`, whichever layer
found the problem: the token check, reading the body, validation (`appeals.intake.schemas`), or
the services. Bodies are read and validated here rather than by ninja so that the API and
`manage.py import_cases` name fields the same way; the OpenAPI document still describes them
with the same pydantic models.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from django.urls import reverse
from ninja import File, Form, NinjaAPI, Status, UploadedFile
from ninja.decorators import decorate_view
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from pydantic import Field

from appeals.models import ApiToken, Case

from . import bulk, tokens, uploads
from . import services as intake
from .answers import (
    BulkOut,
    CaseOut,
    CaseRef,
    ErrorsOut,
    _case_out,
    _case_ref,
    case_url,
)
from .schemas import AppealIn, FieldProblem, InvalidPayload, ItemIn, Strict, parse_payload

log = logging.getLogger(__name__)

# A single item or appeal is at most 100,000 characters of content; even written entirely as
# \\u escapes of astral characters that is well under 4 MiB. A bulk request is capped lower than
# 1,000 maximal items would need: send big items in smaller batches.
BODY_MAX_BYTES = 4 * 1024 * 1024
BULK_BODY_MAX_BYTES = 32 * 1024 * 1024
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


# --- Errors ----------------------------------------------------------------------------------


class ApiProblem(Exception):
    """An answer other than success, with the fields to name and any headers to send."""

    def __init__(self, status: int, field: str, problem: str, *, headers: dict | None = None):
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.problems = [{"field": field, "problem": problem}]
        self.headers = headers or {}


# --- Documentation of request bodies ---------------------------------------------------------


class BulkItemsIn(Strict):
    """The bulk request body (documentation only: each item is validated on its own)."""

    items: list[ItemIn] = Field(min_length=1, max_length=settings.BULK_INTAKE_MAX_ITEMS)


BODY_MODELS = (uploads.ItemWithMediaIn, AppealIn, BulkItemsIn)


def _documented_body(model: type[Strict]) -> dict:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


class IntakeAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any):
        schema = super().get_openapi_schema(**kwargs)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in BODY_MODELS:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        return schema


# --- Authentication --------------------------------------------------------------------------


def _unauthorized(problem: str) -> ApiProblem:
    return ApiProblem(401, "Authorization", problem, headers={"WWW-Authenticate": "Bearer"})


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`; the token stands for one platform."""

    def __call__(self, request: HttpRequest) -> ApiToken:
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise _unauthorized("is missing; send 'Authorization: Bearer <token>'")
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise _unauthorized("must be 'Bearer <token>'")
        return self.authenticate(request, raw.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        try:
            return tokens.authenticate_token(token)
        except tokens.TokenRefused as refused:
            raise _unauthorized(f"the token {refused}") from None


api = IntakeAPI(
    title="Appeals Copilot intake API",
    version="1",
    urls_namespace="api",
    auth=BearerToken(),
    description=(
        "Send flagged items and appeals in; read their cases back. Every error answer is "
        '`{"errors": [{"field": ..., "problem": ...}]}`.'
    ),
)


def _error_response(
    request: HttpRequest, status: int, problems: list[dict], headers: dict | None = None
) -> HttpResponse:
    response = api.create_response(request, {"errors": problems}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiProblem)
def _on_api_problem(request, exc: ApiProblem):
    return _error_response(request, exc.status, exc.problems, exc.headers)


@api.exception_handler(InvalidPayload)
def _on_invalid_payload(request, exc: InvalidPayload):
    return _error_response(request, exc.status, exc.problems)


@api.exception_handler(FieldProblem)
def _on_field_problem(request, exc: FieldProblem):
    return _error_response(request, exc.status, [exc.as_dict()])


@api.exception_handler(NinjaValidationError)
def _on_ninja_validation_error(request, exc: NinjaValidationError):
    # ninja validates only path and query parameters here; its locations start with the source.
    problems = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in {"path", "query", "body", "header", "form", "file"}:
            loc = loc[1:]
        problems.append(
            {"field": ".".join(loc) or "(request)", "problem": error.get("msg", "is invalid")}
        )
    return _error_response(request, 422, problems)


@api.exception_handler(AuthenticationError)
def _on_authentication_error(request, exc: AuthenticationError):
    return _error_response(
        request,
        401,
        [{"field": "Authorization", "problem": str(exc)}],
        {"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(HttpError)
def _on_http_error(request, exc: HttpError):
    return _error_response(request, exc.status_code, [{"field": "(request)", "problem": str(exc)}])


@api.exception_handler(Http404)
def _on_not_found(request, exc: Http404):
    return _error_response(request, 404, [{"field": "(path)", "problem": str(exc) or "not found"}])


@api.exception_handler(RequestDataTooBig)
def _on_too_big(request, exc: RequestDataTooBig):
    return _error_response(request, 413, [{"field": "(body)", "problem": "is too large"}])


@api.exception_handler(UnreadablePostError)
def _on_unreadable(request, exc: UnreadablePostError):
    return _error_response(
        request, 400, [{"field": "(body)", "problem": "could not be read in full"}]
    )


@api.exception_handler(Exception)
def _on_unexpected(request, exc: Exception):
    log.exception("Unexpected error in %s %s", request.method, request.path)
    return _error_response(
        request, 500, [{"field": "(server)", "problem": "an unexpected error; it has been logged"}]
    )


# --- Reading bodies --------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _json_body(request: HttpRequest, *, max_bytes: int | None = None) -> Any:
    """The request body as parsed JSON, or an `ApiProblem` naming what is wrong with it."""
    max_bytes = max_bytes or BODY_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise ApiProblem(
            413, "(body)", f"is {declared:,} bytes; at most {max_bytes:,} are accepted"
        )
    raw = request.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiProblem(413, "(body)", f"is over {max_bytes:,} bytes")
    if not raw.strip():
        raise ApiProblem(400, "(body)", "is empty; send a JSON object")
    if request.content_type != "application/json":
        given = request.content_type or "none"
        raise ApiProblem(415, "Content-Type", f"must be application/json, not {given}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiProblem(400, "(body)", "is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ApiProblem(
            400,
            "(body)",
            f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except (ValueError, RecursionError) as error:
        # NaN/Infinity, integers too long to convert, or nesting too deep to parse.
        problem = "nests too deeply" if isinstance(error, RecursionError) else str(error)
        raise ApiProblem(400, "(body)", f"is not acceptable JSON: {problem}") from None


# --- Endpoints -------------------------------------------------------------------------------

# The error answers each endpoint can give, for the OpenAPI document.
ERRORS = {frozenset({400, 401, 405, 409, 413, 415, 422}): ErrorsOut}
READ_ERRORS = {frozenset({401, 404, 405, 422}): ErrorsOut}


def _media_body_limit() -> int:
    """A single item's body may also carry its image or video as base64 (a third larger)."""
    return BODY_MAX_BYTES + uploads.upload_limit() * 4 // 3 + 4


@api.post(
    "/items",
    response={200: CaseRef, 201: CaseRef, **ERRORS},
    openapi_extra=_documented_body(uploads.ItemWithMediaIn),
    summary="Send a flagged item",
)
def post_item(request):
    """Queue a flagged item for review. 201 with the new case; 200 with the existing case when
    the same `external_id` comes again with the same body; 409 when it comes with another.
    An image or video may come inline as `media_base64` (see also `/items/upload`)."""
    body = _json_body(request, max_bytes=_media_body_limit())
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not (isinstance(body, dict) and body.get("media_base64")) and declared.isdigit():
        if int(declared) > BODY_MAX_BYTES:  # the larger limit is for media only
            raise ApiProblem(
                413,
                "(body)",
                f"is {int(declared):,} bytes; at most {BODY_MAX_BYTES:,} without media",
            )
    upload = uploads.split_payload(parse_payload(uploads.ItemWithMediaIn, body))
    if upload.media is None:
        result = intake.receive_item(platform=request.auth.platform, payload=upload.payload)
    else:
        result = uploads.receive_item_with_media(platform=request.auth.platform, upload=upload)
    return Status(201 if result.created else 200, _case_ref(result.case))


def _upload_guard(view):
    """Before ninja reads a multipart body: refuse one that says it is too big, or is not
    multipart at all, with the API's own error shape."""

    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if request.method == "POST":  # who is asking comes first, as on every other endpoint
            try:
                BearerToken()(request)
            except ApiProblem as problem:
                return _error_response(request, problem.status, problem.problems, problem.headers)
        limit = BODY_MAX_BYTES + uploads.upload_limit()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if request.method == "POST" and declared > limit:
            problem = f"is {declared:,} bytes; at most {limit:,} are accepted"
            return _error_response(request, 413, [{"field": "(body)", "problem": problem}])
        if request.method == "POST" and request.content_type != "multipart/form-data":
            given = request.content_type or "none"
            problem = f"must be multipart/form-data, not {given}"
            return _error_response(request, 415, [{"field": "Content-Type", "problem": problem}])
        return view(request, *args, **kwargs)

    return guarded


@api.post(
    "/items/upload",
    response={200: CaseRef, 201: CaseRef, **ERRORS},
    summary="Send a flagged item with its image or video as a file",
)
@decorate_view(_upload_guard)
def post_item_upload(request, media: File[UploadedFile], item: Form[str]):
    """multipart/form-data: `item` is the item as JSON (the same fields as `/items`), `media` the
    image or video file. What the file is is read from its bytes, not its name or its part's
    Content-Type. Answers as `/items` does."""
    try:
        raw = json.loads(item, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise ApiProblem(422, "item", f"is not valid JSON: {error}") from None
    payload = parse_payload(ItemIn, raw)
    data = media.read(uploads.upload_limit() + 1)
    if len(data) > uploads.upload_limit():
        raise uploads.too_large("media", media.size or len(data))
    upload = uploads.with_media(payload, data, field="media")
    result = uploads.receive_item_with_media(platform=request.auth.platform, upload=upload)
    return Status(201 if result.created else 200, _case_ref(result.case))


def _bulk_items(body: Any) -> list:
    if not isinstance(body, dict):
        raise ApiProblem(422, "(body)", 'must be a JSON object: {"items": [...]}')
    unknown = sorted(set(body) - {"items"})
    if unknown:
        raise ApiProblem(422, unknown[0], "is not a known field")
    items = body.get("items")
    if items is None:
        raise ApiProblem(422, "items", "is required")
    if not isinstance(items, list):
        raise ApiProblem(422, "items", "must be a list of items")
    if not items:
        raise ApiProblem(422, "items", "must contain at least one item")
    limit = settings.BULK_INTAKE_MAX_ITEMS
    if len(items) > limit:
        raise ApiProblem(413, "items", f"has {len(items):,} items; at most {limit:,} per request")
    return items


def _bulk_result(outcome: bulk.BulkOutcome, raw: Any) -> dict:
    external_id = outcome.external_id
    if external_id is None and isinstance(raw, dict) and isinstance(raw.get("external_id"), str):
        external_id = raw["external_id"][:200]
    result = {"index": outcome.index, "external_id": external_id, "code": outcome.status}
    if outcome.case is not None and outcome.status in (200, 201):
        result.update(
            status="created" if outcome.status == 201 else "existing",
            id=outcome.case.id,
            url=case_url(outcome.case.id),
        )
    else:
        result.update(status="failed", errors=list(outcome.problems))
    return result


@api.post(
    "/items/bulk",
    response={200: BulkOut, **ERRORS},
    exclude_none=True,
    openapi_extra=_documented_body(BulkItemsIn),
    summary="Send many flagged items",
)
def post_items_bulk(request):
    """Queue up to 1,000 flagged items. Each item is answered on its own in `results`, in order:
    a bad item is refused without touching the others, and a good one is written whole."""
    raw_items = _bulk_items(_json_body(request, max_bytes=BULK_BODY_MAX_BYTES))
    payloads: list[ItemIn | None] = []
    invalid: dict[int, list[dict]] = {}
    for index, raw in enumerate(raw_items):
        try:
            payloads.append(parse_payload(ItemIn, raw))
        except InvalidPayload as error:
            payloads.append(None)
            invalid[index] = [
                {**p, "field": "(item)"} if p["field"] == "(body)" else p for p in error.problems
            ]
    outcomes = bulk.receive_items_bulk(
        platform=request.auth.platform, payloads=payloads, invalid=invalid
    )
    results = [_bulk_result(outcome, raw_items[outcome.index]) for outcome in outcomes]
    counts = {"created": 0, "existing": 0, "failed": 0}
    for result in results:
        counts[result["status"]] += 1
    return {"results": results, **counts}


@api.post(
    "/appeals",
    response={200: CaseRef, 201: CaseRef, **ERRORS},
    openapi_extra=_documented_body(AppealIn),
    summary="Send an appeal",
)
def post_appeal(request):
    """Queue an appeal against a decision on an item. If the item is not here yet, send its
    `content` and `policy` too. Appeals after the policy's appeal window are refused."""
    payload = parse_payload(AppealIn, _json_body(request))
    result = intake.receive_appeal(platform=request.auth.platform, payload=payload)
    return Status(201 if result.created else 200, _case_ref(result.case))


@api.get("/cases/{case_id}", response={200: CaseOut, **READ_ERRORS}, summary="Read a case")
def get_case(request, case_id: int):
    """A case of your platform: where it stands, the model's draft once there is one, and the
    final decision once made."""
    case = (
        Case.objects.select_related("item", "policy_version__policy")
        .filter(platform=request.auth.platform, id=case_id)
        .first()
    )
    if case is None:
        raise ApiProblem(404, "case_id", f"no case {case_id} for this platform")
    return _case_out(case)


# --- Everything else: JSON answers for wrong methods and unknown paths -------------------------


def _not_allowed(request, allowed: str):
    raise ApiProblem(
        405,
        "(method)",
        f"{request.method} is not allowed here; use {allowed}",
        headers={"Allow": allowed},
    )


@api.api_operation(
    [m for m in ALL_METHODS if m != "POST"], "/items", auth=None, include_in_schema=False
)
def items_other_methods(request):
    _not_allowed(request, "POST")


@api.api_operation(
    [m for m in ALL_METHODS if m != "POST"], "/items/bulk", auth=None, include_in_schema=False
)
def items_bulk_other_methods(request):
    _not_allowed(request, "POST")


@api.api_operation(
    [m for m in ALL_METHODS if m != "POST"], "/items/upload", auth=None, include_in_schema=False
)
def items_upload_other_methods(request):
    _not_allowed(request, "POST")


@api.api_operation(
    [m for m in ALL_METHODS if m != "POST"], "/appeals", auth=None, include_in_schema=False
)
def appeals_other_methods(request):
    _not_allowed(request, "POST")


@api.api_operation(
    [m for m in ALL_METHODS if m != "GET"], "/cases/{case_id}", auth=None, include_in_schema=False
)
def case_other_methods(request, case_id: str):
    _not_allowed(request, "GET")


@api.api_operation(ALL_METHODS, "/{path:rest}", auth=None, include_in_schema=False)
def unknown_path(request, rest: str):
    raise ApiProblem(
        404, "(path)", f"{request.path} is not part of this API; see {reverse('api:openapi-json')}"
    )
