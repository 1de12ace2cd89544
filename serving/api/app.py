"""The read API: FastAPI over a score reader (the Parquet store or a database sink), with API keys.

`create_app(reader, keys, action_policy)`: `reader` has the read methods of `serving.sink.ScoreSink`
plus `read_scores_page` and `customer_history`; `keys` is an `ApiKeys`; `action_policy` the defaults
of /v1/actions (serving/api/insights.py holds the changes, actions and accounts routes). Every route is GET and read
only; every route but /healthz and the OpenAPI pages needs a key in a header. Inputs are checked
before they reach the reader, so bad ids and parameters get a 400 or 404 in the one error shape
(serving/api/responses.py), and anything unexpected a generic 500 (logged, never shown).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from serving.actions import ActionPolicy
from serving.api.keys import KEY_PREFIX, ApiKeys
from serving.api.responses import Json, error, records
from serving.segments import SEGMENTS, TIERS

logger = logging.getLogger(__name__)

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_ID_CHARS = 200
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Query parameter names under which clients put keys; any value that looks like a key counts too.
KEY_PARAMETER_NAMES = {"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key", "authorization", "auth"}
OPEN_PATHS = {"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}

NUMBER_FIELDS = ["p_churn", "expected_revenue", "expected_margin", "cost_to_serve", "net_value", "clv", "value_p10", "value_p90"]
RUN_FIELDS = ["run_id", "as_of", "churn_model_version", "value_model_version", "churn_mlflow_run_id", "value_mlflow_run_id",
              "data_hash", "score_rows", "explanation_rows", "published_at", "extra"]
PAGE_COLUMNS = ["customer_id", "run_id", "as_of", *NUMBER_FIELDS, "value_tier", "segment"]
HISTORY_COLUMNS = ["run_id", "as_of", *NUMBER_FIELDS, "value_tier", "segment", "churn_model_version", "value_model_version"]

Lang = Literal["en", "zh"]


class ApiError(Exception):
    """A refusal with its status, code and one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


UNAUTHORIZED = ApiError(401, "unauthorized", "a valid API key is required in the Authorization: Bearer or X-API-Key header")


def create_app(reader: Any, keys: ApiKeys, action_policy: ActionPolicy = ActionPolicy()) -> FastAPI:
    """The read API over `reader`, accepting the active keys of `keys`."""
    app = FastAPI(title="custscore read API", version="1", description=_DESCRIPTION, debug=False)
    app.add_middleware(GetOnlyWithoutKeysInUrl)
    _add_error_handlers(app)

    @app.get("/healthz", tags=["health"], summary="Liveness (no key needed)")
    def healthz() -> Json:
        return Json({"status": "ok"})

    app.include_router(_v1_router(reader, _key_check(keys)))
    from serving.api.insights import insights_router  # it uses this module's checks

    app.include_router(insights_router(reader, action_policy), dependencies=[Depends(_key_check(keys))])
    return app


# ---------------------------------------------------------------------- keys

_x_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from `custscore api keys create`")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")


def _key_check(keys: ApiKeys) -> Callable[..., Awaitable[str]]:
    async def require_key(x_api_key: Annotated[str | None, Depends(_x_api_key)],
                          bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        presented = x_api_key or (bearer.credentials if bearer else None)
        # A key seen before is answered on the event loop; a new one costs a scrypt, off the loop.
        name = keys.remembered(presented) or await run_in_threadpool(keys.verify, presented)
        if name is None:
            raise UNAUTHORIZED
        return name

    return require_key


class GetOnlyWithoutKeysInUrl:
    """Refuses, before routing: a key in the query string (400; the URL is never logged) and any method but GET (405)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = None
        if _key_in_query(scope.get("query_string", b"")):
            refusal = error(400, "key_in_query", "API keys are accepted only in a header (Authorization: Bearer or X-API-Key), "
                                                 "never in the URL; a key sent in a URL may be in proxy logs: revoke it and create a new one")
        elif scope["method"] != "GET":
            refusal = error(405, "method_not_allowed", f"{scope['method']} is not allowed: the API is read only, use GET",
                            headers={"Allow": "GET"})
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)


def _key_in_query(raw: bytes) -> bool:
    if not raw:
        return False
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return any(name.lower() in KEY_PARAMETER_NAMES or value.startswith(KEY_PREFIX) for name, value in pairs)


# ---------------------------------------------------------------------- errors


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> Json:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Json:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = "no such endpoint; see /docs" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Json:
        return error(400, "bad_request", "; ".join(_problem(e) for e in exc.errors()[:5]))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Json:
        # The path only: the query string is the client's and headers hold the key.
        logger.error("internal error answering GET %s", request.url.path, exc_info=exc)
        return error(500, "internal", "internal error; the server log has the details")


def _problem(detail: dict) -> str:
    """One validation problem without the value sent (it may be 10 KB or hold control characters)."""
    where = " ".join(str(p) for p in detail.get("loc", ()))
    return f"{where}: {detail.get('msg', 'invalid')}"


# ---------------------------------------------------------------------- checks of inputs


def _customer_id(value: str) -> str:
    if not value or len(value) > MAX_ID_CHARS or _CONTROL.search(value):
        raise ApiError(400, "bad_customer_id", f"a customer id has 1 to {MAX_ID_CHARS} characters and no control characters")
    return value


def _run_id(value: str | None) -> str | None:
    if value is not None and not RUN_ID.match(value):
        raise ApiError(400, "bad_run_id", "a run id has 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


def _finite(value: float | None, name: str, low: float | None = None, high: float | None = None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" between {low} and {high}" if low is not None and high is not None else ""
        raise ApiError(400, "bad_request", f"query {name}: must be a finite number{bounds}")
    return value


def _reading(read: Callable[[], Any]) -> Any:
    """Call the reader; an unknown run (LookupError) is a 404."""
    try:
        return read()
    except LookupError as exc:
        raise ApiError(404, "run_not_found", _first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else "not found"
    # The sinks' messages name the store's folder or the database (user, host, port): not the client's business.
    return re.sub(r"^(/\S*|PostgreSQL \S+): ", "", text)


# ---------------------------------------------------------------------- cursors


def _filters_digest(*values: Any) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def encode_cursor(run_id: str, after: str, digest: str) -> str:
    body = json.dumps({"v": 1, "run": run_id, "after": after, "f": digest}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, digest: str) -> tuple[str, str]:
    """(run_id, after_customer_id) of a cursor made for the same filters, or a 400."""
    bad = ApiError(400, "bad_cursor", "the cursor is not one this API gave for these filters; start again without a cursor")
    if len(cursor) > 2 * MAX_ID_CHARS + 400:
        raise bad
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(body, dict) or body.get("v") != 1 or body.get("f") != digest:
        raise bad
    run_id, after = body.get("run"), body.get("after")
    if not isinstance(run_id, str) or not isinstance(after, str) or not RUN_ID.match(run_id):
        raise bad
    try:
        return run_id, _customer_id(after)
    except ApiError as exc:
        raise bad from exc


# ---------------------------------------------------------------------- routes


CustomerId = Annotated[str, Path(description="The customer's id as in the input data", max_length=10_000)]
RunIdQuery = Annotated[str | None, Query(description="A published run (default: the latest)", max_length=10_000)]


def _v1_router(reader: Any, require_key: Callable[..., str]) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
    reads_from_memory = bool(getattr(reader, "reads_from_memory", False))

    @router.get("/runs", tags=["runs"], summary="Published runs, oldest first")
    def list_runs() -> Json:
        runs = records(_reading(reader.list_runs), RUN_FIELDS)
        return Json({"runs": runs, "latest_run_id": runs[-1]["run_id"] if runs else None})

    @router.get("/runs/{run_id}", tags=["runs"], summary="A run's metadata and its segment and value-tier summary")
    def get_run(run_id: Annotated[str, Path(max_length=10_000)]) -> Json:
        _run_id(run_id)
        meta = _reading(lambda: reader.run_metadata(run_id))
        summary = _reading(lambda: reader.read_summary(run_id))
        run = {k: v for k, v in (meta.model_dump(mode="json") if hasattr(meta, "model_dump") else dict(meta)).items()
               if k in RUN_FIELDS}
        columns = ["group", "label_en", "label_zh", "customers", "share_customers", "current_value", "share_current_value",
                   "predicted_value", "share_predicted_value", "mean_p_churn"]
        return Json({"run": run,
                     "segments": records(summary[summary["group_by"] == "segment"], columns),
                     "value_tiers": records(summary[summary["group_by"] == "value_tier"], columns)})

    @router.get("/customers/{customer_id}", tags=["customers"],
                summary="A customer's latest score, value tier, segment and reasons")
    async def get_customer(customer_id: CustomerId, lang: Lang = "en", run_id: RunIdQuery = None) -> Json:
        _customer_id(customer_id)
        _run_id(run_id)
        columns = ["customer_id", "run_id", "as_of", *NUMBER_FIELDS, "value_tier", "segment", f"segment_label_{lang}",
                   "segment_reason", f"reason_text_{lang}", "churn_model_version", "value_model_version"]
        def read():
            return _reading(lambda: reader.read_scores(run_id=run_id, customer_id=customer_id, columns=columns))

        # A reader answering from memory in about a millisecond is called on the event loop (a thread hop
        # costs as much as the read); one that waits on I/O (a database) runs in the thread pool.
        frame = read() if reads_from_memory else await run_in_threadpool(read)
        if frame.empty:
            raise ApiError(404, "customer_not_found", "no score for this customer in that run")
        row = records(frame.head(1))[0]
        row["segment_label"] = row.pop(f"segment_label_{lang}")
        row["reasons"] = row.pop(f"reason_text_{lang}")
        row["lang"] = lang
        return Json(row)

    @router.get("/customers/{customer_id}/history", tags=["customers"], summary="A customer's score in every run, oldest first")
    def get_history(customer_id: CustomerId) -> Json:
        _customer_id(customer_id)
        frame = _reading(lambda: reader.customer_history(customer_id, columns=HISTORY_COLUMNS))
        if frame.empty:
            raise ApiError(404, "customer_not_found", "no published run holds this customer")
        return Json({"customer_id": customer_id, "runs": records(frame, HISTORY_COLUMNS)})

    @router.get("/segments/{segment}/customers", tags=["segments"],
                summary="The customers of a segment, in customer id order, a page at a time")
    def get_segment(segment: Annotated[str, Path(max_length=10_000)],
                    tier: Annotated[str | None, Query(max_length=10_000, description=f"one of {', '.join(TIERS)}")] = None,
                    min_value: Annotated[float | None, Query(description="lowest CLV")] = None,
                    min_p_churn: Annotated[float | None, Query(description="lowest churn probability, 0 to 1")] = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                    cursor: Annotated[str | None, Query(max_length=10_000, description="next_cursor of the page before")] = None,
                    run_id: RunIdQuery = None) -> Json:
        if segment not in SEGMENTS:
            raise ApiError(404, "segment_not_found", f"no segment of that name; segments: {', '.join(SEGMENTS)}")
        if tier is not None and tier not in TIERS:
            raise ApiError(400, "bad_request", f"query tier: one of {', '.join(TIERS)}")
        _finite(min_value, "min_value")
        _finite(min_p_churn, "min_p_churn", 0.0, 1.0)
        _run_id(run_id)
        digest = _filters_digest(segment, tier, min_value, min_p_churn)
        after = None
        if cursor is not None:
            cursor_run, after = decode_cursor(cursor, digest)
            if run_id is not None and run_id != cursor_run:
                raise ApiError(400, "bad_cursor", "the cursor belongs to another run than run_id; drop one of them")
            run_id = cursor_run
        if run_id is None:  # pin the run now, so every page of this listing reads the same run
            run_id = _reading(lambda: reader.run_metadata()).run_id
        page = _reading(lambda: reader.read_scores_page(run_id, segment=segment, value_tier=tier, min_value=min_value,
                                                        min_p_churn=min_p_churn, after_customer_id=after,
                                                        limit=limit + 1, columns=PAGE_COLUMNS))
        rows = records(page.head(limit), PAGE_COLUMNS)
        more = len(page) > limit
        return Json({"run_id": run_id, "segment": segment, "customers": rows,
                     "next_cursor": encode_cursor(run_id, rows[-1]["customer_id"], digest) if more else None})

    return router


_DESCRIPTION = """Read-only access to published customer scores.

Every endpoint but `/healthz` needs an API key (`custscore api keys create --name NAME`) in a
header: `Authorization: Bearer <key>` or `X-API-Key: <key>`. A key in the URL is refused.
Errors are `{"error": {"status", "code", "message"}}`; missing numbers are `null`.
"""
